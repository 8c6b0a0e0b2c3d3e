"""Per-tenant credentials: scoped, cached, never shown, cross-tenant reads refused and recorded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autobiz.db.database import Database
from autobiz.errors import SecretAccessError, SecretNotFoundError
from autobiz.secrets import (
    AccessEvent,
    ChainedSecretsBackend,
    CredentialStore,
    EnvSecretsBackend,
    FileSecretsBackend,
    Principal,
    database_audit,
)
from tests.conftest import new_tenant

SECRET_A = "sk_test_tenantA_9f8e7d6c5b4a"
SECRET_B = "sk_test_tenantB_1a2b3c4d5e6f"


class CountingBackend:
    def __init__(self, data: dict[tuple[str, str], str]) -> None:
        self.data = data
        self.loads = 0

    def load(self, tenant_id: str, name: str) -> str | None:
        self.loads += 1
        return self.data.get((tenant_id, name))


@pytest.mark.unit
async def test_env_backend_and_cache() -> None:
    backend = CountingBackend({("shop-a", "stripe_api_key"): SECRET_A})
    now = [0.0]
    store = CredentialStore(backend, ttl_seconds=60, clock=lambda: now[0])
    principal = Principal("shop-a")
    assert (await store.get(principal, "shop-a", "stripe_api_key")).get_secret_value() == SECRET_A
    await store.get(principal, "shop-a", "stripe_api_key")
    assert backend.loads == 1
    now[0] = 61.0
    await store.get(principal, "shop-a", "stripe_api_key")
    assert backend.loads == 2
    env = EnvSecretsBackend({"AUTOBIZ_SECRET__SHOP_A__STRIPE_API_KEY": SECRET_A})
    assert env.load("shop-a", "stripe_api_key") == SECRET_A
    assert env.load("shop-b", "stripe_api_key") is None


@pytest.mark.unit
async def test_file_backend_rereads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f"shop-a:\n  stripe_api_key: {SECRET_A}\n")
    backend = ChainedSecretsBackend(EnvSecretsBackend({}), FileSecretsBackend(path))
    assert backend.load("shop-a", "stripe_api_key") == SECRET_A
    path.write_text(f"shop-a:\n  stripe_api_key: {SECRET_B}\n")
    import os

    os.utime(path, (1, 1))
    assert backend.load("shop-a", "stripe_api_key") == SECRET_B


@pytest.mark.unit
async def test_values_never_appear_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = CredentialStore(CountingBackend({("shop-a", "stripe_api_key"): SECRET_A}))
    value = await store.get(Principal("shop-a"), "shop-a", "stripe_api_key")
    assert SECRET_A not in repr(value)
    assert SECRET_A not in str(value)
    assert SECRET_A not in repr(store)
    assert SECRET_A not in caplog.text


@pytest.mark.unit
async def test_other_tenants_credential_is_refused_and_recorded() -> None:
    events: list[AccessEvent] = []

    async def audit(event: AccessEvent) -> None:
        events.append(event)

    backend = CountingBackend({("shop-b", "stripe_api_key"): SECRET_B})
    store = CredentialStore(backend, audit=audit)
    with pytest.raises(SecretAccessError) as info:
        await store.get(Principal("shop-a", actor="worker-1"), "shop-b", "stripe_api_key")
    assert SECRET_B not in str(info.value)
    assert backend.loads == 0  # refused before the backend is even asked
    assert events == [
        AccessEvent(Principal("shop-a", "worker-1"), "shop-b", "stripe_api_key", "refused")
    ]
    with pytest.raises(SecretNotFoundError):
        await store.get(Principal("shop-b"), "shop-b", "printful_token")


@pytest.mark.integration
async def test_refusal_is_recorded_in_the_audit_log(database: Database) -> None:
    a, b = await new_tenant(database, "a"), await new_tenant(database, "b")
    store = CredentialStore(
        CountingBackend({(b, "stripe_api_key"): SECRET_B}), audit=database_audit(database)
    )
    with pytest.raises(SecretAccessError):
        await store.get(Principal(a, actor="worker-1"), b, "stripe_api_key")
    async with database.tenant(a) as s:
        rows = await s.fetch_all("SELECT actor, action, outcome, detail FROM audit_log")
    assert rows == [
        {
            "actor": "worker-1",
            "action": "credential.read",
            "outcome": "refused",
            "detail": {"requested_tenant": b, "name": "stripe_api_key"},
        }
    ]
    async with database.tenant(b) as s:
        assert await s.fetch_val("SELECT count(*) FROM audit_log") == 0


@pytest.mark.unit
async def test_store_from_settings_reads_env_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autobiz.secrets import credential_store
    from autobiz.settings import Settings

    path = tmp_path / "secrets.json"
    path.write_text('{"shop-a": {"printful_token": "pf-from-file"}}')
    monkeypatch.setenv("AUTOBIZ_SECRET__SHOP_A__STRIPE_API_KEY", SECRET_A)
    store = credential_store(Settings(secrets_file=path))
    principal = Principal("shop-a")
    assert (await store.get(principal, "shop-a", "stripe_api_key")).get_secret_value() == SECRET_A
    assert (
        await store.get(principal, "shop-a", "printful_token")
    ).get_secret_value() == "pf-from-file"
