"""Where the shipped device profiles are: ``devices/`` at the top of a source checkout (the source),
``edgeprune/devices/`` inside an installed wheel (setup.py maps the one onto the other)."""
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
_INSTALLED, _SOURCE = _PACKAGE / "devices", _PACKAGE.parent / "devices"

SHIPPED_DIR = _INSTALLED if _INSTALLED.is_dir() else _SOURCE
CORES_DIR = SHIPPED_DIR / "cores"
