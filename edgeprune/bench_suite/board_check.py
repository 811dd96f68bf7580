"""The board check: does the estimated board time rank float32 and int8 as real boards do?

``bench/board_check.yaml`` holds published real-board latencies (float32 and int8 of one model, one
board, one runtime, a source for every number).  For each single-thread Raspberry Pi 4 / Pi 5 row
whose model edgeprune can build offline, the model is built with random weights, exported float32
and full-int8 with edgeprune's own exporter, and run on the emulated board that stands for that
Pi (``qemu-aarch64`` for the Pi 4, ``qemu-aarch64-a76`` for the Pi 5).  A row passes when the
estimate orders float32 and int8 as the board did and its float32/int8 ratio is within ±25% of
the published one.

Each (model, board) measurement is a trial through the executor.  The results keep the raw
measurement (instruction mix and cache misses per file), so a change to a core or board model is
re-checked against every row without emulating again (``tests/test_board_check.py``).

    python -m edgeprune.bench_suite.board_check [--rows ID,...] [--heavy] [--executor ray]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import yaml
from pydantic import BaseModel, ConfigDict

from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.harness.bench import bench
from edgeprune.harness.board_time import estimate
from edgeprune.harness.profiles import get_profile

REPO = Path(__file__).resolve().parent.parent.parent
CHECK_FILE = REPO / "bench" / "board_check.yaml"
RESULTS_FILE = REPO / "bench" / "results" / "board-check.json"
MARKDOWN_FILE = REPO / "bench" / "BOARD_CHECK.md"
BOARD_DEVICES = {"pi4": "qemu-aarch64", "pi5": "qemu-aarch64-a76"}  # the emulated board that stands for each
RATIO_TOLERANCE = 0.25
RUNS, WARMUP = 1, 0  # counts repeat exactly; one timed inference after the runner's untimed first one


class CheckRow(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    board: str
    threads: int
    runtime: str
    model: str
    input: list[int]
    heavy: bool = False
    emulate: bool = True          # false: too long to emulate here (said in the row)
    float32_ms: float
    int8_ms: float
    source: str
    threads_stated: bool = True

    @property
    def ratio(self) -> float:
        return self.float32_ms / self.int8_ms


def load_rows(path: Path = CHECK_FILE) -> list[CheckRow]:
    return [CheckRow(**r) for r in yaml.safe_load(Path(path).read_text())["rows"]]


def _efficientdet_variant(model: str) -> Optional[int]:
    prefix = "efficientdet-lite"
    if model.startswith(prefix) and model[len(prefix):].isdigit():
        return int(model[len(prefix):])
    return None


def buildable(model: str) -> bool:
    return _efficientdet_variant(model) is not None


def checked_rows(rows: list[CheckRow], heavy: bool = True) -> list[CheckRow]:
    """The rows an emulated board can check: one thread (the emulated boards run one), a Pi we
    emulate, a model we can build offline."""
    return [r for r in rows if r.threads == 1 and r.board in BOARD_DEVICES and buildable(r.model)
            and r.emulate and (heavy or not r.heavy)]


def export_model(model: str, work: Path) -> dict[str, str]:
    """float32 and int8 TFLite files of `model` (random weights, seeded), built once into `work`."""
    out = Path(work) / model
    files = {"float32": out / f"{model}-float32.tflite", "int8": out / f"{model}-int8.tflite"}
    if not all(f.is_file() for f in files.values()):
        # builds the Keras models (TensorFlow): only when the files are not there yet
        from edgeprune.bench_suite.efficientdet_lite import export_pair

        out.mkdir(parents=True, exist_ok=True)
        f32, i8 = export_pair(_efficientdet_variant(model), out)
        Path(f32).replace(files["float32"])
        Path(i8).replace(files["int8"])
    return {k: str(v) for k, v in files.items()}


def measure_trial(model: str, device: str, files: dict[str, str]) -> dict:
    """Trial body: both files of `model` on the emulated `device`; what the estimate needs, raw."""
    results = bench([files["float32"], files["int8"]], [device], runs=RUNS, warmup=WARMUP)
    out = {"model": model, "device": device}
    for precision, r in zip(("float32", "int8"), results):
        out[precision] = {"file_bytes": r["model_bytes"], "instructions": r["instructions_per_inference"],
                          "board_time_ms": r["board_time_ms"], "bound": r["board_time"]["bound"],
                          "classes": r["board_time"]["classes"], "instruction_mix": r["instruction_mix"],
                          "cache_misses_per_level": r["cache_misses_per_level"]}
    return out


def judge(row: CheckRow, measured: dict) -> dict:
    """Re-estimate both files from their raw measurement with today's board model; compare with the row."""
    board = get_profile(BOARD_DEVICES[row.board]).board
    est = {p: estimate(measured[p]["instruction_mix"], measured[p]["cache_misses_per_level"], board)
           for p in ("float32", "int8")}
    ratio = est["float32"].ms / est["int8"].ms
    error = ratio / row.ratio - 1
    return {"id": row.id, "board": row.board, "device": BOARD_DEVICES[row.board], "model": row.model,
            "published_float32_ms": row.float32_ms, "published_int8_ms": row.int8_ms, "published_ratio": row.ratio,
            "estimated_float32_ms": est["float32"].ms, "estimated_int8_ms": est["int8"].ms, "estimated_ratio": ratio,
            "ratio_error": error, "ranked_right": (est["float32"].ms > est["int8"].ms) == (row.float32_ms > row.int8_ms),
            "within_tolerance": abs(error) <= RATIO_TOLERANCE,
            "float32_bound": est["float32"].bound, "int8_bound": est["int8"].bound,
            "instructions_ratio": measured["float32"]["instructions"] / measured["int8"]["instructions"],
            "source": row.source}


