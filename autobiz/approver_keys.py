"""Approver keys: generate, store (private key on the approver's disk, public key in the
tenant's ``approver_keys`` registry), and sign decisions with them.

* Private keys are PKCS#8 PEM files, mode 0600, under
  ``$AUTOBIZ_HOME/keys/<tenant>/<approver>/<key_id>.pem`` (or a path of the operator's
  choosing); they never reach the database, Temporal or a log.
* Registering and revoking a public key is an admin act: it goes through
  ``Database.admin`` (the owner's connection). The application role can only read the
  registry; whoever holds the owner's credentials is the trust root.
* ``starters.decisions.sign_decision`` builds the ``Decision`` a workflow accepts with a
  :class:`LocalKey` from here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from autobiz.db.database import Database, TenantSession, validate_tenant_id
from autobiz.errors import AutobizError
from kernel.codes import ErrorCode
from kernel.decision_proof import (
    ApproverKey,
    ApproverKeyRegistry,
    b64encode,
)

_COLUMNS = (
    "key_id, approver_id, public_key, created_at, created_by, not_before, expires_at, "
    "revoked_at, revoked_reason"
)


@dataclass(frozen=True)
class LocalKey:
    """A private key on this machine and the id it is registered under."""

    key_id: str
    private_key: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public_key(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return b64encode(raw)


def new_key_id() -> str:
    return f"ak_{secrets.token_hex(10)}"


def generate_key() -> LocalKey:
    return LocalKey(new_key_id(), Ed25519PrivateKey.generate())


def keys_dir(home: Path, tenant_id: str, approver: str) -> Path:
    if not approver or "/" in approver or approver in (".", "..") or "\0" in approver:
        raise AutobizError(
            f"approver id {approver!r} cannot name a key folder", code=ErrorCode.INPUT_INVALID
        )
    return home / "keys" / validate_tenant_id(tenant_id) / approver


def write_private_key(key: LocalKey, path: Path) -> Path:
    """Write the PEM with mode 0600 (folders 0700); never overwrite a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AutobizError(
            f"{path} exists; not overwriting a key file", code=ErrorCode.KEY_FILE_EXISTS
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


def read_private_key(path: Path, key_id: str | None = None) -> LocalKey:
    """A PEM file as a key; its id is the file name's stem unless given."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AutobizError(
            f"cannot read the key file {path}: {exc.strerror}", code=ErrorCode.APPROVER_KEY_MISSING
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise AutobizError(
            f"{path} is not an unencrypted Ed25519 private key (PEM)",
            code=ErrorCode.APPROVER_KEY_INVALID,
        )
    return LocalKey(key_id or path.stem, key, path)


# --- the registry ---------------------------------------------------------------------


async def load_registry(session: TenantSession, tenant_id: str) -> ApproverKeyRegistry:
    """Every key of the tenant (revoked ones too: the workflow must see revocations)."""
    now = await session.fetch_val("SELECT now()")
    rows = await session.fetch_all(
        "SELECT approver_id, key_id, public_key, not_before, expires_at, revoked_at "
        "FROM approver_keys WHERE tenant_id = %s ORDER BY created_at, key_id",
        (tenant_id,),
    )
    return ApproverKeyRegistry(
        tenant_id=tenant_id, as_of=now, keys=tuple(ApproverKey(**row) for row in rows)
    )


async def register_key(
    db: Database,
    tenant_id: str,
    approver: str,
    public_key: str,
    *,
    key_id: str,
    created_by: str,
    expires_in: timedelta | None = None,
) -> dict[str, Any]:
    """Add a public key to the tenant's registry (owner connection), valid from now until
    revoked or, with ``expires_in``, until then."""
    async with db.admin(f"register approver key {key_id} of {approver} ({tenant_id})") as s:
        await s.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        row = await s.fetch_one(
            "INSERT INTO approver_keys (tenant_id, key_id, approver_id, public_key, created_by, "
            f"expires_at) VALUES (%s, %s, %s, %s, %s, now() + %s) RETURNING {_COLUMNS}",
            (tenant_id, key_id, approver, public_key, created_by, expires_in),
        )
    assert row is not None
    return row


async def revoke_key(
    db: Database, tenant_id: str, key_id: str, *, reason: str | None
) -> dict[str, Any] | None:
    """Revoke (once; a second revoke answers the row as it is). None: no such key."""
    async with db.admin(f"revoke approver key {key_id} ({tenant_id})") as s:
        await s.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        row = await s.fetch_one(
            "UPDATE approver_keys SET revoked_at = now(), revoked_reason = %s "
            f"WHERE tenant_id = %s AND key_id = %s AND revoked_at IS NULL RETURNING {_COLUMNS}",
            (reason, tenant_id, key_id),
        )
        if row is None:
            row = await s.fetch_one(
                f"SELECT {_COLUMNS} FROM approver_keys WHERE tenant_id = %s AND key_id = %s",
                (tenant_id, key_id),
            )
    return row


async def list_keys(
    db: Database, tenant_id: str, approver: str | None = None
) -> list[dict[str, Any]]:
    """The tenant's keys (application role: RLS scopes the read)."""
    async with db.tenant(tenant_id) as s:
        return await s.fetch_all(
            f"SELECT {_COLUMNS}, now() AS now FROM approver_keys WHERE tenant_id = %s "
            "AND (%s::text IS NULL OR approver_id = %s) ORDER BY approver_id, created_at",
            (tenant_id, approver, approver),
        )


def usable(row: dict[str, Any]) -> bool:
    now = row["now"]
    return (
        row["revoked_at"] is None
        and row["not_before"] <= now
        and (row["expires_at"] is None or row["expires_at"] > now)
    )


def pick_local_key(
    home: Path, tenant_id: str, approver: str, registered: list[dict[str, Any]]
) -> LocalKey | None:
    """The newest usable registered key of ``approver`` whose private key is on disk."""
    folder = keys_dir(home, tenant_id, approver)
    for row in sorted(registered, key=lambda r: r["created_at"], reverse=True):
        path = folder / f"{row['key_id']}.pem"
        if row["approver_id"] == approver and usable(row) and path.is_file():
            return read_private_key(path, row["key_id"])
    return None
