"""docs/development.md's layout names every package and module of edgeprune/ and every test tier, so
a new module cannot go undocumented (README links it as the contributor's map)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout() -> str:
    text = (ROOT / "docs" / "development.md").read_text()
    return text.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_every_package_and_module_is_in_the_layout():
    layout = _layout()
    pkg = ROOT / "edgeprune"
    names = [p.name + "/" for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    names += [p.stem for p in pkg.glob("*.py") if not p.stem.startswith("_")]
    for sub in (p for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        names += [f"{sub.name}/{q.name}/" for q in sub.iterdir() if q.is_dir() and (q / "__init__.py").exists()]
    missing = [n for n in names if not re.search(r"(?<![\w/])" + re.escape(n.rstrip("/").split("/")[-1]) + r"\b", layout)]
    assert not missing, f"docs/development.md's layout does not name: {missing}"


def test_the_test_tiers_are_in_the_layout():
    layout = _layout()
    for tier in (p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name in ("unit", "e2e")):
        assert f"tests/{tier}" in layout
