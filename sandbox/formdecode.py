"""Decode Stripe's form encoding (``metadata[order_key]=x``, ``expand[0]=y``) into JSON-ish
values, the way the Stripe API reads what the SDK sends."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\]]*)\]")


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts += _PART.findall("[" + rest)
    return parts


def _listify(node: Any) -> Any:
    """Dicts whose keys are all ``0..n-1`` (or empty ``[]`` appends) become lists."""
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        keys = list(converted)
        if keys and all(k.isdigit() for k in keys):
            return [converted[k] for k in sorted(keys, key=int)]
        return converted
    return node


def decode_form(body: bytes | str) -> dict[str, Any]:
    text = body.decode() if isinstance(body, bytes) else body
    root: dict[str, Any] = {}
    append_counters: dict[int, int] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = _path(key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # ``a[]=1&a[]=2``
                counter = append_counters.get(id(node), 0)
                append_counters[id(node)] = counter + 1
                part = str(counter)
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    result: dict[str, Any] = _listify(root)
    return result


def pairs_fingerprint(body: bytes | str) -> tuple[tuple[str, str], ...]:
    """Order-insensitive identity of a request's parameters (for idempotency)."""
    text = body.decode() if isinstance(body, bytes) else body
    return tuple(sorted(parse_qsl(text, keep_blank_values=True)))
