"""The summary table's columns and cell text, shared by report.md, compare.md and the terminal."""
from __future__ import annotations

from edgeprune.device_metric import RULE
from edgeprune.tables import rich_table

DASH = "—"
TEXT_COLUMNS = ("stage", "format", "device", "parity")  # the others are numbers, right-aligned


def fmt_int(v) -> str:
    return DASH if v is None else f"{int(v):,}"


def fmt_acc(v) -> str:
    return DASH if v is None else f"{v:.4f}"


def fmt_ms(v) -> str:
    if v is None:
        return DASH
    if v >= 100:
        return f"{v:,.1f}"
    return f"{v:.3f}" if v >= 1 else f"{v:.4f}"


def fmt_time(row: dict) -> str:
    """The row's time: the estimated board time on an emulated board ("est."), else the measured p50."""
    if row.get("board_time_ms") is not None:
        return f"{fmt_ms(row['board_time_ms'])} est."
    return fmt_ms((row.get("latency_ms") or {}).get("p50"))


def fmt_format(row: dict) -> str:
    return row["format"] if not row.get("quant") else f"{row['format']}/{row['quant']}"


def fmt_device(row: dict) -> str:
    if not row.get("device"):
        return DASH
    return f"{row['device']} (emulated)" if row.get("emulated") else row["device"]


def fmt_parity(row: dict) -> str:
    p = row.get("parity")
    if not p or p.get("top1_agreement") is None:
        return DASH
    verdict = {True: " ok", False: " FAIL", None: ""}[p.get("within_tolerance")]
    return f"{p['top1_agreement'] * 100:.1f}% Δ{p['max_abs_diff']:.1e}{verdict}"


# the terminal's summary: (header, cell key) of the columns that fit 80 columns, the time and
# instructions included; report.md and compare.md keep every column (params, MACs, p90, parity)
TERMINAL_COLUMNS = (("stage", "stage"), ("format", "format"), ("device", "device name"), ("bytes", "file bytes"),
                    ("acc", "test acc"), ("ms", "ms"), ("instr", "instr/inference"))


def terminal_columns(rows: list[dict]) -> list[tuple[str, str]]:
    has_instr = any(r.get("instructions_per_inference") is not None for r in rows)
    return [c for c in TERMINAL_COLUMNS if c[1] != "instr/inference" or has_instr]


def columns(rows: list[dict]) -> list[str]:
    cols = ["stage", "format", "device", "file bytes", "params", "MACs", "test acc", "ms", "p90 ms"]
    if any(r.get("instructions_per_inference") is not None for r in rows):
        cols.append("instr/inference")
    return cols + ["parity"]


def cells(row: dict, cols: list[str]) -> list[str]:
    lat = row.get("latency_ms") or {}
    by_col = {
        "stage": row["stage"] + (" ★" if row.get("pareto_latency") else ""),
        "format": fmt_format(row),
        "device": fmt_device(row),
        "device name": row.get("device") or DASH,  # the terminal's: an emulated board's time says "est."
        "file bytes": fmt_int(row.get("file_bytes")),
        "params": fmt_int(row.get("params")),
        "MACs": fmt_int(row.get("macs")),
        "test acc": fmt_acc(row.get("test_accuracy")),
        "ms": fmt_time(row),
        "p90 ms": fmt_ms(lat.get("p90")),
        "instr/inference": fmt_int(row.get("instructions_per_inference")),
        "parity": fmt_parity(row),
    }
    return [by_col[c] for c in cols]


def summary_table(report: dict, title: str | None = None):
    """The report's summary as a rich Table for the terminal: report.md's rows, the columns that fit 80
    columns (:data:`TERMINAL_COLUMNS`); numbers never wrap, names fold when a terminal is narrower."""
    rows = report["rows"]
    cols = terminal_columns(rows)
    keys = [key for _, key in cols]
    numbers = [i for i, key in enumerate(keys) if key not in TEXT_COLUMNS + ("device name",)]
    table = rich_table([h for h, _ in cols], [cells(r, keys) for r in rows], right=numbers, nowrap=numbers,
                       title=title or f"edgeprune run {report['run']['name']}", compact=True,
                       caption=f"★ on the accuracy-vs-cost Pareto front of its device ({RULE}); acc on "
                               f"{report.get('dataset', {}).get('test', '?')} test images; params, MACs, p90 and "
                               "parity in report.md")
    table.show_edge = False  # the two edge columns are what the names need at 80 columns
    return table
