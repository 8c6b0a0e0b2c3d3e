"""Every setting of :class:`autobiz.settings.Settings`, as data and as docs/settings.md.

One walk over the settings model gives each leaf setting its environment variable, type,
default and description. The description is the field's ``description=`` if it has one,
else the comment written above (or beside) the field in autobiz/settings.py, so the page
says what the source says. ``python -m autobiz.settings_reference > docs/settings.md``
regenerates the page; tests/hygiene/test_settings_reference.py fails when it is stale.
"""

from __future__ import annotations

import ast
import enum
import inspect
import io
import json
import re
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from autobiz import settings as settings_module
from autobiz.settings import Settings

ENV_PREFIX = "AUTOBIZ_"
NESTED = "__"
# A field whose name says one of these holds a secret, whatever its type.
_SECRET_WORDS = ("key", "secret", "password", "token")


@dataclass(frozen=True)
class SettingSpec:
    """One leaf setting: where it lives in the model and how it is documented."""

    path: tuple[str, ...]  # attribute names, e.g. ("temporal", "address_override")
    env: str  # AUTOBIZ_TEMPORAL__ADDRESS
    section: str  # "" for the top level, else the section's attribute name
    field: FieldInfo
    annotation: Any
    description: str

    @property
    def secret(self) -> bool:
        return is_secret(self.path[-1], self.annotation)


def is_secret(name: str, annotation: Any) -> bool:
    """Whether a setting's value is never printed: a ``SecretStr`` anywhere in its type, or
    a name that says key/secret/password/token (except a path or a number, which names
    where a secret is, or how many)."""
    if _mentions(annotation, SecretStr):
        return True
    words = re.split(r"_+", name.lower())
    if not any(word in _SECRET_WORDS for word in words):
        return False
    return not (_mentions(annotation, Path) or words[-1] in ("path", "seconds", "hours"))


def _mentions(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_mentions(arg, kind) for arg in typing.get_args(annotation))


def specs() -> list[SettingSpec]:
    """Every leaf setting, in the order settings.py declares them."""
    return list(_walk(Settings, ()))


def _walk(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[SettingSpec]:
    comments = _field_comments()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, (*path, name))
            continue
        env_name = field.alias or name
        env = ENV_PREFIX + NESTED.join(part.upper() for part in (*path, env_name))
        description = field.description or comments.get((model.__name__, name), "")
        yield SettingSpec(
            path=(*path, name),
            env=env,
            section=path[0] if path else "",
            field=field,
            annotation=annotation,
            description=description,
        )


@lru_cache(maxsize=1)
def _field_comments() -> dict[tuple[str, str], str]:
    """``(class name, field name) -> comment`` from settings.py: the comment lines right
    above a field plus the comment on its own line(s)."""
    source = inspect.getsource(settings_module)
    lines = source.splitlines()
    by_line: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            by_line[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            above: list[str] = []
            line = item.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, by_line.get(line, ""))
                line -= 1
            end = item.end_lineno or item.lineno
            beside = [
                by_line[n]
                for n in range(item.lineno, end + 1)
                if n in by_line and not lines[n - 1].strip().startswith("#")
            ]
            text = " ".join(part for part in (*above, *beside) if part)
            if text:
                found[(node.name, item.target.id)] = text
    return found


def default_of(spec: SettingSpec) -> Any:
    """The field's declared default (a ``default_factory`` is called)."""
    field = spec.field
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def render_value(value: Any, *, secret: bool) -> str:
    """A value as one line of text; a secret is never shown, not even a prefix."""
    if value is None:
        return ""
    if secret and isinstance(value, dict) and all(isinstance(v, SecretStr) for v in value.values()):
        # A key ring: its ids are names, not secrets; every key is masked.
        return json.dumps(_plain(value), separators=(",", ":"))
    if secret:
        return "********"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(_plain(value), separators=(",", ":"))
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def type_name(annotation: Any) -> str:
    """A readable type: ``str | None``, ``Path``, ``json | text``, ``dict[str, str]``."""
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(str(arg) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(str(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _doc_default(spec: SettingSpec) -> str:
    value = default_of(spec)
    if value is None:
        return "unset"
    if spec.secret:
        return "a sandbox/dev value"
    if isinstance(value, Path) and value.is_absolute():
        # A packaged path (the demo config) differs per machine: name it in the package.
        package_root = Path(settings_module.__file__).resolve().parent.parent
        try:
            value = value.resolve().relative_to(package_root)
        except ValueError:
            pass
    return f"`{render_value(value, secret=False)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_HEADER = """\
# Settings reference

<!-- Generated by `python -m autobiz.settings_reference > docs/settings.md`; do not edit.
     tests/hygiene/test_settings_reference.py fails when this page is stale. -->

Every setting of the one settings object (`autobiz/settings.py`), read from the
environment with the prefix `AUTOBIZ_`; nested sections use `__`
(`AUTOBIZ_STRIPE__API_BASE`). A whole section can also be given as one JSON object
(`AUTOBIZ_STRIPE='{"timeout_seconds": 5}'`), and a list or a map as JSON. No `.env` file
is read. `autobiz settings show` prints the values in effect and where each came from,
with every secret masked.

A provider's `api_base` left unset follows the sandbox (`AUTOBIZ_SANDBOX__HOST`/`__PORT`).
Secrets (marked 🔒) are never printed; their defaults are the sandbox's or the dev
stack's public values, refused or meaningless in production.
"""


def render() -> str:
    """docs/settings.md."""
    out = [_HEADER]
    section: str | None = None
    for spec in specs():
        if spec.section != section:
            section = spec.section
            out.append(f"\n## {section or 'Top level'}\n")
            if section:
                # The section's own docstring only (not one inherited from BaseModel).
                model = Settings.model_fields[section].annotation
                doc = inspect.cleandoc(vars(model).get("__doc__") or "")
                if doc:
                    out.append(" ".join(doc.split("\n\n")[0].split()) + "\n")
            out.append("| variable | type | default | description |")
            out.append("|---|---|---|---|")
        lock = " 🔒" if spec.secret else ""
        out.append(
            f"| `{spec.env}`{lock} | {_cell(type_name(spec.annotation))} | "
            f"{_cell(_doc_default(spec))} | {_cell(spec.description)} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
