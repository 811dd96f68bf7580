"""One benchmark run: trials for every (model, dataset), interleaved timing, summary JSON, report."""
from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

from edgeprune.bench_suite import summary as summ
from edgeprune.bench_suite import timing, trials
from edgeprune.bench_suite.settings import BenchSettings

SCHEMA_VERSION = 1


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in ("tensorflow-cpu", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert"):
        try:
            out.setdefault(dist.replace("-cpu", ""), version(dist))
        except PackageNotFoundError:
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                out["host cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return out


def _log(msg: str, verbose: bool):
    if verbose:
        print(msg, flush=True)


def run_group(work_dir: Path, model: str, dataset: str, s: BenchSettings, profiles, verbose: bool) -> dict:
    settings = s.to_dict()
    _log(f"[{model}/{dataset}] pre-training {s.epochs} epoch(s)", verbose)
    trials.run_trials(trials.pretrain_trial, [dict(run_dir=str(work_dir), model=model, dataset=dataset,
                                                   settings=settings)])
    ids = trials.variant_ids(s)
    _log(f"[{model}/{dataset}] recipes: {', '.join(ids)}", verbose)
    paths = trials.run_trials(trials.variant_trial, [dict(run_dir=str(work_dir), model=model, dataset=dataset,
                                                          variant=v, settings=settings) for v in ids])
    variants = [json.loads(Path(p).read_text()) for group in paths for p in group]
    gdir = trials.group_dir(work_dir, model, dataset)
    files = {v["variant"]: gdir / v["file"] for v in variants}
    for profile in profiles:
        emulated = profile.emulated
        runs, reps = (s.emulated_runs, s.emulated_reps) if emulated else (s.runs, s.reps)
        _log(f"[{model}/{dataset}] timing on {profile.name}: {reps} rep(s) × {runs} runs × {len(files)} files", verbose)
        timed = timing.time_variants(files, profile, runs=runs, reps=reps, warmup=s.warmup)
        for v in variants:
            v.setdefault("timing", {})[profile.name] = timed[v["variant"]]
    pretrain = json.loads((gdir / "pretrain.json").read_text())
    return {"model": model, "dataset": dataset, "pretrain": pretrain, "variants": variants}


def run_bench(s: BenchSettings, *, out_dir: Path, work_dir: Path, markdown: Path, command: str,
              verbose: bool = True) -> tuple[Path, Path]:
    """Run everything; returns (summary JSON path, markdown path)."""
    date = _dt.date.today().isoformat()
    work = Path(work_dir) / (date + ("-quick" if s.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    profiles, notes = timing.usable_devices(s.devices)
    host = next((p.name for p in profiles if p.kind == "host"), None)
    emulated = next((p.name for p in profiles if p.emulated and p.arch == "aarch64"), None)
    for p in profiles:
        if p.emulated:
            notes.append(f"{p.name}: QEMU user-mode, `-cpu {p.cpu}`; latency is emulator time, not board time; "
                         "instructions/inference is deterministic but is not time (no cache or pipeline model).")
    groups = [run_group(work, m, d, s, profiles, verbose) for m in s.models for d in s.datasets]
    for g in groups:
        summ.add_ratios(g["variants"], [p.name for p in profiles])
        g["judged"], g["targets"] = summ.check_targets(g["model"], g["variants"], host, emulated,
                                                     g["pretrain"].get("num_classes"))
    result = {"schema_version": SCHEMA_VERSION, "date": date, "command": command, "settings": s.to_dict(),
              "environment": _versions(), "host_device": host, "emulated_device": emulated,
              "devices": {p.name: {"kind": p.kind, "arch": p.arch, "cpu": p.cpu, "threads": p.threads}
                          for p in profiles},
              "notes": notes, "work_dir": str(work), "groups": groups}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{date}{'-quick' if s.quick else ''}.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(json_path)
    from edgeprune.bench_suite.report import write_report

    md, _ = write_report(json_path, markdown)
    return json_path, md
