"""Commands shown in Markdown (runbooks, operations docs) checked against the real CLIs.

``autobiz`` commands are parsed by the application's own click command tree (the leaf's
``make_context``: unknown options, missing required arguments and bad values fail as they
would for an operator, nothing runs); ``temporal`` commands are checked against the
bundled binary's help: the subcommand path exists (its ``Usage:`` line names it) and
every flag is one it or the global options know.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from functools import cache
from typing import Any

import typer
import typer.main

from autobiz.cli.main import app
from autobiz.devstack.services import temporal_binary


@dataclass(frozen=True)
class Shown:
    """One command line of a ``bash`` block, split into words."""

    words: tuple[str, ...]
    line: str


def bash_blocks(markdown: str) -> list[str]:
    """The bodies of the ``bash`` fenced blocks, continuation lines joined."""
    return [
        block.split("```", 1)[0].replace("\\\n", " ") for block in markdown.split("```bash\n")[1:]
    ]


def substitutions(words: list[str]) -> list[list[str]]:
    """``$(autobiz approvals sign …)`` words inside another command, split."""
    found = []
    for word in words:
        if word.startswith("$(") and word.endswith(")"):
            found.append(shlex.split(word[2:-1]))
    return found


def shell_commands(markdown: str) -> list[Shown]:
    """Every command line in the ``bash`` blocks (comments and blank lines dropped), and
    the ``$(…)`` commands nested in them."""
    found: list[Shown] = []
    for body in bash_blocks(markdown):
        for raw in body.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            found.append(Shown(tuple(words), line))
            found.extend(Shown(tuple(inner), line) for inner in substitutions(words))
    return found


def check_autobiz(words: tuple[str, ...], complete: bool = True) -> None:
    """Parse ``autobiz …`` as the CLI would; raise ``AssertionError`` naming the problem.

    ``complete=False`` is for a command quoted in prose (``autobiz refund request``):
    the command must exist and its options be known, its arguments may be left out."""
    assert words[0] == "autobiz", words
    root: Any = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="autobiz")
    command: Any = root
    rest = list(words[1:])
    path = ["autobiz"]
    while hasattr(command, "get_command"):  # a group: the next word is the subcommand
        assert rest, f"{' '.join(words)}: {' '.join(path)} needs a subcommand"
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{' '.join(words)}: no command {' '.join([*path, name])}"
        path.append(name)
        ctx = typer.Context(sub, info_name=name, parent=ctx)
        command = sub
    if not complete:
        known = {opt for param in command.params for opt in param.opts}
        for word in rest:
            flag = word.split("=", 1)[0]
            assert not flag.startswith("-") or flag in known, f"{' '.join(words)}: {flag}?"
        return
    try:
        command.make_context(path[-1], rest, parent=ctx.parent)
    except Exception as exc:  # typer's (vendored) click: UsageError, BadParameter…
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        raise AssertionError(f"{' '.join(words)}: {message}") from None


@cache
def _temporal_help(*path: str) -> str:
    args = [*path, "--help"] if path else ["options"]
    return subprocess.run(
        [temporal_binary(), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


_SUB_FLAG = re.compile(r"^\s+(?:(-[a-zA-Z]), )?(--[a-z][\w-]*)", re.MULTILINE)
_GLOBAL_FLAG = re.compile(r"^\s+(--[a-z][\w-]*)(?:, (-[a-zA-Z]))?", re.MULTILINE)


def temporal_flags(*path: str) -> set[str]:
    """The flags ``temporal <path>`` accepts: its own and the global options."""
    flags = {f for pair in _SUB_FLAG.findall(_temporal_help(*path)) for f in pair if f}
    flags |= {f for pair in _GLOBAL_FLAG.findall(_temporal_help()) for f in pair if f}
    return flags


def check_temporal(words: tuple[str, ...]) -> None:
    """``temporal …``: the subcommand exists and each flag is known to it."""
    assert words[0] == "temporal", words
    path: list[str] = []
    for word in words[1:]:
        if word.startswith("-"):
            break
        path.append(word)
    usage = f"Usage:\n  temporal {' '.join(path)} [flags]"
    assert usage in _temporal_help(*path), f"{' '.join(words)}: no command temporal {path}"
    known = temporal_flags(*path)
    for word in words[1 + len(path) :]:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            assert flag in known, f"{' '.join(words)}: temporal {' '.join(path)} has no {flag}"
