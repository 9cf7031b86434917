"""Every ``ainu-engine`` command line in the README and docs/ names a real command and only
options that command has: the docs cannot drift from the CLI unnoticed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from ainu_engine.cli._app import app

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]


def _command_lines(text: str):
    """``ainu-engine ...`` lines of code blocks (``$`` prompts and continuation lines joined)."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip().removeprefix("$ ")
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            if line.startswith("ainu-engine "):
                yield line
            i += 1


def _options(line: str) -> tuple[str, list[str]]:
    """(the command: ``name``, or ``group name`` for a command group's, its options)."""
    from ainu_engine.cli._app import GROUPS

    line = re.sub(r"\s#.*$", "", line)  # a trailing comment
    tokens = shlex.split(line, posix=True)
    words = [t for t in tokens[1:] if not t.startswith("-")]
    opts = [t.strip("[]").split("=")[0] for t in tokens[1:] if t.lstrip("[").startswith("--")]
    if len(words) >= 2 and words[0] in GROUPS:
        return f"{words[0]} {words[1]}", opts
    return (words[0] if words else ""), opts


def _all_commands():
    """(name, function) of every command, ``group name`` for the groups' commands."""
    from ainu_engine.cli._app import COMMANDS, GROUPS

    yield from COMMANDS.items()
    for g, sub in GROUPS.items():
        for n, fn in sub.items():
            yield f"{g} {n}", fn


def _lookup(cli, name: str):
    parts = name.split()
    cmd = cli.commands.get(parts[0])
    for p in parts[1:]:
        cmd = cmd.commands.get(p) if cmd is not None and hasattr(cmd, "commands") else None
    return cmd


def _cases():
    for doc in DOCS:
        for line in _command_lines(doc.read_text(encoding="utf-8")):
            yield pytest.param(line, id=f"{doc.relative_to(REPO)}: {line[:60]}")


@pytest.fixture(scope="module")
def cli():
    return typer.main.get_command(app)


def test_the_docs_show_commands():
    assert len(list(_cases())) > 20


@pytest.mark.parametrize("line", list(_cases()))
def test_documented_command_line_matches_the_cli(cli, line):
    name, opts = _options(line)
    if name in ("", "--help", "--version"):
        return
    cmd = _lookup(cli, name)
    assert cmd is not None, f"no command {name!r}"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "--debug"}
    unknown = [o for o in opts if o not in known]
    assert not unknown, f"{name}: no option {unknown} (has {sorted(known)})"


def test_every_command_help_reads_as_paragraphs_with_a_valid_example(cli):
    """`ainu-engine COMMAND --help`: the docstring's lines joined into paragraphs (the terminal
    wraps them), and an ``Example: ainu-engine ...`` paragraph that is a real command line."""
    from ainu_engine.cli._app import paragraphs

    for name, fn in _all_commands():
        text = paragraphs(fn.__doc__)
        assert all("\n" not in para for para in text.split("\n\n")), name
        examples = [p for p in text.split("\n\n") if p.startswith("Example: ")]
        assert examples, f"{name}: no example in its help"
        line = examples[0].removeprefix("Example: ")
        used, opts = _options(line.split(" > ")[0])
        assert used == name, (name, line)
        cmd = _lookup(cli, name)
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        assert not [o for o in opts if o not in known], (name, line)


@pytest.mark.parametrize("width", [80, 120])
def test_every_command_help_fits_a_terminal(width):
    """`ainu-engine COMMAND --help` at 80 and 120 columns: no line wider than the terminal, and
    no command's help longer than 100 lines (one option a line, help wrapped: the boxed tables
    of rich ran to 190 lines at 80 columns)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": str(width), "TERM": "dumb"}
    for name, _ in _all_commands():
        argv = [sys.executable, "-m", "ainu_engine", *name.split(), "--help"]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60).stdout
        lines = out.splitlines()
        assert lines and lines[0].startswith(f"Usage: ainu-engine {name}"), name
        assert max(map(len, lines)) <= width, (name, max(lines, key=len))
        assert len(lines) <= 100, (name, len(lines))
