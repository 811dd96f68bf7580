"""Helpers shared by both tiers (tests/unit, tests/e2e): importable as `helpers.*` because pyproject.toml's
[tool.pytest.ini_options] puts tests/ on the path (`pythonpath = ["tests"]`)."""
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
DATA = TESTS / "data"
