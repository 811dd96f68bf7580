"""Bench results and device profiles as terminal tables (rendered by :mod:`edgeprune.tables`)."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from edgeprune.tables import rich_table

RESULT_COLUMNS = ["device", "model", "bytes", "ms", "p90 ms", "init ms", "peak RSS MB", "accuracy", "instr/inference"]
PROFILE_COLUMNS = ["name", "kind", "arch", "cpu", "threads", "tflite", "emulated", "round_to", "description"]


def _num(v, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def results_table(results: list[dict]) -> Table:
    """One row per model × device."""
    emulated = any(r.get("emulated") for r in results)
    rows = []
    for r in results:
        lat = r.get("latency_ms") or {}
        rss = r.get("peak_rss_bytes")
        acc = r.get("accuracy")
        board = r.get("board_time_ms")
        ms = f"{board:.3f} est." if board is not None else _num(lat.get("p50"), ".3f")
        rows.append([
            r["device"], Path(r["model_path"]).name,
            f"{r['model_bytes']:,}", ms, _num(lat.get("p90"), ".3f"), _num(r.get("init_ms"), ".1f"),
            _num(rss / 1e6 if rss is not None else None, ".1f"),
            "—" if acc is None else f"{acc:.2%}", _num(r.get("instructions_per_inference"), ","),
        ])
    caption = ("ms: measured p50; on emulated boards the estimated board time (instruction mix and caches through "
               "the board's pipe model), never emulator time") if emulated else "ms: measured p50 after warm-up"
    return rich_table(RESULT_COLUMNS, rows, right=range(2, len(RESULT_COLUMNS)), title="edgeprune bench",
                      caption=caption, nowrap=[i for i, c in enumerate(RESULT_COLUMNS) if c != "model"])


def profiles_table(profiles: dict) -> Table:
    rows = [[p.name, p.kind, p.arch, p.cpu, str(p.threads), p.interpreter.tflite, "yes" if p.emulated else "no",
             str(p.round_to), p.description] for p in profiles.values()]
    return rich_table(PROFILE_COLUMNS, rows, title="edgeprune devices", nowrap=range(len(PROFILE_COLUMNS) - 1))
