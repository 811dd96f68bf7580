"""Imports sit at module level; an import left inside a function is a deliberate deferral and says why.

A function-level import needs a comment: on one of its own lines, or on the line directly above the block
of consecutive imports it belongs to (``# TensorFlow loads only when the step runs, ...``).  That the light
modules really load no TensorFlow is checked in a fresh interpreter: tests/e2e/test_import_reasons_e2e.py.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edgeprune"


def unexplained(source: str) -> list[tuple[int, str]]:
    """(line, text) of each import inside a function with no reason comment."""
    lines = source.splitlines()
    found = []

    def visit(node, in_function: bool):
        for field in ("body", "orelse", "finalbody", "handlers"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            head = None  # the first import of the current block of consecutive imports
            for s in statements:
                if not isinstance(s, (ast.Import, ast.ImportFrom)):
                    head = None
                    continue
                head = head or s
                if not in_function:
                    continue
                own = any("#" in lines[i] for i in range(s.lineno - 1, s.end_lineno))
                above = head.lineno >= 2 and lines[head.lineno - 2].strip().startswith("#")
                if not (own or above):
                    found.append((s.lineno, lines[s.lineno - 1].strip()))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def _unexplained_by_file() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        hits = unexplained(path.read_text())
        if hits:
            out[rel] = hits
    return out


def test_checker_accepts_reasons_above_a_block_or_on_the_line():
    source = '''
import os


def f():
    # TensorFlow loads only when f runs
    import tensorflow as tf

    from edgeprune.keras import keras
    return tf, keras


def g():
    import onnx  # onnx only for g

    try:
        # Ray is optional
        import ray
    except ImportError:
        ray = None
    return onnx, ray
'''
    assert unexplained(source) == []


def test_checker_finds_an_import_without_a_reason():
    source = '''
def f():
    """Docstring."""
    import json

    x = 1
    # a reason for the second block only
    import tensorflow as tf
    return json, tf, x
'''
    assert unexplained(source) == [(4, "import json")]


def test_every_function_level_import_gives_its_reason():
    missing = _unexplained_by_file()
    assert not missing, "\n".join(
        f"edgeprune/{f}:{line}: {text}  (move it to module level, or say on the line above why it waits)"
        for f, hits in missing.items() for line, text in hits)
