"""The docs stay true: generated files are current, relative links resolve, and every `teeplane ...`
command a page mentions exists in the CLI."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import typer
from typer.core import TyperGroup

from teeplane.cli import app

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)[^)]*\)")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHELL = {"", "sh", "bash", "shell", "console"}  # fences whose lines are commands (not `text` diagrams)
SPAN = re.compile(r"`((?:[^`\n]|\n(?!\s*\n))+)`")  # may wrap onto the next line, not across paragraphs
WORD = re.compile(r"^[a-z][a-z0-9-]*$")


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """hack/docs.py, imported from its path (hack/ is not a package)."""
    spec = importlib.util.spec_from_file_location("teeplane_docs_generator", REPO / "hack" / "docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_current(generator: ModuleType, tmp_path: Path) -> None:
    generator.generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert {str(p) for p in generated} >= {"cli.md", "operator.md", "api/ras.openapi.json", "api/tks.openapi.json"}
    stale = [
        str(p) for p in generated if not (DOCS / p).is_file() or (DOCS / p).read_text() != (tmp_path / p).read_text()
    ]
    assert not stale, f"docs/{', docs/'.join(stale)} not current: run hack/docs.sh and commit the result"


def test_a_stale_generated_section_is_refilled(generator: ModuleType) -> None:
    page = "intro\n<!-- generated:operator-run-flags -->\nold table\n<!-- end:operator-run-flags -->\noutro\n"
    filled = generator.fill(page)
    assert "old table" not in filled
    assert "| `--ras-url` | yes |" in filled
    assert filled.startswith("intro\n") and filled.endswith("<!-- end:operator-run-flags -->\noutro\n")


def broken_links(page: Path) -> list[str]:
    """The relative link targets in a Markdown page that name no existing file or directory."""
    broken = []
    for target in LINK.findall(SPAN.sub("", FENCE.sub("", page.read_text()))):
        path = target.split("#", 1)[0]
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path):
            continue  # an anchor on the same page, or a URL
        if not (page.parent / path).exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", [*PAGES, REPO / "README.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#a) [web](https://example.com/x) [anchor](#b) `[code](x)` [gone](missing.md)\n")
    assert broken_links(page) == ["missing.md"]


def mentioned_commands(text: str) -> Iterator[str]:
    """Each `teeplane ...` command line in shell code blocks and in code spans."""
    for language, block in FENCE.findall(text):
        if language not in SHELL:
            continue
        for raw in block.replace("\\\n", " ").splitlines():  # shell line continuations joined
            line = " ".join(raw.removeprefix("$ ").split())
            if line.startswith("teeplane "):
                yield line
    for span in SPAN.findall(FENCE.sub("", text)):
        if span.startswith("teeplane "):
            yield " ".join(span.split())


def unknown_command(line: str) -> str | None:
    """Why `line` names no command of the CLI (or an option its command lacks), or None if it does."""
    command = typer.main.get_command(app)
    path = ["teeplane"]
    words = line.split()[1:]
    while words and isinstance(command, TyperGroup) and WORD.match(words[0]):
        if words[0] not in command.commands:
            return f"{' '.join(path)} has no command {words[0]} (in `{line}`)"
        command = command.commands[words.pop(0)]
        path.append(command.name or "")
    options = {"--help", *(flag for param in command.params for flag in param.opts + param.secondary_opts)}
    for word in words:
        if word.startswith("#"):
            break  # a shell comment
        flag = word.strip("[](){}|,").split("=", 1)[0]
        if flag.startswith("-") and flag not in options and flag not in ("-", "--"):
            return f"{' '.join(path)} has no option {flag} (in `{line}`)"
    return None


@pytest.mark.parametrize("page", [*PAGES, REPO / "README.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_mentioned_commands_exist(page: Path) -> None:
    problems = [problem for line in mentioned_commands(page.read_text()) if (problem := unknown_command(line))]
    assert problems == []


def test_an_unknown_command_is_found() -> None:
    text = (
        "Run `teeplane dev up\n--kube`, then:\n\n```sh\n$ teeplane keys nosuch ID\nteeplane verify URL [--no-such]\n"
        "teeplane keys list   # --json\n```\n\n```text\nteeplane diagram --> arrow\n```\n"
    )
    lines = list(mentioned_commands(text))
    assert lines == ["teeplane keys nosuch ID", "teeplane verify URL [--no-such]", "teeplane keys list # --json",
                     "teeplane dev up --kube"]  # fmt: skip
    assert [unknown_command(line) for line in lines] == [
        "teeplane keys has no command nosuch (in `teeplane keys nosuch ID`)",
        "teeplane verify has no option --no-such (in `teeplane verify URL [--no-such]`)",
        None,
        None,
    ]
