"""Reports generated from a real small run (the runner's tiny recipe: train, prune, finetune, QAT,
TFLite+ONNX export, host benchmark, report)."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune.report import build_report, write_reports
from edgeprune.report.schema import validate_report

TINY_RECIPE = Path(__file__).resolve().parents[1] / "data" / "tiny_recipe.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from edgeprune.recipe import run_recipe

    out = tmp_path_factory.mktemp("report") / "tiny"
    return run_recipe(TINY_RECIPE, out_dir=out, overwrite=True, log=lambda *a: None)


@pytest.fixture(scope="module")
def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def report(run_dir):
    return json.loads((run_dir / "report.json").read_text())


def _md_tables(text: str) -> list[list[dict]]:
    """Every pipe table in a Markdown text, as lists of {header: cell}."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(:?-+:?\|)+", lines[i + 1]):
            split = lambda line: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]  # noqa: E731
            header, rows = split(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, split(lines[i]))))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def _num(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_run_writes_all_three_reports_and_json_follows_schema(run_dir, report):
    for name in ("report.json", "report.md", "report.html"):
        assert (run_dir / name).stat().st_size > 0
    validate_report(report)
    assert report["schema_version"] == 1
    assert report["recipe"]["name"] == "tiny" and report["seed"] == 0
    assert report["environment"]["tensorflow"] and report["environment"]["cpu_count"] >= 1


def test_json_rows_carry_every_measurement(report, metrics):
    by_key = {(r["export"], r["device"]): r for r in metrics["benchmarks"]}
    exports = {e["path"]: e for e in metrics["exports"]}
    assert len(report["rows"]) == len(by_key) == 6
    for row in report["rows"]:
        bench = by_key[(row["artifact"], row["device"])]
        assert row["latency_ms"]["p99"] == bench["latency_ms"]["p99"]
        assert row["peak_rss_bytes"] == bench["peak_rss_bytes"] > 0
        assert row["device_accuracy"] == bench["accuracy"]
        assert row["parity"]["top1_agreement"] == exports[row["artifact"]]["top1_agreement"]
        assert row["params"] == metrics["stages"][row["stage"]]["params"]


def test_markdown_head_table_carries_measured_numbers(run_dir, metrics):
    md = (run_dir / "report.md").read_text()
    head = _md_tables(md)[0]
    assert md.index("| stage |") < md.index("## ")  # the summary table comes before any section
    exports = {e["path"]: e for e in metrics["exports"]}
    assert len(head) == len(metrics["benchmarks"])
    for bench in metrics["benchmarks"]:
        fmt = f"{bench['format']}/{bench['quant']}"
        [row] = [r for r in head if r["stage"].rstrip(" ★") == bench["stage"] and r["format"] == fmt and r["device"] == bench["device"]]
        exp, stage = exports[bench["export"]], metrics["stages"][bench["stage"]]
        assert _num(row["file bytes"]) == exp["file_bytes"]
        assert _num(row["params"]) == stage["params"] and _num(row["MACs"]) == stage["macs"]
        assert _num(row["test acc"]) == pytest.approx(exp["accuracy"], abs=5e-5)
        for col, q in (("ms", "p50"), ("p90 ms", "p90")):  # host rows: measured; "ms" is the device's time
            assert _num(row[col]) == pytest.approx(bench["latency_ms"][q], rel=5e-3, abs=5e-5)
        assert row["parity"].startswith(f"{exp['top1_agreement'] * 100:.1f}%")


def test_markdown_pruning_tables_match_plan_and_stages(run_dir, metrics):
    tables = _md_tables((run_dir / "report.md").read_text())
    layers = next(t for t in tables if t and "channels before" in t[0])
    after = {l["name"]: l for l in metrics["stages"]["pruned"]["layers"]}
    for row in layers:
        assert _num(row["channels after"]) == after[row["layer"]]["output_shape"][-1]
        assert _num(row["params after"]) == after[row["layer"]]["params"]
    plan = json.loads((run_dir / "plan.json").read_text())
    groups = next(t for t in tables if t and "removed (index:score)" in t[0])
    for g in plan["groups"]:
        [row] = [r for r in groups if r["group"] == str(g["id"])]
        assert (_num(row["channels"]), _num(row["kept"])) == (g["channels"], g["kept"])
        if g["removed_channels"]:
            first = f"{g['removed_channels'][0]}:{g['removed_scores'][0]:.3g}"
            assert row["removed (index:score)"].startswith(first)


def test_weight_histograms_account_for_every_removed_weight(report, metrics):
    before = {l["name"]: l for l in metrics["stages"]["baseline"]["layers"]}
    after = {l["name"]: l for l in metrics["stages"]["pruned"]["layers"]}
    hists = report["weights"]["layers"]
    assert {h["layer"] for h in hists} == {"conv1", "conv2", "fc1", "fc2"}
    for h in hists:
        # kernel + bias = the layer's parameters, before and after
        assert h["count_before"] + before[h["layer"]]["output_shape"][-1] == before[h["layer"]]["params"]
        assert h["count_after"] + after[h["layer"]]["output_shape"][-1] == after[h["layer"]]["params"]
        assert sum(h["before"]) == h["count_before"] and sum(h["after"]) == h["count_after"]
        assert sum(h["removed"]) == h["count_before"] - h["count_after"]
    conv2 = next(h for h in hists if h["layer"] == "conv2")
    assert sum(conv2["removed"]) > 0 and report["notes"] == []


def _expected_plots(report) -> int:
    return 2 + 2 * bool(report["pruning"]) + bool(report["weights"]) + bool(report["sensitivity"]) + bool(report["training"])


def assert_self_contained(html: str, n_images: int) -> None:
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", html)
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(imgs) == n_images
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained_and_has_every_plot(run_dir, report):
    assert_self_contained((run_dir / "report.html").read_text(), _expected_plots(report))


def test_sensitivity_curves_appear_when_the_scan_file_exists(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    groups = [", ".join(g["sources"]) for g in json.loads((run_dir / "plan.json").read_text())["groups"]]
    (copy / "sensitivity.json").write_text(json.dumps(
        {"ratios": [0.25, 0.5], "baseline_val_accuracy": 0.7, "curves": {g: [0.69, 0.61 - i / 100] for i, g in enumerate(groups)}}))
    rep = build_report(copy)
    write_reports(copy, report=rep)
    assert_self_contained((copy / "report.html").read_text(), _expected_plots(rep))
    sens = next(t for t in _md_tables((copy / "report.md").read_text()) if t and "ratio 0.5" in t[0])
    assert [r["ratio 0.5"] for r in sens] == [f"{0.61 - i / 100:.4f}" for i in range(len(groups))]


def test_report_survives_missing_plan_and_models_and_says_so(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "plan.json").unlink()
    (copy / "models" / "pruned.keras").unlink()
    rep = build_report(copy)
    assert rep["pruning"]["groups"] == [] and rep["weights"] is None
    assert any("plan.json" in n for n in rep["notes"]) and any("pruned.keras" in n for n in rep["notes"])
    md = write_reports(copy, formats=("md",), report=rep)[0].read_text()
    assert "## Notes" in md


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeprune", *args], capture_output=True, text=True, timeout=300)


def test_cli_rebuilds_reports_and_compares_runs(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    for name in ("report.json", "report.md", "report.html"):
        (other / name).unlink()
    r = _cli("report", str(other), "--format", "md")
    assert r.returncode == 0, r.stderr
    assert (other / "report.md").exists() and not (other / "report.html").exists()
    assert "qat" in r.stdout and "ms" in r.stdout and "Which file to ship" in r.stdout  # the summary table is printed

    r = _cli("report", "compare", str(run_dir), str(other), "-o", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr
    table = _md_tables((tmp_path / "cmp" / "compare.md").read_text())[0]
    assert {row["run"] for row in table} == {run_dir.name, "other"} and len(table) == 12
    assert_self_contained((tmp_path / "cmp" / "compare.html").read_text(), 2)

    r = _cli("report", str(tmp_path / "nowhere"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "metrics.json" in r.stderr and "edgeprune run" in r.stderr


# ---------------------------------------------------------------------------------------------
# the HTML in a real browser


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(html_path: Path, tmp: Path) -> tuple[Path, list[str]]:
    """Screenshot the page in headless Chromium; returns the PNG and the page's console messages."""
    shot = tmp / (html_path.stem + ".png")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           "--enable-logging=stderr", "--v=0", html_path.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert shot.exists(), r.stderr[-2000:]
    return shot, console


def inked_fraction(png: Path) -> float:
    import matplotlib.image

    img = matplotlib.image.imread(png)[..., :3]
    return float((img.min(axis=-1) < 0.9).mean())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium_without_console_errors(run_dir, tmp_path):
    shot, console = render(run_dir / "report.html", tmp_path)
    assert console == []
    assert inked_fraction(shot) > 0.05  # tables and plots, not a blank page

    # the same check catches a page that throws
    broken = tmp_path / "broken.html"
    broken.write_text((run_dir / "report.html").read_text().replace("</body>", "<script>undefinedFn()</script></body>"))
    _, console = render(broken, tmp_path)
    assert any("Uncaught ReferenceError" in line for line in console)


def test_report_cli_runs_without_tensorflow(run_dir, tmp_path):
    """`edgeprune report` reads only run-directory files: it works where TensorFlow cannot be imported."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for f in copy.glob("report.*"):
        f.unlink()
    blocked = "import sys; [sys.modules.__setitem__(m, None) for m in ('tensorflow', 'tf_keras', 'keras')]; "
    out = subprocess.run([sys.executable, "-c", blocked + "from edgeprune.cli import main; main()", "report", str(copy)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads((copy / "report.json").read_text())
    assert rep["weights"]["layers"] and rep["notes"] == []
