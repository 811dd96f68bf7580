"""A bad budget or prune option is refused before TensorFlow loads: their modules import none of it."""
import subprocess
import sys


def test_budget_and_prune_options_load_no_tensorflow():
    code = ("import sys, edgeprune.budget, edgeprune.prune_options, edgeprune.devicecost; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
