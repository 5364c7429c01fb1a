"""The README and the pages in docs/ cannot rot: their Python blocks run as written (against
the embedded mock API), every ``fanfetch`` command in their shell blocks parses with the real
flags, and every flag of ``fanfetch run`` is on the flags page."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

import click
import pytest

from fanfetch._cli._main import cli

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(language: str) -> list[tuple[str, str]]:
    return [
        (page.name, code)
        for page in PAGES
        for code in re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)
    ]


PYTHON = _blocks("python")


def _commands() -> list[tuple[str, str]]:
    """Each ``fanfetch ...`` command in a shell block (continued lines joined, after a pipe
    or ``&&`` too; comments, ``&`` and redirections dropped)."""
    found = []
    for page, code in _blocks("sh"):
        for line in code.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            command: list[str] = []
            for word in [*lexer, ";"]:
                if word[0] not in "|&;<>":
                    command.append(word)
                    continue
                if command[:3] == ["python", "-m", "fanfetch"]:
                    command = ["fanfetch", *command[3:]]
                if command[:1] == ["fanfetch"]:
                    found.append((page, shlex.join(command[1:])))
                command = []
                if word[0] in "<>":
                    command = ["<redirected>"]  # the file name that follows is not an argument
    return found


COMMANDS = _commands()


def test_every_page_is_there_and_has_something_to_check():
    assert {p.name for p in PAGES} >= {"README.md", "index.md", "flags.md", "python-api.md"}
    assert PYTHON and len(COMMANDS) > 10


@pytest.mark.parametrize(
    ("page", "code"),
    [  # a block that starts a Ray cluster takes seconds: slow, left out of make test-fast
        pytest.param(p, c, marks=pytest.mark.slow) if 'cluster="ray"' in c else (p, c)
        for p, c in PYTHON
    ],
    ids=[f"{p}:{c.splitlines()[0][:30]}" for p, c in PYTHON],
)
async def test_each_python_block_runs_as_written(page: str, code: str, tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.strip()


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[c[:50] for _, c in COMMANDS])
def test_each_fanfetch_command_parses_with_the_real_flags(page: str, command: str):
    """Parsed as click would parse it (flags, their values' types), without running it."""
    words = shlex.split(command)
    if words in (["--help"], ["run", "--help"]):
        return
    with click.Context(cli) as ctx:
        name, sub, rest = cli.resolve_command(ctx, words)
        assert sub is not None, f"{page}: no command {name!r}"
        try:
            sub.make_context(name, rest, parent=ctx)
        except click.UsageError as exc:
            if "does not exist" not in str(exc):  # an input file named only as an example
                raise AssertionError(f"{page}: `fanfetch {command}`: {exc}") from None


@pytest.mark.parametrize("page", ["docs/flags.md", "README.md"])
def test_every_flag_of_fanfetch_run_is_on_the_flags_page_and_in_the_readme_s_table(page: str):
    text = (ROOT / page).read_text()
    if page == "README.md":  # its table at a glance: only the lines of tables count
        text = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    run = cli.commands["run"]
    missing = [
        flag
        for param in run.params
        for flag in [*param.opts, *param.secondary_opts]
        if flag.startswith("--") and f"`{flag}" not in text and f" {flag}" not in text
        and flag != "--help"
    ]  # fmt: skip
    assert missing == []
