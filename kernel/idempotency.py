"""Idempotency keys (INV-05), computed in the workflow so every retry resends the same key.

internal key = SHA-256 hex of the RFC 8785 (JCS) canonical JSON of
``{"tenant", "workflow_id", "step", "tool": "name@version", "input"}``;
external key (what providers see) = ``"autobiz:" + sha256(internal)[:32]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

EXTERNAL_PREFIX = "autobiz:"


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes (sorted keys, no whitespace, ECMAScript numbers)."""
    return bytes(rfc8785.dumps(value))


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class IdempotencyKeys:
    internal: str
    external: str


def internal_key(
    *, tenant: str, workflow_id: str, step: str, tool: str, input: Mapping[str, Any]
) -> str:
    material = {
        "tenant": tenant,
        "workflow_id": workflow_id,
        "step": step,
        "tool": tool,
        "input": dict(input),
    }
    return sha256_hex(canonical_json(material))


def external_key(internal: str) -> str:
    return EXTERNAL_PREFIX + sha256_hex(internal)[:32]


def keys_for(
    *, tenant: str, workflow_id: str, step: str, tool: str, input: Mapping[str, Any]
) -> IdempotencyKeys:
    internal = internal_key(
        tenant=tenant, workflow_id=workflow_id, step=step, tool=tool, input=input
    )
    return IdempotencyKeys(internal=internal, external=external_key(internal))


def request_hash(tool: str, input: Mapping[str, Any]) -> str:
    """Hash of what was asked (tool + input), stored on receipts."""
    return sha256_hex(canonical_json({"tool": tool, "input": dict(input)}))
