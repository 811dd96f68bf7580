"""One cost metric per device decides the recommendation, the Pareto stars and the plots alike:
the estimated board time on emulated boards (instructions where a profile has no board model),
p50 latency on real devices."""
import json

from edgeprune.device_metric import BOARD_TIME, INSTRUCTIONS, LATENCY_P50, cost, device_metric, row_metric, ship_choice
from edgeprune.report.build import build_report
from edgeprune.report.compare import compare_runs
from edgeprune.report.markdown import render_markdown
from helpers.device_runs import FILES, recorded_metrics as _metrics

def _run_dir(tmp_path, name="run", metrics=None):
    d = tmp_path / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(metrics or _metrics()))
    return d


def _recommended(report, device):
    return next(r["row"] for r in report["recommendations"] if r["device"] == device and r["goal"] == "recommended")


def test_the_metric_is_estimated_board_time_when_emulated_and_p50_otherwise():
    assert device_metric(True) is BOARD_TIME and device_metric(False) is LATENCY_P50
    assert device_metric(True, estimated=False) is INSTRUCTIONS  # an emulated profile without a board model
    row = {"latency_ms": {"p50": 2.5}, "instructions_per_inference": 7}
    assert cost(row) == 2.5 and cost({**row, "emulated": True}) == 7.0
    assert row_metric({**row, "emulated": True, "board_time_ms": 0.4}) is BOARD_TIME
    assert cost({**row, "emulated": True, "board_time_ms": 0.4}) == 0.4
    assert cost({"emulated": True, "latency_ms": {"p50": 2.5}}) is None  # emulated without a count: not ranked


def test_emulated_device_stars_and_recommends_the_same_file_by_estimated_board_time(tmp_path):
    report = build_report(_run_dir(tmp_path), weights=False)
    rows = report["rows"]
    qemu = [i for i, r in enumerate(rows) if r["device"] == "qemu-aarch64"]
    pick = _recommended(report, "qemu-aarch64")
    assert rows[pick]["artifact"] == "exports/finetuned-int8.tflite"  # more instructions, less board time
    assert rows[pick]["pareto_latency"] is True
    starred = {rows[i]["artifact"] for i in qemu if rows[i]["pareto_latency"]}
    assert "exports/pruned-none.tflite" not in starred  # fewest instructions and emulator time, slower on the board
    assert "estimated board time" in next(r["why"] for r in report["recommendations"]
                                          if r["device"] == "qemu-aarch64" and r["goal"] == "recommended")
    # on the host, timed for real, int8 wins and is starred
    host_pick = _recommended(report, "host")
    assert rows[host_pick]["artifact"] == "exports/finetuned-int8.tflite" and rows[host_pick]["pareto_latency"]

    md = render_markdown(report)
    assert "finetuned ★ | tflite/int8 | qemu-aarch64 (emulated)" in md
    assert "pruned | tflite/none | qemu-aarch64 (emulated)" in md
    assert "0.5000 ms est." in md  # the recommendation shows the metric that chose it
    assert "4.000" not in md  # emulator wall time is never shown as a latency


def test_comparison_and_plot_use_the_same_metric(tmp_path):
    comparison = compare_runs([_run_dir(tmp_path, "a"), _run_dir(tmp_path, "b")])
    stars = {(r["run"], r["artifact"]) for r in comparison["rows"] if r["device"] == "qemu-aarch64" and r.get("pareto_latency")}
    assert ("a", "exports/pruned-none.tflite") not in stars and ("a", "exports/finetuned-int8.tflite") in stars

    from edgeprune.report.plots import tradeoff_figure

    report = build_report(_run_dir(tmp_path, "c"), weights=False)
    fig = tradeoff_figure(report["rows"], "device")
    ax = next(a for a in fig.axes if a.get_title().startswith("qemu-aarch64"))
    xs = sorted(x for c in ax.collections for x, _ in c.get_offsets())
    assert xs == sorted(float(v[5]) for v in FILES.values())
    assert ax.get_xlabel() == "estimated board time (ms)"


