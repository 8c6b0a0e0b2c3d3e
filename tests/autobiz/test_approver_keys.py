"""The approver key registry in PostgreSQL: only the owner registers or revokes, a
revocation is final, keys are never deleted, tenants see only their own keys; private
key files are 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from autobiz.approver_keys import (
    generate_key,
    list_keys,
    read_private_key,
    register_key,
    revoke_key,
    write_private_key,
)
from autobiz.db.database import Database
from autobiz.errors import AutobizError
from tests.conftest import new_tenant

pytestmark = pytest.mark.integration


async def test_app_role_reads_but_cannot_register_or_revoke(database: Database) -> None:
    tenant = await new_tenant(database)
    key = generate_key()
    await register_key(
        database, tenant, "ana", key.public_key, key_id=key.key_id, created_by="test"
    )
    [row] = await list_keys(database, tenant)
    assert (row["approver_id"], row["key_id"], row["revoked_at"]) == ("ana", key.key_id, None)
    forged = generate_key()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with database.tenant(tenant) as s:
            await s.execute(
                "INSERT INTO approver_keys (tenant_id, key_id, approver_id, public_key, "
                "created_by) VALUES (%s, %s, 'ana', %s, 'attacker')",
                (tenant, forged.key_id, forged.public_key),
            )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with database.tenant(tenant) as s:
            await s.execute("UPDATE approver_keys SET revoked_at = NULL")


async def test_revocation_is_final_and_keys_are_never_deleted(database: Database) -> None:
    tenant, other = await new_tenant(database), await new_tenant(database)
    key = generate_key()
    await register_key(
        database, tenant, "ana", key.public_key, key_id=key.key_id, created_by="test"
    )
    revoked = await revoke_key(database, tenant, key.key_id, reason="lost laptop")
    assert revoked is not None and revoked["revoked_at"] is not None
    again = await revoke_key(database, tenant, key.key_id, reason="twice")
    assert again is not None and again["revoked_at"] == revoked["revoked_at"]
    assert again["revoked_reason"] == "lost laptop"
    for statement in (
        "UPDATE approver_keys SET revoked_at = NULL",
        "UPDATE approver_keys SET public_key = public_key || ''",
        "DELETE FROM approver_keys",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with database.admin("test: tamper") as s:
                await s.execute(statement)
    assert await revoke_key(database, other, key.key_id, reason=None) is None
    assert await list_keys(database, other) == []


def test_private_key_file_is_private(tmp_path: Path) -> None:
    key = generate_key()
    path = write_private_key(key, tmp_path / "keys" / "t-1" / "ana" / f"{key.key_id}.pem")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_private_key(path).public_key == key.public_key
    with pytest.raises(AutobizError) as exists:
        write_private_key(generate_key(), path)
    assert exists.value.code == "KEY_FILE_EXISTS"
