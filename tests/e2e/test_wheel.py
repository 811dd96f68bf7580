"""The built wheel works on its own: shipped device profiles, and a small prune, from a fresh venv.

The venv gets the wheel without dependencies and borrows this environment's packages (TensorFlow
is not downloaded again) through a .pth line; the source tree is not on its path.
"""
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(argv, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{argv}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: the build leaves build/ and *.egg-info behind
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("edgeprune", "devices"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(src)])
    [wheel] = (tmp / "dist").glob("edgeprune-*.whl")
    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    py = env_dir / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # this environment's packages, after the venv's own (a .pth path's own .pth files, such as the
    # editable install of the source tree, are not processed)
    (purelib / "zz_borrowed.pth").write_text("\n".join([sysconfig.get_paths()["purelib"], *site.getsitepackages()]) + "\n")
    _run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)])  # the borrowed pip
    return env_dir


def _env(tmp_path):
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "COLUMNS": "200"}


def test_wheel_ships_device_profiles(venv, tmp_path):
    py = venv / "bin" / "python"
    where = _run([str(py), "-c", "import edgeprune; print(edgeprune.__file__)"], cwd=tmp_path, env=_env(tmp_path))
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    out = _run([str(venv / "bin" / "edgeprune"), "devices"], cwd=tmp_path, env=_env(tmp_path))
    for name in ("host", "qemu-aarch64", "qemu-aarch64-a76", "qemu-armv7", "rpi4", "rpi5"):
        assert name in out.stdout, out.stdout
    # the top-level devices/ folder (profiles and core models) lands inside the installed package
    code = ("from edgeprune.harness.profiles import get_profile; from edgeprune.harness.board_time import load_core; "
            "from edgeprune.harness.shipped_devices import SHIPPED_DIR; print(SHIPPED_DIR); "
            "print(load_core(get_profile('qemu-aarch64').board.core).name)")
    core = _run([str(py), "-c", code],
                cwd=tmp_path, env=_env(tmp_path))
    assert core.stdout.splitlines()[0].startswith(str(venv)) and "edgeprune/devices" in core.stdout, core.stdout


def test_wheel_prunes_a_model(venv, tmp_path):
    from edgeprune import zoo
    from edgeprune.modelio import save_model

    src = save_model(zoo.build("lenet5"), tmp_path / "lenet5.keras", flavor="keras3")
    out = _run([str(venv / "bin" / "edgeprune"), "prune", str(src), "--ratio", "0.5", "-o", str(tmp_path / "small.keras")],
               cwd=tmp_path, env=_env(tmp_path))
    assert (tmp_path / "small.keras").stat().st_size < Path(src).stat().st_size, out.stdout
