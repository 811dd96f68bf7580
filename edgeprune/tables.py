"""The one terminal table renderer: header + rows of cell text → a rich Table.

Callers decide the cells (the report's summary, bench results, device profiles, inspect's layers);
this module decides how a table looks in a terminal.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def rich_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = (),
               title: str | None = None, caption: str | None = None, compact: bool = False,
               nowrap: Iterable[int] = ()) -> Table:
    """`right`: indices of right-aligned (numeric) columns; `nowrap`: columns kept on one line.  Other
    columns fold rather than truncate: a narrow terminal wraps numbers but never hides digits.
    `compact`: the report's borderless look."""
    right, nowrap = set(right), set(nowrap)
    style = dict(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True) if compact else {}
    t = Table(title=title, caption=caption, **style)
    for i, h in enumerate(header):
        t.add_column(h, justify="right" if i in right else "left", overflow="fold", no_wrap=i in nowrap)
    for row in rows:
        t.add_row(*row)
    return t


def console() -> Console:
    """Wide enough for the tables when the output is a log or a pipe, not a terminal."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def fmt_points(change: float) -> str:
    """An accuracy change in points with its sign: "+0.35 pt" gained, "−1.20 pt" lost, "±0.00 pt" none."""
    text = f"{abs(change):.2f}"
    if text == "0.00":
        return "±0.00 pt"
    return f"{'+' if change > 0 else '−'}{text} pt"
