"""No import cycles in the package: module-level AND function-level imports (a function-level import
that hides a cycle is still one), between modules and between the top-level units (a subpackage or a
top-level module), read from the source's AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hemabench

PACKAGE = Path(hemabench.__file__).resolve().parent


def module_names(root: Path) -> dict[str, Path]:
    """dotted name -> file, for every module of the package at ``root`` (a package is its __init__)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its body (``from x import name`` names
    module ``x.name`` where that is a module, else ``x``)."""
    modules, top = module_names(root), root.name

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                if name == top or name.startswith(top + "."):
                    target = known(name)
                    if target and target != module:
                        graph[module].add(target)
    return graph


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between top-level units: ``pkg.datasets.sources`` -> ``pkg.datasets``."""
    unit = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    out: dict[str, set[str]] = {unit(m): set() for m in graph}
    for module, targets in graph.items():
        out[unit(module)] |= {unit(t) for t in targets if unit(t) != unit(module)}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 100 and "hemabench.datasets.sources" in graph["hemabench.embeddings.extract"]
    assert cycles(graph) == []
    assert cycles(unit_graph(graph)) == []


@pytest.mark.parametrize("hidden", [False, True])
def test_a_planted_cycle_is_found_even_behind_a_function_level_import(tmp_path, hidden):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "low.py").write_text("def f():\n    from pkg.top import g\n    return g\n" if hidden
                                         else "from ..top import g\n")
    (root / "top.py").write_text("from pkg.sub import low\n\ng = 1\n")
    (root / "other.py").write_text("import pkg.top\n")
    graph = import_graph(root)
    assert graph["pkg.sub.low"] == {"pkg.top"} and graph["pkg.top"] == {"pkg.sub.low"}
    assert cycles(graph) == [["pkg.sub.low", "pkg.top"]]
    assert cycles(unit_graph(graph)) == [["pkg.sub", "pkg.top"]]


def test_a_cycle_between_subpackages_only_is_found(tmp_path):
    """datasets.sources -> embeddings.cache and embeddings.extract -> datasets.sources: no module cycle,
    but the two subpackages need each other."""
    root = tmp_path / "pkg"
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "a" / "one.py").write_text("def f():\n    import pkg.b.two\n")
    (root / "b" / "two.py").write_text("")
    (root / "b" / "three.py").write_text("from pkg.a import one\n")
    graph = import_graph(root)
    assert cycles(graph) == []
    assert cycles(unit_graph(graph)) == [["pkg.a", "pkg.b"]]


# The package's layers, lowest first (README "Repository layout"): a unit imports only units of earlier
# layers. A new subpackage or top-level module must be placed here.
LAYERS = (
    {"errors", "paths", "registry", "images", "synthetic", "features"},
    {"files", "compute"},
    {"hemabench"},  # the package itself: its version, and CPU math pinned before numpy loads
    {"datasets", "encoders", "results"},
    {"splits", "embeddings", "pretrain", "protocols"},
    {"tasks"},
    {"pipeline", "published"},
    {"submissions"},
    {"leaderboard"},
    {"cli"},
    {"__main__"},
)


def upward_imports(units: dict[str, set[str]], layers=LAYERS, top: str = "hemabench") -> list[str]:
    """'a -> b' for every import of a unit from its own or a later layer, and 'a: no layer' for a
    unit the layers do not place."""
    short = lambda unit: unit if unit == top else unit.removeprefix(top + ".")  # noqa: E731
    level = {name: i for i, layer in enumerate(layers) for name in layer}
    out = [f"{short(u)}: no layer" for u in sorted(units) if short(u) not in level]
    out += [f"{short(a)} -> {short(b)}" for a in sorted(units) for b in sorted(units[a])
            if short(a) in level and short(b) in level and level[short(b)] >= level[short(a)]]
    return out


def test_every_unit_imports_only_lower_layers():
    units = unit_graph(import_graph(PACKAGE))
    assert len(units) == sum(map(len, LAYERS))
    assert upward_imports(units) == []
    # the top level holds the packages and only these modules
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == \
        ["__init__.py", "__main__.py", "errors.py", "paths.py", "registry.py"]


def test_an_upward_or_sideways_import_and_an_unplaced_unit_are_found():
    units = {"pkg": set(), "pkg.low": {"pkg.high"}, "pkg.high": {"pkg.low"}, "pkg.side": {"pkg.low"},
             "pkg.new": set()}
    layers = ({"low"}, {"high", "side"}, {"pkg"})
    assert upward_imports(units, layers, "pkg") == ["new: no layer", "low -> high"]
    assert upward_imports({"pkg.a": {"pkg.b"}, "pkg.b": set()}, ({"a", "b"},), "pkg") == ["a -> b"]
