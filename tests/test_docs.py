"""The docs cannot drift from the code: links resolve, shown commands parse, quoted numbers come from result files.

Checked in README.md, docs/**/*.md and benchmarks/**/README.md: every relative link names an existing file (and a
``#anchor`` an existing heading, by GitHub's slug rules), and every ``python ...`` command line in a fenced shell
block parses with its script's own argument parser. Also: the README stays a front door, and CITATION.cff parses.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def doc_files(root: Path = ROOT) -> list[Path]:
    files = [
        root / "README.md",
        *sorted((root / "docs").rglob("*.md")),
        *sorted((root / "benchmarks").rglob("README.md")),
    ]
    return [path for path in files if path.is_file()]


@dataclass
class Line:
    number: int
    text: str
    fence: str | None  # the fence's language ("" for a bare fence), None outside code blocks


def read_lines(path: Path) -> list[Line]:
    lines, fence = [], None
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = text.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            continue
        lines.append(Line(number, text, fence))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in read_lines(path):
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line.text)
        if line.fence is not None or not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """One message per relative link of ``path`` that does not resolve (file, or heading of a markdown file)."""
    problems = []
    for line in read_lines(path):
        if line.fence is not None:
            continue
        for target in LINK.findall(line.text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{line.number}: link {target}"
            if not resolved.exists():
                problems.append(f"{where}: {file_part} does not exist")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: no heading with the anchor #{anchor} in {resolved.relative_to(root)}")
    return problems


# ---- commands -------------------------------------------------------------------------------------------------


def shell_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) for each command line of the fenced shell blocks, continuation lines joined."""
    commands, pending, start = [], "", 0
    for line in read_lines(path):
        if line.fence not in SHELL_FENCES:
            continue
        text = line.text.strip()
        if not pending:
            start = line.number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append((start, pending + text))
        pending = ""
    return commands


def python_invocations(command: str) -> list[list[str]]:
    """The ``python ...`` / ``torchrun ... script.py`` parts of a shell line, as argv lists from the program on."""
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: a prose-like line inside a block, not a command
        return []
    parts, current = [], []
    for token in tokens:
        if token in ("&&", "||", ";", "|", "&"):
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    invocations = []
    for part in parts:
        while part and ENV_ASSIGNMENT.match(part[0]):
            part = part[1:]
        if part and (part[0] in ("python", "python3", "torchrun") or part[0].endswith("/python")):
            invocations.append(part)
    return invocations


def without_placeholders(args: list[str]) -> list[str]:
    """Optional groups shown as ``[--flag VALUE]`` are taken as given; ``...`` (more of the same) is dropped."""
    kept = []
    for token in args:
        if token.startswith("["):
            token = token[1:]
        if token.endswith("]") and "[" not in token:
            token = token[:-1]
        if token and token != "...":
            kept.append(token)
    return kept


def target_module(argv: list[str], root: Path) -> tuple[str | None, list[str], str | None]:
    """(module name, its arguments, problem) for ``python -m mod ...``, ``python path.py ...``, ``torchrun ... x.py``.

    The module name is None for modules outside the repository (pytest, venv, pip): those are not checked.
    """
    rest = argv[1:]
    if argv[0] == "torchrun":
        while rest and rest[0].startswith("-"):
            rest = rest[1:]
    elif rest and rest[0] == "-m":
        if len(rest) < 2:
            return None, [], "python -m without a module"
        name = rest[1]
        top = root / name.split(".")[0]
        if not (top.is_dir() or top.with_suffix(".py").is_file()):
            return None, [], None  # not ours
        relative = Path(*name.split("."))
        if not ((root / relative).with_suffix(".py").is_file() or (root / relative / "__main__.py").is_file()):
            return None, [], f"module {name} does not exist"
        return name, rest[2:], None
    while rest and rest[0].startswith("-"):  # interpreter options such as -u
        rest = rest[1:]
    if not rest or not rest[0].endswith(".py"):
        return None, [], None  # python -c, an interactive python: nothing to parse
    script = root / rest[0]
    if not script.is_file():
        return None, [], f"script {rest[0]} does not exist"
    return ".".join(Path(rest[0]).with_suffix("").parts), rest[1:], None


class _Parsed(Exception):
    """Raised by the patched ``parse_args`` once the arguments parsed: ``main`` must not go on to do the work."""


