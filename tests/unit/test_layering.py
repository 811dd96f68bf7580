"""The layering import-linter checks (contracts in pyproject.toml), and no import cycles."""

import grimp


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = grimp.build_graph("edgeprune", exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def _package(module: str) -> str:
    """edgeprune.harness.bench -> edgeprune.harness (the first level below the root)."""
    return ".".join(module.split(".")[:2])


def _shim_edges() -> set[tuple[str, str]]:
    """The layers contract's ignore_imports: re-exports kept at old paths until their importers move."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    layers = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    assert layers, "pyproject.toml has no layers contract"
    return {tuple(part.strip() for part in line.split("->")) for c in layers for line in c.get("ignore_imports", [])}


def test_no_package_cycles_including_function_level_imports():
    """No two first-level packages import each other, counting imports inside functions (grimp sees them),
    apart from the listed moved-name re-exports."""
    graph = grimp.build_graph("edgeprune", exclude_type_checking_imports=True)
    shims = _shim_edges()
    edges: dict[str, set[str]] = {}
    for m in graph.modules:
        for d in graph.find_modules_directly_imported_by(m):
            if (m, d) not in shims and _package(m) != _package(d) and _package(m) != "edgeprune":
                edges.setdefault(_package(m), set()).add(_package(d))
    assert _cycles(edges) == []
