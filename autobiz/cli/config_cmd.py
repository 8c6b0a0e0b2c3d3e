"""`autobiz config check FILE…`: compile BusinessConfig files (CC-01..CC-04)."""

from __future__ import annotations

from pathlib import Path

import typer

from autobiz.business_config import compile_file
from autobiz.cli.output import emit_json
from autobiz.errors import ConfigError

app = typer.Typer(help="Tenant BusinessConfig files.")


@app.command()
def check(
    files: list[Path] = typer.Argument(..., help="BusinessConfig YAML files", exists=False),
    json_out: bool = typer.Option(False, "--json", help="diagnostics as JSON"),
) -> None:
    """Compile each file; print `FILE:LINE: CODE message` per problem; non-zero on any."""
    report: dict[str, list[dict[str, object]]] = {}
    problems = 0
    for path in files:
        result = compile_file(path)
        report[str(path)] = [
            {"line": d.line, "code": d.code, "message": d.message} for d in result.diagnostics
        ]
        problems += len(result.diagnostics)
        if not json_out:
            for diagnostic in result.diagnostics:
                typer.echo(diagnostic.format(str(path)))
            if result.ok:
                typer.echo(f"{path}: ok")
    if json_out:
        emit_json(report)
    if problems:
        failing = sum(1 for diags in report.values() if diags)
        raise ConfigError(
            f"{problems} problem(s) in {failing} of {len(files)} file(s)",
            hint="codes are explained in docs/kernel.md",
        )