def parse_with_module(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch | None = None) -> str | None:
    """None when ``args`` parse with the module's own parser, else argparse's message."""
    module = importlib.import_module(name)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            if hasattr(module, "get_args_parser"):
                module.get_args_parser().parse_args(args)
                return None
            if not hasattr(module, "main"):
                return f"{name} has neither get_args_parser() nor main(argv)"
            original = argparse.ArgumentParser.parse_args

            def parse_then_stop(parser, argv=None, namespace=None):
                original(parser, argv, namespace)
                raise _Parsed

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
                try:
                    module.main(args)
                except _Parsed:
                    return None
            return f"{name}.main returned without parsing its arguments"
        except SystemExit as error:
            return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else f"exit {error.code}"


def command_problems(path: Path, root: Path = ROOT) -> list[str]:
    """One message per ``python ...`` command of ``path`` that its script's parser refuses (or that names nothing)."""
    problems = []
    for number, command in shell_commands(path):
        for argv in python_invocations(command):
            name, args, problem = target_module(argv, root)
            where = f"{path.relative_to(root)}:{number}: `{' '.join(argv)}`"
            if problem:
                problems.append(f"{where}: {problem}")
            elif name is not None:
                refused = parse_with_module(name, without_placeholders(args))
                if refused:
                    problems.append(f"{where}: {refused}")
    return problems


CODE_SUFFIXES = {".py", ".yaml", ".yml", ".sh", ".sbatch"}
CODE_FOLDERS = ["common", "data", "model", "loss_folder", "engine", "tools", "benchmarks"]
# A pointer at a README section: the manual moved to docs/, so code names the page instead.
README_SECTION = re.compile(r"""README(?:: "|, section |, ")|the README's \w+ table""")
DOCS_PAGE = re.compile(r"\bdocs/([\w./-]+\.md)\b")


def code_files(root: Path = ROOT) -> list[Path]:
    files = [path for path in root.glob("*.py") if path.is_file()]
    for folder in CODE_FOLDERS:
        files += [path for path in sorted((root / folder).rglob("*")) if path.suffix in CODE_SUFFIXES]
    return files


def code_pointer_problems(root: Path = ROOT) -> list[str]:
    """One message per code line that points users at a README section, or at a docs page that does not exist."""
    problems = []
    for path in code_files(root):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.relative_to(root)}:{number}"
            if README_SECTION.search(text):
                problems.append(f"{where}: points at a README section; name the docs/ page")
            problems += [f"{where}: docs/{page} does not exist" for page in DOCS_PAGE.findall(text)
                         if not (root / "docs" / page).is_file()]  # fmt: skip
    return problems


# ---- the tests ---------------------------------------------------------------------------------------------------


def test_the_docs_exist_one_page_per_task():
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    for page in ["README.md", "data.md", "extraction.md", "protocols.md", "training.md", "evaluation.md",
                 "using.md", "model.md", "baselines.md", "performance.md", "install.md", "comparing.md",
                 "multi-node.md", "extending.md"]:  # fmt: skip
        assert page in pages, f"docs/{page} is missing"


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the manual into docs/"
    text = "\n".join(lines)
    assert "pip install -r requirements.txt -r requirements-dev.txt && python -m pytest" in text  # .ci/run's command
    assert "--index-url https://download.pytorch.org/whl/cpu" in text


def test_the_output_folders_the_docs_name_are_not_committed_by_mistake():
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in (
        "predictions/predictions.json",
        "exported/cael-genface/model.safetensors",
        "explain/grid.png",
        "checkpoint/demo-intra-20260101-000000/best.pt",
    ):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True)
        assert ignored.returncode == 0, f"{path} is not git-ignored (.gitignore)"