def run_check(rows: list[CheckRow], work: Path, executor=None, log=print) -> dict:
    pairs = sorted({(r.model, BOARD_DEVICES[r.board]) for r in rows})
    files = {}
    for model in sorted({m for m, _ in pairs}):
        log(f"board check: exporting {model} float32 and int8 …")
        files[model] = export_model(model, work)
    log(f"board check: {len(pairs)} emulated measurements …")
    measured = (executor or get_executor()).map(
        measure_trial, [{"model": m, "device": d, "files": files[m]} for m, d in pairs])
    by_pair = {(m["model"], m["device"]): m for m in measured}
    verdicts = [judge(r, by_pair[(r.model, BOARD_DEVICES[r.board])]) for r in rows]
    return {"tolerance": RATIO_TOLERANCE, "runs": RUNS, "rows": verdicts, "measurements": measured}


def render_markdown(result: dict) -> str:
    lines = ["# Board check: estimated board time vs published real-board latencies", "",
             "Generated by `make bench-boards` (`python -m edgeprune.bench_suite.board_check`) from "
             "`bench/board_check.yaml`. Published: TFLite benchmark_model, XNNPACK, one thread. Estimated: the "
             "same architecture built offline with random weights, exported by edgeprune (float32, full int8), "
             "run on the emulated board, costed by its estimated board time. A row passes when float32 and "
             f"int8 are ranked as on the board and the float32/int8 ratio is within ±{result['tolerance']:.0%} "
             "of the published one.", "",
             "| row | board | published fp32 / int8 ms | ratio | estimated fp32 / int8 ms | ratio | ratio error | "
             "instructions ratio | estimated / published time | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v in result["rows"]:
        ok = v["ranked_right"] and v["within_tolerance"]
        lines.append(f"| {v['id']} | {v['board']} ({v['device']}) | {v['published_float32_ms']:.1f} / "
                     f"{v['published_int8_ms']:.1f} | {v['published_ratio']:.2f} | {v['estimated_float32_ms']:.1f} / "
                     f"{v['estimated_int8_ms']:.1f} | {v['estimated_ratio']:.2f} | {v['ratio_error']:+.1%} | "
                     f"{v['instructions_ratio']:.2f} | {v['estimated_float32_ms'] / v['published_float32_ms']:.2f} / "
                     f"{v['estimated_int8_ms'] / v['published_int8_ms']:.2f} | {'pass' if ok else 'FAIL'} |")
    lines += ["", "The instructions ratio is what ranking by executed instructions alone would say "
                  "(float32 instructions / int8 instructions). The estimate is a throughput bound (pipes, "
                  "issue width, cache bandwidth; no dependency stalls or branch misses) of a model without the "
                  "published files' post-processing (anchor decoding and NMS): it ranks and compares files, "
                  "and its absolute times sit below the boards' (last column, fp32 / int8).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgeprune.bench_suite.board_check", description=__doc__.split("\n")[0])
    p.add_argument("--rows", help="comma-separated row ids (default: every checkable row)")
    p.add_argument("--heavy", action="store_true", help="include the rows marked heavy (long emulation)")
    p.add_argument("--work", default="bench/work/board-check", help="folder for the exported files")
    p.add_argument("--out", default=str(RESULTS_FILE))
    p.add_argument("--markdown", default=str(MARKDOWN_FILE))
    p.add_argument("--executor", default="inprocess", choices=["inprocess", "ray"])
    p.add_argument("--report-only", action="store_true", help="rewrite the Markdown from the results JSON")
    args = p.parse_args(argv)
    if args.report_only:
        Path(args.markdown).write_text(render_markdown(json.loads(Path(args.out).read_text())))
        print(f"wrote {args.markdown}")
        return 0

    rows = checked_rows(load_rows(), heavy=args.heavy or bool(args.rows))
    if args.rows:
        wanted = {r.strip() for r in args.rows.split(",") if r.strip()}
        unknown = wanted - {r.id for r in rows}
        if unknown:
            raise EdgepruneError(f"unknown or uncheckable board-check row(s) {', '.join(sorted(unknown))}",
                                 f"use some of {', '.join(r.id for r in rows)}")
        rows = [r for r in rows if r.id in wanted]
    result = run_check(rows, Path(args.work), executor=get_executor(args.executor))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    Path(args.markdown).write_text(render_markdown(result))
    for v in result["rows"]:
        print(f"{v['id']}: published {v['published_ratio']:.2f}x, estimated {v['estimated_ratio']:.2f}x "
              f"({v['ratio_error']:+.1%}), instructions {v['instructions_ratio']:.2f}x")
    print(f"wrote {args.out} and {args.markdown}")
    return 0 if all(v["ranked_right"] and v["within_tolerance"] for v in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
