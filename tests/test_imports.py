"""The project's import graph, read from the source (ast, nothing imported): no module reaches itself again.

Every ``import`` counts, at the top of a file or inside a function: a function-level import only postpones a
circle to the first call, it does not remove it.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {".venv", ".git", "tests", "checkpoint", "build", "node_modules"}


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file of every .py file of the project (packages by their ``__init__.py``)."""
    modules = {}
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if SKIPPED & set(relative.parts[:-1]) or any(part.startswith(".") for part in relative.parts):
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules that ``module`` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node, is_package)
            for alias in node.names:
                # ``from package import submodule`` imports the submodule; ``from module import name`` the module
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return {name for name in found if name in known and name != module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph.get(child, ()))))
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    known = project_modules(root)
    return {module: imported_modules(module, path, known) for module, path in known.items()}


def test_the_project_has_no_import_cycle():
    graph = import_graph(REPO)
    assert {"model.hub", "model.registry", "engine.training.trainer", "test"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import c\n")
    (package / "c.py").write_text("def other():\n    import pkg.a\n")
    (tmp_path / "tool.py").write_text("from pkg.a import thing\n")
    graph = import_graph(tmp_path)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"} and graph["tool"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("def other():\n    import json\n")
    assert find_cycle(import_graph(tmp_path)) is None


def test_one_of_each_small_thing():
    import data.faces.pipeline
    import engine.inference.forward
    from common.batching import batched
    from data.targets import FINE_LEVELS

    assert engine.inference.forward.FINE_LEVELS is FINE_LEVELS and engine.inference.forward.batched is batched
    assert data.faces.pipeline.batched is batched and not hasattr(data.faces.pipeline, "_batches")
    assert [list(b) for b in batched(iter(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    assert not (REPO / "data" / "dataset.py").exists()  # beside data/datasets.py it invited the wrong import
