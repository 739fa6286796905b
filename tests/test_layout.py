"""The house rules a new maintainer relies on, read from the source (nothing imported): every package says its role,
no file is over 800 lines, no module only passes on another module's names, and the engine shows its halves."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {".venv", ".git", "checkpoint", "build", "node_modules", "__pycache__"}
MAX_LINES = 800
PACKAGES = ("common", "data", "engine", "loss_folder", "model", "tools")


def project_files(root: Path = REPO) -> list[Path]:
    return [
        path
        for path in sorted(root.rglob("*.py"))
        if not (SKIPPED & set(path.relative_to(root).parts))
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]


def is_facade(path: Path) -> bool:
    """A module whose code is only imports (and ``__all__``): it exists to pass on names defined elsewhere, or one
    that re-exports with ``import *``. Package ``__init__`` files that import their members to register them, and
    entry points (``if __name__ == "__main__"``), are not facades by this rule."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if any(isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names) for node in ast.walk(tree)):
        return True
    if path.name == "__init__.py":
        return False
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    if not body or any(isinstance(node, ast.If) for node in body):
        return False
    only_imports = all(
        isinstance(node, (ast.Import, ast.ImportFrom))
        or (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"])
        for node in body
    )
    return only_imports


def test_no_file_is_over_800_lines():
    long = {
        str(path.relative_to(REPO)): n
        for path in project_files()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines (one job per file): {long}"


def test_every_package_says_its_role():
    for top in PACKAGES:
        for init in sorted((REPO / top).rglob("__init__.py")):
            docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
            assert docstring and len(docstring) > 30, f"{init.relative_to(REPO)} has no docstring saying its role"


def test_no_module_is_a_facade():
    facades = [str(path.relative_to(REPO)) for path in project_files() if is_facade(path)]
    assert not facades, f"modules that only pass on other modules' names (import from where they live): {facades}"


def test_re_exports_are_not_marked_away():
    """A ``# noqa: F401`` that keeps an unused import alive is a re-export in disguise (registrations excepted)."""
    marked = []
    for path in project_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "noqa: F401" in line and "regist" not in line and "needs it" not in line:
                marked.append(f"{path.relative_to(REPO)}:{number}")
    assert not marked, f"unused imports kept for re-export: {marked}"


def test_the_engine_shows_its_halves():
    engine = REPO / "engine"
    halves = {path.name for path in engine.iterdir() if path.is_dir() and (path / "__init__.py").is_file()}
    assert {"training", "evaluation", "inference"} <= halves
    shared = sorted(path.name for path in engine.glob("*.py") if path.name != "__init__.py")
    assert shared == ["config.py", "device.py", "distributed.py", "figures.py", "logs.py"], shared


def test_the_facade_rule_can_fail(tmp_path):
    (tmp_path / "facade.py").write_text('"""Old home."""\nfrom x import a, b\n__all__ = ["a", "b"]\n')
    (tmp_path / "star.py").write_text("from x import *\n\ndef f():\n    return 1\n")
    entry = "import sys\nfrom x import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
    (tmp_path / "entry.py").write_text(entry)
    (tmp_path / "real.py").write_text("from x import a\n\ndef f():\n    return a\n")
    assert is_facade(tmp_path / "facade.py") and is_facade(tmp_path / "star.py")
    assert not is_facade(tmp_path / "entry.py") and not is_facade(tmp_path / "real.py")
