"""``edgeprune deploy``: put the file a run recommends for a board onto that board, and time it there.

A run decides on the emulated board that stands for the real one (same architecture and CPU
model, with a board model: ``qemu-aarch64`` for a Raspberry Pi 4).  Deploying reads that answer
from the run directory (nothing is trained or exported again), copies the file and the runner to
``~/edgeprune/<run name>/`` on the board over SSH, measures it there, and shows the board's
measured p50 beside the emulated estimate.  Without a host it says which file it would copy.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.harness import ssh_runner
from edgeprune.harness.profiles import DeviceProfile, get_profile, load_profiles
from edgeprune.harness.runner_io import RUNNER_SCRIPT
from edgeprune.report import build_report

REMOTE_ROOT = "edgeprune"  # under the login's home on the board


def stand_in(board: DeviceProfile) -> DeviceProfile:
    """The emulated profile that stands for `board`: same arch and CPU model, with a board model."""
    for p in load_profiles().values():
        if p.emulated and p.board is not None and p.arch == board.arch and p.cpu == board.cpu:
            return p
    raise EdgepruneError(f"no emulated board stands for {board.name} ({board.arch}, {board.cpu})",
                         "add an emulated profile with that cpu and a board: section (see qemu-aarch64.yaml)")


def _report(run_dir: Path) -> dict:
    path = run_dir / "report.json"
    if path.is_file():
        return json.loads(path.read_text())

    return build_report(run_dir, weights=False)


def recommended(run_dir: Path, device: str) -> dict:
    """The run's answer for `device`: its recommended row (artifact, cost, size, accuracy)."""
    report = _report(run_dir)
    for r in report.get("recommendations") or []:
        if r["device"] == device and r["goal"] == "recommended":
            row = report["rows"][r["row"]]
            return {**row, "stands_for": r.get("stands_for") or row.get("stands_for"), "run": report["run"]["name"]}
    raise EdgepruneError(f"the run in {run_dir} has no recommendation for {device}",
                         f"add {device} to the recipe's benchmark devices and run it again (trained steps are reused)")


def deploy(run_dir, board: str = "rpi4", *, host: str | None = None, runs: int = 50, warmup: int = 5,
           log=print) -> dict:
    """Copy the file recommended for `board`'s emulated stand-in to the board and time it there."""
    run_dir = Path(run_dir)
    profile = get_profile(board)
    if profile.kind != "ssh":
        raise EdgepruneError(f"{board} is a {profile.kind} device, not a board reached over SSH",
                             "deploy to an SSH board profile such as rpi4 or rpi5")
    emulated = stand_in(profile)
    rec = recommended(run_dir, emulated.name)
    artifact = run_dir / rec["artifact"]
    if not artifact.is_file():
        raise EdgepruneError(f"{artifact} is missing from the run directory", "run the recipe again to re-export it")
    estimate = rec.get("board_time_ms")
    said = f"{estimate:.4g} ms estimated on {rec['stands_for']}" if estimate is not None else "no estimate"
    out = {"board": profile.name, "stand_in": emulated.name, "artifact": rec["artifact"],
           "file_bytes": artifact.stat().st_size, "estimated_ms": estimate, "deployed": False}
    try:
        target = ssh_runner.resolve_target(profile, host)
    except DeviceError:
        target = None
    if target is None:
        log(f"{profile.name}: would copy {rec['artifact']} ({out['file_bytes']:,} B; {said}). "
            f"Set {ssh_runner.HOST_ENV}=user@host to deploy it and time it on the board.")
        return out
    remote_dir = f"{REMOTE_ROOT}/{rec['run']}"
    session = ssh_runner.SshSession(target, timeout_s=ssh_runner.CONNECT_TIMEOUT_S + 60)
    made = session.ssh(f"mkdir -p {shlex.quote(remote_dir)}")
    if made.returncode != 0:
        raise DeviceError(f"cannot make ~/{remote_dir} on {target}: {made.stderr.strip()}", "check the board's disk")

    session.put([artifact, RUNNER_SCRIPT], remote_dir)
    log(f"{profile.name}: copied {artifact.name} and {RUNNER_SCRIPT.name} to {target}:~/{remote_dir}/")
    result = ssh_runner.run(profile, artifact, runs=runs, warmup=warmup, host=host)
    measured = result["latency_ms"]["p50"]
    out.update(deployed=True, target=str(target), remote_path=f"~/{remote_dir}/{artifact.name}",
               measured_p50_ms=measured, measured=result)
    log(f"{profile.name}: {artifact.name} p50 {measured:.4g} ms measured on the board; {said}"
        + (f" (measured/estimated {measured / estimate:.2f})" if estimate else ""))
    (run_dir / "deploy").mkdir(exist_ok=True)
    (run_dir / "deploy" / f"{profile.name}.json").write_text(json.dumps(out, indent=1))
    return out
