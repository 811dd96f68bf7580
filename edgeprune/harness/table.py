"""Rich tables for bench results and device profiles."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table


def _num(v, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def results_table(results: list[dict]) -> Table:
    """One row per model × device."""
    emulated = any(r.get("emulated") for r in results)
    t = Table(title="edgeprune bench",
              caption="emulated rows: latency is emulator time; compare instr/inference" if emulated else None)
    for col, justify in [("device", "left"), ("emulated", "center"), ("model", "left"), ("bytes", "right"),
                         ("p50 ms", "right"), ("p90 ms", "right"), ("p99 ms", "right"), ("init ms", "right"),
                         ("peak RSS MB", "right"), ("accuracy", "right"), ("instr/inference", "right")]:
        t.add_column(col, justify=justify, no_wrap=col != "model")
    for r in results:
        lat = r.get("latency_ms", {})
        rss = r.get("peak_rss_bytes")
        acc = r.get("accuracy")
        t.add_row(
            r["device"], "yes" if r.get("emulated") else "no", Path(r["model_path"]).name,
            f"{r['model_bytes']:,}", _num(lat.get("p50"), ".3f"), _num(lat.get("p90"), ".3f"),
            _num(lat.get("p99"), ".3f"), _num(r.get("init_ms"), ".1f"),
            _num(rss / 1e6 if rss is not None else None, ".1f"),
            "—" if acc is None else f"{acc:.2%}", _num(r.get("instructions_per_inference"), ","),
        )
    return t


def profiles_table(profiles: dict) -> Table:
    t = Table(title="edgeprune devices")
    for col in ["name", "kind", "arch", "cpu", "threads", "tflite", "emulated", "round_to"]:
        t.add_column(col, no_wrap=True)
    t.add_column("description", ratio=1)
    for p in profiles.values():
        t.add_row(p.name, p.kind, p.arch, p.cpu, str(p.threads), p.interpreter.tflite, "yes" if p.emulated else "no",
                  str(p.round_to), p.description)
    return t
