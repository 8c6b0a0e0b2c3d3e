"""`autobiz settings show|reference`: the settings in effect, and the reference page.

``show`` prints every setting as ``NAME=value  # source``, one a line, so it greps and
diffs in a pipe. The source is ``environment`` (its variable, or a JSON object given for
its whole section), ``derived`` (computed from other settings, e.g. a provider's api_base
following the sandbox, or a relative config_dir made absolute) or ``default``. No ``.env``
file is read. A secret (a ``SecretStr``, or a name that says key/secret/password/token) is
printed as ``********`` when set — never a prefix of it, never its length.
"""

from __future__ import annotations

import json
import os
from typing import Any

import typer

from autobiz.cli.output import emit_json
from autobiz.settings import Settings
from autobiz.settings_reference import SettingSpec, default_of, render, render_value, specs

app = typer.Typer(help="The settings in effect (AUTOBIZ_* environment) and their reference.")

MASK = "********"


@app.command()
def show(json_out: bool = typer.Option(False, "--json", help="the settings as JSON")) -> None:
    """Every effective setting, where it came from, secrets masked."""
    settings = Settings()
    environ = {name.upper(): value for name, value in os.environ.items()}
    rows = [_row(spec, settings, environ) for spec in specs()]
    if json_out:
        emit_json({"settings": rows})
        return
    for row in rows:
        typer.echo(f"{row['name']}={row['value'] or ''}  # {row['source']}")


@app.command()
def reference() -> None:
    """Print docs/settings.md (every setting's variable, type, default, description)."""
    typer.echo(render(), nl=False)


def _row(spec: SettingSpec, settings: Settings, environ: dict[str, str]) -> dict[str, Any]:
    value: Any = settings
    for part in spec.path:
        value = getattr(value, part)
    source = _source(spec, value, environ)
    shown = render_value(value, secret=spec.secret)
    return {
        "name": spec.env,
        "value": shown if value is not None else None,
        "source": source,
        "secret": spec.secret,
    }


def _source(spec: SettingSpec, value: Any, environ: dict[str, str]) -> str:
    if spec.env in environ or any(name.startswith(spec.env + "__") for name in environ):
        return "environment"
    if spec.section:
        section_env = f"AUTOBIZ_{spec.section.upper()}"
        if section_env in environ and _json_has(environ[section_env], spec):
            return f"environment ({section_env})"
    if value != default_of(spec):
        return "derived"
    return "default"


def _json_has(raw: str, spec: SettingSpec) -> bool:
    """Whether a section given as one JSON object sets this field (by name or alias)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    names = {spec.path[-1], spec.field.alias or spec.path[-1]}
    return any(str(key).lower() in names for key in data)
