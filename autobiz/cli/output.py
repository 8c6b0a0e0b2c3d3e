"""How the CLI talks to people (rich) and to scripts (--json)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


_emitted: list[bool] = []


def json_emitted() -> bool:
    """Whether this process already wrote a JSON document to stdout (an error then does
    not add a second one: ``--json`` output stays one document)."""
    return bool(_emitted)


def emit_json(data: Any) -> None:
    _emitted.append(True)

    def default(obj: Any) -> Any:
        if is_dataclass(obj) and not isinstance(obj, type):
            return asdict(obj)
        return str(obj)

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")
