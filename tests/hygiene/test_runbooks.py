"""The on-call runbooks stay true: every command they tell an engineer to type parses with
the CLI it names, every dashboard they point at exists, every link resolves, and each has
the sections an engineer looks for under pressure."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.support.doc_commands import check_autobiz, check_temporal, shell_commands

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
BOOKS = sorted(RUNBOOKS.glob("RB-*.md"))
SECTIONS = ["## Symptoms", "## Diagnose", "## Fix", "## Escalate", "## Roll back"]
# Programs a runbook's shell blocks may use besides the two checked ones.
OTHER_PROGRAMS = {"docker", "git", "kubectl", "curl"}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_the_five_required_runbooks_exist() -> None:
    prefixes = {p.name[:5] for p in BOOKS}
    assert {"RB-01", "RB-02", "RB-03", "RB-04", "RB-05"} <= prefixes
    assert len(prefixes) == len(BOOKS), "two runbooks share a number"


def test_the_index_lists_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    linked = set(re.findall(r"\]\((RB-[^)]+\.md)\)", index))
    assert linked == {p.name for p in BOOKS}


@pytest.mark.parametrize("book", BOOKS, ids=_ids(BOOKS))
def test_sections_and_dashboard(book: Path) -> None:
    text = book.read_text()
    positions = [text.find(s) for s in SECTIONS]
    assert -1 not in positions, f"missing {SECTIONS[positions.index(-1)]}"
    assert positions == sorted(positions), "sections out of order"
    dashboards = re.findall(r"\(`dashboards/([\w-]+\.json)`,\s+uid\s+`([\w-]+)`\)", text)
    assert dashboards, "no **Dashboard:** (`dashboards/NAME.json`, uid `UID`)"
    for name, uid in dashboards:
        path = ROOT / "dashboards" / name
        assert path.is_file(), f"{name} does not exist"
        assert json.loads(path.read_text())["uid"] == uid, f"{name} has another uid"


@pytest.mark.parametrize("book", BOOKS, ids=_ids(BOOKS))
def test_every_shell_command_parses(book: Path) -> None:
    shown = shell_commands(book.read_text())
    assert any(s.words[0] in ("autobiz", "temporal") for s in shown)
    for command in shown:
        program = command.words[0]
        if program == "autobiz":
            check_autobiz(command.words)
        elif program == "temporal":
            check_temporal(command.words)
        else:
            assert program in OTHER_PROGRAMS, f"{command.line}: {program} is not expected here"


@pytest.mark.parametrize("book", BOOKS, ids=_ids(BOOKS))
def test_commands_quoted_in_prose_exist(book: Path) -> None:
    """`autobiz refund request` in a sentence names a real command with real options."""
    text = re.sub(r"```.*?```", "", book.read_text(), flags=re.DOTALL)
    for span in re.findall(r"`((?:autobiz|temporal) [^`]+)`", text):
        words = tuple(shlex.split(span.replace("…", "")))  # an elided rest
        if words[0] == "autobiz":
            check_autobiz(words, complete=False)
        else:
            check_temporal(words)


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+ (.+)$", doc.read_text(), flags=re.MULTILINE)
    plain = (re.sub(r"[^\w\- ]", "", h.replace("`", "")).strip().lower() for h in heads)
    return {h.replace(" ", "-") for h in plain}


@pytest.mark.parametrize("book", [*BOOKS, RUNBOOKS / "README.md"], ids=[*_ids(BOOKS), "README"])
def test_links_resolve(book: Path) -> None:
    for target in re.findall(r"\]\(([^)]+)\)", book.read_text()):
        path, _, anchor = target.partition("#")
        doc = (book.parent / path).resolve()
        assert doc.is_file(), f"{target}: no such file"
        if anchor:
            assert anchor in _anchors(doc), f"{target}: no such heading"