@pytest.mark.parametrize("path", doc_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert link_problems(path) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_shown_python_command_parses_with_its_own_parser(path):
    assert command_problems(path) == []


def test_the_docs_show_the_commands_the_check_is_about():
    shown = [
        argv for path in doc_files() for _, command in shell_commands(path) for argv in python_invocations(command)
    ]
    modules = {target_module(argv, ROOT)[0] for argv in shown}
    for name in ["train", "test", "predict", "data.extract_faces", "data.datasets", "model.export", "tools.train_set"]:
        assert name in modules, f"no command of {name} found in the docs: the parser of the check is broken"


FAKE_DOC = """# Fake page

## A section
A [good link](other.md#the-heading), a [self link](#a-section), [a missing file](nowhere.md),
[a missing heading](other.md#no-such-heading) and [the web](https://example.org/x).

```bash
python train.py --config cael_demo --set train.epochs=1          # fine
python train.py --no-such-flag                                   # unknown flag
python test.py --runs checkpoint/x [--level video] [--perturb jpeg:70 ...]
python -m data.validate genface.csv --check-imagez               # misspelt flag
python tools/nothing.py --x                                      # no such script
python3 -m venv .venv && python -m pytest -x                     # not ours: skipped
```
"""


def test_the_checks_fail_on_a_bad_link_heading_flag_or_script(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "fake.md"
    page.write_text(FAKE_DOC)
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## The heading\n```bash\n# not a heading\n```\n")
    links = link_problems(page, tmp_path)
    assert len(links) == 2, links
    assert "nowhere.md does not exist" in links[0] and "#no-such-heading" in links[1]
    for name in ["train.py", "test.py", "tools"]:  # the scripts the fake page names, found under the fake root
        source = ROOT / name
        (tmp_path / name).symlink_to(source, target_is_directory=source.is_dir())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validate.py").symlink_to(ROOT / "data" / "validate.py")
    commands = command_problems(page, tmp_path)
    assert len(commands) == 3, commands
    assert "fake.md:9:" in commands[0] and "--no-such-flag" in commands[0]
    assert "fake.md:11:" in commands[1] and "--check-imagez" in commands[1]
    assert "fake.md:12:" in commands[2] and "tools/nothing.py does not exist" in commands[2]


def test_code_points_users_at_docs_pages_that_exist():
    assert code_pointer_problems() == []


def test_the_code_pointer_check_fails_on_a_readme_section_or_a_missing_page(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "data.md").write_text("# Your data\n", encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.py").write_text('# see docs/data.md\n# (README: "Baselines and ablations")\n')
    (tmp_path / "model" / "b.yaml").write_text("# docs/gone.md; the README's cost table\n", encoding="utf-8")
    problems = code_pointer_problems(tmp_path)
    assert len(problems) == 3, problems
    assert problems[0].startswith("model/a.py:2: points at a README section")
    assert "model/b.yaml:1: docs/gone.md does not exist" in problems


def test_a_module_without_get_args_parser_is_parsed_through_its_main():
    assert parse_with_module("benchmarks.extraction_speed", ["--videos", "2", "--workers", "1"]) is None
    assert "unrecognized arguments: --frames" in parse_with_module("benchmarks.extraction_speed", ["--frames", "2"])


def test_github_slugs():
    assert github_slug("Face extraction") == "face-extraction"
    assert github_slug("The demo's fold protocols (commits a44842e and dad0aea)") == (
        "the-demos-fold-protocols-commits-a44842e-and-dad0aea"
    )
    assert github_slug("Predict: `predict.py`") == "predict-predictpy"
    assert github_slug("Defaults (the project's choices)") == "defaults-the-projects-choices"


def test_the_quoted_demo_numbers_are_those_of_the_result_file():
    results = json.loads((ROOT / "benchmarks" / "demo-cpu" / "results.json").read_text())
    readme = (ROOT / "README.md").read_text()
    evaluation = (ROOT / "docs" / "evaluation.md").read_text()
    for text in (readme, evaluation):
        assert f"{results['val_auc']:.4f}" in text
        assert f"{results['test_auc_percent']:.2f}%" in text
    low, high = results["test_auc_ci95_percent"]
    assert f"95% interval {low:.2f}-{high:.2f}" in evaluation
    assert f"{results['onnx_max_difference']:.2e}" in evaluation
    assert f"{results['onnx_max_difference']:.2e}" in (ROOT / "docs" / "using.md").read_text()


def test_citation_cff_cites_the_software_and_prefers_the_genface_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "license"):
        assert citation.get(key), f"CITATION.cff lacks {key}"
    assert citation["type"] == "software" and citation["license"] == "Apache-2.0"
    paper = citation["preferred-citation"]
    assert paper["type"] == "article" and paper["title"].startswith("GenFace: A Large-Scale Fine-Grained")
    assert paper["journal"] == "IEEE Transactions on Information Forensics and Security" and paper["year"] == 2024
    assert paper["authors"][0] == {"family-names": "Zhang", "given-names": "Yaning"}
    assert paper["doi"] == "10.1109/TIFS.2024.3461958"


def test_the_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Copyright 2026 The CAEL reference implementation authors" in text
