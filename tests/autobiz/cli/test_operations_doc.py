"""docs/operations.md#running-the-flows stays true: every `autobiz` command it shows
exists, every `temporal` flag it uses is one the bundled CLI knows, and every JSON input
validates against the model the workflow or handler takes."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic import BaseModel

from autobiz.cli.main import app
from autobiz.devstack.services import temporal_binary
from workflows.common.models import Decision
from workflows.ids import cancellation_workflow_id, order_workflow_id, refund_workflow_id
from workflows.orders.models import OrderCancellationInput, OrderFulfillInput
from workflows.payments.models import RefundInput

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"
START_INPUTS: dict[str, type[BaseModel]] = {
    "OrderFulfill": OrderFulfillInput,
    "Refund": RefundInput,
    "OrderCancellation": OrderCancellationInput,
}


def _section() -> str:
    text = DOC.read_text()
    start = text.index("## Running the flows")
    return text[start : text.index("\n## ", start + 3)]


def _commands(program: str) -> list[list[str]]:
    """Shell commands starting with ``program`` in the section's code blocks, and the
    ``$(program …)`` substitutions inside other commands."""
    found = []
    for block in _section().split("```bash\n")[1:]:
        body = block.split("```")[0].replace("\\\n", " ")
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(f"{program} "):
                found.append(shlex.split(line.replace("…", "x")))
            if line.startswith("temporal ") and "$(" in line:
                for word in shlex.split(line.replace("…", "x")):
                    inner = _substitution(word)
                    if inner and inner[0] == program:
                        found.append(inner)
    return found


def _substitution(word: str) -> list[str] | None:
    """``$(autobiz approvals sign …)`` as words, else None."""
    if word.startswith("$(") and word.endswith(")"):
        return shlex.split(word[2:-1])
    return None


def _option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


@cache
def _temporal_help(*subcommand: str) -> str:
    run = (
        [temporal_binary(), *subcommand, "--help"] if subcommand else [temporal_binary(), "options"]
    )
    return subprocess.run(run, capture_output=True, text=True, check=True).stdout


def test_every_autobiz_command_shown_exists() -> None:
    root: Any = typer.main.get_command(app)
    ctx = typer.Context(root)
    shown = _commands("autobiz")
    assert len(shown) >= 6
    # and the ones in the table
    for group, name in [
        ("order", "start"),
        ("order", "status"),
        ("refund", "request"),
        ("cancel", "request"),
        ("approvals", "list"),
        ("approvals", "approve"),
        ("approvals", "deny"),
        ("approvals", "sign"),
    ]:
        shown.append(["autobiz", group, name])
    for words in shown:
        command = root.get_command(ctx, words[1])
        rest = words[2:]
        while hasattr(command, "get_command"):  # a group: the next word is the subcommand
            command, rest = command.get_command(ctx, rest[0]), rest[1:]
        assert command is not None, words
        known = {opt for p in command.params for opt in p.opts}
        for word in rest:
            if word.startswith("--"):
                assert word in known, f"{' '.join(words)}: {word} is not an option"


def test_every_temporal_flag_shown_exists_and_inputs_validate() -> None:
    shown = _commands("temporal")
    kinds = {tuple(words[1:3]) for words in shown}
    assert {
        ("workflow", "start"),
        ("workflow", "query"),
        ("workflow", "update"),
        ("workflow", "signal"),
        ("workflow", "list"),
        ("workflow", "result"),
    } <= kinds
    inputs = 0
    for words in shown:
        sub = words[1:4] if words[2] == "update" else words[1:3]
        known = _temporal_help(*sub) + _temporal_help()
        for word in words:
            if word.startswith("-") and word not in ("-o",):
                assert f"{word} " in known or f"{word}," in known, f"{' '.join(sub)} {word}"
        if "--input" not in words:
            continue
        given = _option(words, "--input")
        inputs += 1
        signed = _substitution(given)
        if signed is not None:  # a decision signed by `autobiz approvals sign`
            assert signed[:3] == ["autobiz", "approvals", "sign"], given
            assert _option(words, "--name") in ("decide", "decide_signal")
            continue
        data = json.loads(given)
        workflow_id = _option(words, "--workflow-id")
        if sub == ["workflow", "start"]:
            model = START_INPUTS[_option(words, "--type")]
            parsed = model.model_validate(data)
            expected = {
                OrderFulfillInput: lambda m: order_workflow_id(m.tenant_id, m.order_id),
                RefundInput: lambda m: refund_workflow_id(m.tenant_id, m.refund_request_id),
                OrderCancellationInput: lambda m: cancellation_workflow_id(m.tenant_id, m.order_id),
            }[model](parsed)
            assert workflow_id == expected
            assert set(data) <= set(model.model_fields), "a field the model would ignore"
        else:
            assert _option(words, "--name") in ("decide", "decide_signal")
            Decision.model_validate(data)
    assert inputs >= 5


def test_temporal_connection_settings_shown_exist() -> None:
    """The codec/address environment variables and flags the section sets."""
    options = _temporal_help()
    plain = _section().split("### With the plain `temporal` CLI")[1]
    names = re.findall(r"export (TEMPORAL_[A-Z_]+)=", plain)
    flags = re.findall(r"`(--[a-z-]+)`", plain.split("```bash", 2)[1].split("```")[1])
    assert {"TEMPORAL_CODEC_ENDPOINT", "TEMPORAL_CODEC_AUTH"} <= set(names)
    assert {"--codec-endpoint", "--codec-auth"} <= set(flags)
    for name in names:
        assert f" {name} " in options, name
    known = options + _temporal_help("workflow", "start")
    for flag in flags:
        assert f"{flag} " in known, flag