def test_precision_auto_recommends_within_the_recipe_budget(tmp_path):
    m = _metrics()
    m["precision"] = {"mode": "auto", "stages": ["finetuned"], "max_accuracy_drop": 0.1}
    report = build_report(_run_dir(tmp_path, metrics=m), weights=False)
    rows = report["rows"]
    # host: int8 is cheaper but 0.2 points below float32 of the same stage: over the 0.1-point budget
    assert rows[_recommended(report, "host")]["artifact"] == "exports/finetuned-none.tflite"
    assert "precision: auto" in next(r["why"] for r in report["recommendations"] if r["device"] == "host")


def test_ship_choice_is_cheapest_within_budget_and_prefers_accuracy_on_ties():
    rows = [{"test_accuracy": 0.90, "latency_ms": {"p50": 1.0}}, {"test_accuracy": 0.91, "latency_ms": {"p50": 1.0}},
            {"test_accuracy": 0.85, "latency_ms": {"p50": 0.1}}, {"test_accuracy": 0.99, "latency_ms": None}]
    assert ship_choice(rows, 0.02) == 1
    assert ship_choice(rows, 0.10) == 2
    assert ship_choice([{"test_accuracy": 0.9}], 0.1) is None


def test_terminal_markdown_html_and_json_give_one_and_the_same_answer_per_device(tmp_path, capsys):
    import re

    from edgeprune.cli import _print_summary
    from edgeprune.report import write_reports

    run = _run_dir(tmp_path)
    write_reports(run)
    report = json.loads((run / "report.json").read_text())
    shipped = {r["device"]: report["rows"][r["row"]]["artifact"] for r in report["recommendations"]
               if r["goal"] == "recommended"}
    assert shipped == {"qemu-aarch64": "exports/finetuned-int8.tflite", "host": "exports/finetuned-int8.tflite"}
    pi4 = next(r for r in report["recommendations"] if r["device"] == "qemu-aarch64" and r["goal"] == "recommended")
    assert pi4["stands_for"] == "Raspberry Pi 4 Model B (emulated Cortex-A72)"

    _print_summary(run)
    out = capsys.readouterr().out
    tail = out[out.index("Which file to ship"):].splitlines()
    assert tail[0] == "Which file to ship:" and tail[-1] == f"Report: {run / 'report.md'}"
    assert all(len(line) <= 80 for line in tail[:-1])
    assert "  qemu-aarch64 = Raspberry Pi 4 Model B (emulated Cortex-A72):" in tail
    assert any(line.strip().startswith("exports/finetuned-int8.tflite  0.5000 ms est., 12,000 B") for line in tail)

    md = (run / "report.md").read_text()
    ship_table = md[md.index("## Which file to ship"):].split("\n\n")[2]
    for device, artifact in shipped.items():
        assert re.search(rf"^\| {device} \| [^|]+ \| {re.escape(artifact)} \|", ship_table, re.M), ship_table
    html = (run / "report.html").read_text()
    assert "Raspberry Pi 4 Model B (emulated Cortex-A72)" in html and "ship this file" in html
    # the mobile section names the file recommended on the Arm board, not a second opinion
    assert report["mobile"][0]["file"] == "exports/finetuned-int8.tflite"
    assert "qemu-aarch64" in report["mobile"][0]["why"]


def test_terminal_summary_fits_80_columns_and_never_splits_a_number(tmp_path):
    """Issue 23: at 80 columns `1,734,024` printed as `1,734` / `,024`; the terminal keeps fewer columns."""
    import io

    from rich.console import Console

    from edgeprune.report.table import fmt_int, fmt_time, summary_table

    metrics = _metrics()
    for b in metrics["benchmarks"]:
        if b["emulated"]:
            b["device"], b["instructions_per_inference"] = "qemu-aarch64-a76", b["instructions_per_inference"] + 34_024
    report = build_report(_run_dir(tmp_path, metrics=metrics), weights=False)
    buf = io.StringIO()
    Console(width=80, file=buf, force_terminal=False).print(summary_table(report))
    lines = buf.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    numbers = [line.split() for line in lines]
    for row in report["rows"]:
        for text in (fmt_int(row["file_bytes"]), fmt_int(row.get("instructions_per_inference")),
                     fmt_time(row).split()[0], f"{row['test_accuracy']:.4f}"):
            assert any(text in words for words in numbers), (text, "\n".join(lines))
    assert "1,334,024" in buf.getvalue() and "0.5000 est." in buf.getvalue()
