"""Per-tenant provider clients: built from each tenant's own credentials, rotated without
a restart, never from another tenant's or from global settings (except the one tenant
the settings' credentials are declared for)."""

from __future__ import annotations

import logging
import uuid

import pytest
from pydantic import SecretStr

from autobiz.errors import SecretNotFoundError
from autobiz.providers.errors import AuthenticationFailed, NotFound
from autobiz.providers.tenant_clients import CREDENTIALS, TenantClients, tenant_settings
from autobiz.secrets import (
    CredentialStore,
    MappingSecretsBackend,
    Principal,
    SettingsSecretsBackend,
    credential_store,
)
from autobiz.settings import Settings
from sandbox.accounts import credentials_of, generated_account
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


async def _intent(clients: TenantClients, tenant: str) -> str:
    stripe = await clients.stripe(tenant)
    pi = await stripe.create_payment_intent(
        amount=500, currency="usd", order_key=f"{tenant}:1", idempotency_key=str(uuid.uuid4())
    )
    return pi.id


async def test_each_tenant_sees_only_its_own_objects(sandbox: Sandbox) -> None:
    clients = await sandbox.tenant_clients("shop-a", "shop-b")
    try:
        a, b = await clients.for_tenant("shop-a"), await clients.for_tenant("shop-b")
        assert a.shop_domain == "shop-a.myshopify.com" != b.shop_domain
        pi = await _intent(clients, "shop-a")
        assert (await a.stripe.retrieve_payment_intent(pi)).id == pi
        with pytest.raises(NotFound):
            await b.stripe.retrieve_payment_intent(pi)  # another Stripe account
        seeded = await sandbox.control.seed_shopify_order(shop=a.shop_domain)
        gid = str(seeded["id"])
        assert (await a.shopify.get_order(gid)).id == gid
        with pytest.raises(NotFound):
            await b.shopify.get_order(gid)  # another shop
    finally:
        await clients.aclose()


async def test_rotated_credentials_take_effect_without_a_restart(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    old = await sandbox.host("rotating")
    backend = MappingSecretsBackend({"rotating": credentials_of(old)})
    clients = TenantClients(sandbox.settings, CredentialStore(backend, ttl_seconds=0))
    try:
        first = await clients.for_tenant("rotating")
        await _intent(clients, "rotating")
        # The merchant rolls the Stripe key: the provider refuses the old one at once …
        new = generated_account("rotating", secret=uuid.uuid4().hex)
        await sandbox.control.add_account(new.model_dump())
        with pytest.raises(AuthenticationFailed):
            await first.stripe.create_payment_intent(
                amount=500, currency="usd", order_key="rotating:2", idempotency_key="k-old"
            )
        # … and once the secrets backend has the new one, the next call uses it.
        with caplog.at_level(logging.DEBUG):
            for name, value in credentials_of(new).items():
                backend.set("rotating", name, value)
            second = await clients.for_tenant("rotating")
            assert second is not first
            await _intent(clients, "rotating")
        assert new.stripe_api_key not in caplog.text and old.stripe_api_key not in caplog.text
        assert "rotating" in repr(clients) and new.stripe_api_key not in repr(clients)
    finally:
        await clients.aclose()


async def test_a_tenant_without_credentials_gets_no_clients(sandbox: Sandbox) -> None:
    await sandbox.host("known")
    clients = TenantClients(
        sandbox.settings,
        CredentialStore(
            MappingSecretsBackend({"known": credentials_of(sandbox.accounts["known"])})
        ),
    )
    with pytest.raises(SecretNotFoundError):
        await clients.for_tenant("unknown")
    await clients.aclose()


def test_settings_credentials_belong_to_the_default_tenant_only() -> None:
    settings = Settings()
    backend = SettingsSecretsBackend(settings)
    tenant = settings.ingress.default_tenant
    assert backend.load(tenant, "stripe_api_key") == settings.stripe.api_key.get_secret_value()
    assert backend.load("another-shop", "stripe_api_key") is None
    assert backend.load("another-shop", "shopify_access_token") is None


async def test_the_process_store_never_falls_back_to_another_tenants_keys() -> None:
    store = credential_store(Settings())
    with pytest.raises(SecretNotFoundError):
        await store.get(Principal("another-shop"), "another-shop", "stripe_api_key")


def test_tenant_settings_swap_identities_not_endpoints() -> None:
    settings = Settings()
    account = generated_account("t-x", secret="s")
    # The clients' credentials only (webhook secrets and the Inbound Parse login are the
    # ingress's, as TenantClients reads them).
    values = {k: SecretStr(v) for k, v in credentials_of(account).items() if k in CREDENTIALS}
    own = tenant_settings(settings, "t-x", values)
    assert own.stripe.api_key.get_secret_value() == account.stripe_api_key
    assert own.shopify.shop_domain == account.shopify_shop_domain
    assert own.printful.store_id == account.printful_store_id
    assert own.stripe.api_base == settings.stripe.api_base
    assert settings.stripe.api_key.get_secret_value() != account.stripe_api_key  # untouched
