"""The merchants' provider accounts the sandbox hosts, as the real providers do.

A real Stripe secret key belongs to one Stripe account, a Shopify access token to one
shop, a Printful token to one store, a SendGrid key to one sender account; an object
made with one account's credential is invisible to every other account (Stripe answers
``resource_missing``, Printful 404, Shopify ``null``). The sandbox keeps that: each
provider API resolves the request's credential to a :class:`SandboxAccount` (unknown
credential: 401, as the provider answers), records which account owns every object it
creates, and finds only the caller's own objects. Webhooks are signed with the owning
account's secret and, for Shopify, name its shop domain.

Accounts come from settings (the one whose credentials are the settings' defaults,
for ``ingress.default_tenant``), from a secrets file in the credential store's shape
(``{tenant: {stripe_api_key: …, shopify_shop_domain: …, …}}``, ``sandbox.accounts_file``)
and from ``POST /_control/accounts``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from autobiz.settings import Settings


class SandboxAccount(BaseModel):
    """One merchant at the four providers (the body of ``POST /_control/accounts``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant: str = Field(min_length=1, max_length=64)
    stripe_api_key: str = Field(pattern=r"^(sk|rk)_test_[A-Za-z0-9_-]{4,200}$")
    stripe_webhook_secret: str = Field(min_length=8)
    shopify_shop_domain: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
    shopify_access_token: str = Field(min_length=8)
    shopify_webhook_secret: str = Field(min_length=8)
    printful_api_token: str = Field(min_length=8)
    printful_store_id: str = Field(default="1", pattern=r"^[0-9]{1,12}$")
    printful_webhook_secret: str = Field(min_length=8)
    sendgrid_api_key: str = Field(min_length=8)
    # Inbound Parse: the Basic credential in the parse URL SendGrid posts this
    # merchant's inbound email to (None: no inbound parse configured).
    sendgrid_parse_user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    sendgrid_parse_password: str | None = Field(default=None, min_length=16, max_length=128)


def generated_account(tenant: str, *, secret: str) -> SandboxAccount:
    """Fresh test-mode credentials for one tenant (the dev stack and tests make these):
    each value is derived from ``secret``, so nobody can guess another tenant's."""

    def part(name: str) -> str:
        return hmac.new(secret.encode(), f"{tenant}:{name}".encode(), hashlib.sha256).hexdigest()[
            :24
        ]

    slug = re.sub(r"[^a-z0-9-]", "-", tenant.lower()).strip("-")[:40] or "shop"
    return SandboxAccount(
        tenant=tenant,
        stripe_api_key=f"sk_test_{part('stripe')}",
        stripe_webhook_secret=f"whsec_{part('stripe-webhook')}",
        shopify_shop_domain=f"{slug}.myshopify.com",
        shopify_access_token=f"shpat_{part('shopify')}",
        shopify_webhook_secret=f"shpss_{part('shopify-webhook')}",
        printful_api_token=f"pf_{part('printful')}",
        printful_store_id=str(int(part("store")[:6], 16)),
        # Printful issues a v2 secret_key as 128 hex digits (64 bytes).
        printful_webhook_secret="".join(part(f"printful-webhook-{i}") for i in range(6))[:128],
        sendgrid_api_key=f"SG.{part('sendgrid')}.{part('sendgrid-2')}",
        sendgrid_parse_user=f"{slug[:30]}-{part('sendgrid-parse-user')[:8]}",
        sendgrid_parse_password=part("sendgrid-parse"),
    )


def credentials_of(account: SandboxAccount) -> dict[str, str]:
    """The account as one tenant's entry of a secrets file (``AUTOBIZ_SECRETS_FILE``)."""
    return account.model_dump(exclude={"tenant"}, exclude_none=True)


def account_from_settings(settings: Settings) -> SandboxAccount:
    return SandboxAccount(
        tenant=settings.ingress.default_tenant,
        stripe_api_key=settings.stripe.api_key.get_secret_value(),
        stripe_webhook_secret=settings.stripe.webhook_secret.get_secret_value(),
        shopify_shop_domain=settings.shopify.shop_domain,
        shopify_access_token=settings.shopify.access_token.get_secret_value(),
        shopify_webhook_secret=settings.shopify.webhook_secret.get_secret_value(),
        printful_api_token=settings.printful.api_token.get_secret_value(),
        printful_store_id=settings.printful.store_id,
        printful_webhook_secret=settings.printful.webhook_secret.get_secret_value(),
        sendgrid_api_key=settings.sendgrid.api_key.get_secret_value(),
    )


def accounts_from_file(path: Path) -> list[SandboxAccount]:
    text = path.read_text()
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected a mapping of tenant id to credentials")
    return [SandboxAccount.model_validate({**(v or {}), "tenant": t}) for t, v in raw.items()]


class AccountConflict(ValueError):
    """A credential that already belongs to another account."""


class AccountBook:
    def __init__(self, settings: Settings) -> None:
        self._initial = [account_from_settings(settings)]
        if settings.sandbox.accounts_file is not None and settings.sandbox.accounts_file.exists():
            self._initial.extend(accounts_from_file(settings.sandbox.accounts_file))
        self._accounts: dict[str, SandboxAccount] = {}
        self.reset()

    def reset(self) -> None:
        self._accounts = {}
        for account in self._initial:
            self._accounts[account.tenant] = account

    def add(self, account: SandboxAccount) -> SandboxAccount:
        """Register (or replace, for the same tenant: a rotation) one account."""
        for other in self._accounts.values():
            if other.tenant == account.tenant:
                continue
            shared = [
                name
                for name in (
                    "stripe_api_key",
                    "shopify_shop_domain",
                    "shopify_access_token",
                    "printful_api_token",
                    "sendgrid_api_key",
                )
                if getattr(other, name) == getattr(account, name)
            ]
            if shared:
                raise AccountConflict(f"{', '.join(shared)} already belong to another account")
        self._accounts[account.tenant] = account
        return account

    def all(self) -> list[SandboxAccount]:
        return list(self._accounts.values())

    def by_stripe_key(self, key: str) -> SandboxAccount | None:
        return next((a for a in self._accounts.values() if a.stripe_api_key == key), None)

    def by_shopify_token(self, token: str, shop: str | None) -> SandboxAccount | None:
        """The shop this token opens; ``shop`` (from the URL) must be that shop."""
        for a in self._accounts.values():
            if a.shopify_access_token == token:
                return a if shop is None or shop == a.shopify_shop_domain else None
        return None

    def by_shop(self, shop: str | None) -> SandboxAccount | None:
        if shop is None:
            return self._initial[0]
        return next((a for a in self._accounts.values() if a.shopify_shop_domain == shop), None)

    def by_printful_token(self, token: str) -> SandboxAccount | None:
        return next((a for a in self._accounts.values() if a.printful_api_token == token), None)

    def by_sendgrid_key(self, key: str) -> SandboxAccount | None:
        return next((a for a in self._accounts.values() if a.sendgrid_api_key == key), None)

    def get(self, tenant: str) -> SandboxAccount | None:
        return self._accounts.get(tenant)


# The account the request being handled acts for (set by each provider API's wrapper).
_CURRENT: ContextVar[SandboxAccount | None] = ContextVar("sandbox_account", default=None)


@contextmanager
def acting_as(account: SandboxAccount) -> Iterator[SandboxAccount]:
    token = _CURRENT.set(account)
    try:
        yield account
    finally:
        _CURRENT.reset(token)


def current_account() -> SandboxAccount:
    account = _CURRENT.get()
    if account is None:
        raise RuntimeError("no sandbox account for this request")
    return account
