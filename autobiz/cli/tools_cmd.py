"""`autobiz tools list` and `autobiz tools schema NAME`: the kernel's tool contracts."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from autobiz.cli.output import console, emit_json
from autobiz.errors import AutobizError
from kernel.codes import ErrorCode
from kernel.contracts import split_ref
from kernel.errors import KernelError
from kernel.tools import REGISTRY

app = typer.Typer(help="Tool contracts (name@version, side effect, scopes, schemas).")


@app.command("list")
def list_tools(json_out: bool = typer.Option(False, "--json")) -> None:
    """List every registered tool."""
    rows = [
        {
            "tool": c.ref,
            "side_effect": c.side_effect.value,
            "scopes": sorted(c.scopes),
            "default_hitl": c.default_hitl.value,
            "timeout_seconds": c.timeout.total_seconds(),
            "description": c.description,
        }
        for c in REGISTRY
    ]
    if json_out:
        emit_json(rows)
        return
    table = Table("tool", "side effect", "scopes", "HITL", "timeout")
    table.columns[0].no_wrap = True
    for c in REGISTRY:
        table.add_row(
            c.ref,
            c.side_effect.value,
            ", ".join(sorted(c.scopes)),
            c.default_hitl.value,
            f"{c.timeout.total_seconds():g}s",
        )
    console.print(table)


@app.command()
def schema(name: str = typer.Argument(..., help="NAME or NAME@VERSION")) -> None:
    """Print a tool's contract with its input and output JSON Schema."""
    try:
        if "@" in name:
            contract = REGISTRY.get(*split_ref(name))
        else:
            contract = REGISTRY.latest(name)
    except (KernelError, ValueError) as exc:
        raise AutobizError(
            str(exc) if not isinstance(exc, KernelError) else exc.message,
            code=ErrorCode.TOOL_UNKNOWN,
            hint="`autobiz tools list` shows the registered tools",
        ) from None
    typer.echo(json.dumps(contract.describe(), indent=2, sort_keys=True))
