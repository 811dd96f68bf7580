"""`edgeprune run` refuses each kind of plan mistake before TensorFlow loads and before anything is
written: one line on stderr, exit 2, no run folder; a missing layer name (which needs the model)
before anything trains, again leaving no folder."""
import subprocess
import sys
import textwrap

import pytest

HEAD = "name: r\nmodel: lenet5\ndataset: {name: mnist, max_train_samples: 200, test_samples: 50}\nsteps:\n  - train: {epochs: 30}\n"

BAD = {
    "criterion": "  - prune: {criterion: l7}\n",
    "device": "  - export: {}\n  - benchmark: {devices: [qemu-arch64]}\n",
    "format": "  - export: {formats: [coreml]}\n",
    "precision": "  - export: {precision: [int4]}\n",
    "budget key": "  - prune: {allocation: device_cost, device: qemu-aarch64, budget: {latency: 0.3}}\n",
    "step order": "  - report: {}\n  - export: {}\n",
    "dataset": "DATASET",
}

# run the CLI in a child and report whether TensorFlow was imported by the time it refused the recipe
DRIVER = textwrap.dedent("""\
    import sys
    from edgeprune.cli import main
    try:
        main()
    except SystemExit as e:
        code = e.code
    print("tensorflow loaded" if "tensorflow" in sys.modules else "no tensorflow", code)
""")


@pytest.mark.parametrize("kind", list(BAD))
def test_refused_before_tensorflow_with_nothing_written(tmp_path, kind):
    text = HEAD.replace("name: mnist,", "name: mnst,") if BAD[kind] == "DATASET" else HEAD + BAD[kind]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", DRIVER, "run", str(recipe), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "no tensorflow 2", (proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "r.yaml:" in lines[0], proc.stderr
    assert not out.exists()
