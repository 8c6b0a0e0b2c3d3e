"""Which tenant sent this? Resolved from the secret that verified, never from a header.

A ``WebhookSecrets`` resolver is given the source and the request's *unsigned* hints
(Shopify's ``X-Shopify-Shop-Domain``, an optional ``?tenant=`` query parameter) and
returns candidate tenants with their secrets. Hints only narrow the search: the
ingress verifies the signature against each candidate's secrets and the tenant whose
secret verified is the tenant of the event. A forged shop-domain header therefore
can at worst make verification fail; it can never make one tenant's signed event land
in another tenant's store. Without hints every tenant holding a secret for the source is
a candidate (bounded by ``MAX_CANDIDATES``, so a request costs a bounded number of HMACs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from autobiz.db.database import validate_tenant_id
from autobiz.settings import Settings

MAX_CANDIDATES = 16


class Source(StrEnum):
    STRIPE = "stripe"
    SHOPIFY = "shopify"
    PRINTFUL = "printful"
    SENDGRID = "sendgrid"  # Inbound Parse: customers' emails (HTTP Basic, not signed)


@dataclass(frozen=True)
class Hints:
    """Unsigned, attacker-controllable; used only to pick candidates."""

    tenant: str | None = None
    shop_domain: str | None = None
    # The user name of a Basic credential (SendGrid Inbound Parse): not secret.
    basic_user: str | None = None


@dataclass(frozen=True)
class TenantSecrets:
    tenant_id: str
    # In order of preference: current first, then previous ones during a rotation.
    secrets: tuple[SecretStr, ...]

    def raw(self) -> list[bytes]:
        return [s.get_secret_value().encode() for s in self.secrets]


class WebhookSecrets(Protocol):
    async def candidates(self, source: Source, hints: Hints) -> Sequence[TenantSecrets]:
        """Tenants that may have sent this request, with their webhook secrets."""
        ...

    async def tenants(self) -> Sequence[str]:
        """Every tenant this ingress receives for (the relay polls these)."""
        ...


class TenantWebhookConfig(BaseModel):
    """One tenant's webhook secrets (the boundary model of the secrets file)."""

    model_config = ConfigDict(extra="forbid")

    stripe: list[SecretStr] = Field(default_factory=list)
    shopify: list[SecretStr] = Field(default_factory=list)
    printful: list[SecretStr] = Field(default_factory=list)
    # SendGrid Inbound Parse: ``user:password`` of the parse URL (current first).
    sendgrid: list[SecretStr] = Field(default_factory=list)
    shop_domains: list[str] = Field(default_factory=list)

    def basic_users(self) -> set[str]:
        """The user names of this tenant's Inbound Parse credentials."""
        return {s.get_secret_value().partition(":")[0] for s in self.secrets_for(Source.SENDGRID)}

    def secrets_for(self, source: Source) -> tuple[SecretStr, ...]:
        values: list[SecretStr] = getattr(self, source.value)
        return tuple(s for s in values if s.get_secret_value())


@dataclass
class StaticWebhookSecrets:
    """An in-memory table: from settings, a secrets file, or built directly in tests."""

    configs: Mapping[str, TenantWebhookConfig]
    _by_domain: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for tenant_id in self.configs:
            validate_tenant_id(tenant_id)
        self._by_domain = {
            domain.lower(): tenant_id
            for tenant_id, cfg in self.configs.items()
            for domain in cfg.shop_domains
        }

    async def candidates(self, source: Source, hints: Hints) -> Sequence[TenantSecrets]:
        chosen: list[str]
        if hints.tenant is not None:
            chosen = [hints.tenant] if hints.tenant in self.configs else []
        elif source is Source.SHOPIFY and hints.shop_domain:
            tenant = self._by_domain.get(hints.shop_domain.lower())
            chosen = [tenant] if tenant else list(self.configs)
        elif source is Source.SENDGRID:
            # The user name picks the tenants whose credential it could be; the password
            # (compared in ingress.signatures) decides.
            chosen = [t for t, cfg in self.configs.items() if hints.basic_user in cfg.basic_users()]
        else:
            chosen = list(self.configs)
        found = [
            TenantSecrets(t, secrets)
            for t in chosen
            if (secrets := self.configs[t].secrets_for(source))
        ]
        return found[:MAX_CANDIDATES]

    async def tenants(self) -> Sequence[str]:
        return list(self.configs)

    def __repr__(self) -> str:  # never the secrets
        return f"StaticWebhookSecrets(tenants={sorted(self.configs)})"


def load_secrets_file(path: Path) -> dict[str, TenantWebhookConfig]:
    text = path.read_text()
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected a mapping of tenant id to webhook secrets")
    return {str(t): TenantWebhookConfig.model_validate(v or {}) for t, v in raw.items()}


def secrets_from_settings(settings: Settings) -> StaticWebhookSecrets:
    """The settings-level secrets belong to ``ingress.default_tenant``; a secrets file adds
    (or overrides) per-tenant entries."""
    shopify = [settings.shopify.webhook_secret]
    if settings.shopify.webhook_previous_secret is not None:
        shopify.append(settings.shopify.webhook_previous_secret)
    configs: dict[str, TenantWebhookConfig] = {
        settings.ingress.default_tenant: TenantWebhookConfig(
            stripe=[settings.stripe.webhook_secret],
            shopify=shopify,
            printful=[settings.printful.webhook_secret],
            shop_domains=[settings.shopify.shop_domain],
        )
    }
    if settings.secrets_file is not None and settings.secrets_file.exists():
        configs.update(webhook_configs_from_credentials(settings.secrets_file))
    if settings.ingress.secrets_file is not None:
        configs.update(load_secrets_file(settings.ingress.secrets_file))
    return StaticWebhookSecrets(configs)


def webhook_configs_from_credentials(path: Path) -> dict[str, TenantWebhookConfig]:
    """The webhook half of the tenants' credential file (``AUTOBIZ_SECRETS_FILE``, the
    one the worker reads its provider keys from): ``stripe_webhook_secret``,
    ``shopify_webhook_secret`` (and ``shopify_webhook_previous_secret`` during a
    rotation), ``printful_webhook_secret``, ``shopify_shop_domain``, and the Inbound
    Parse credential ``sendgrid_parse_user`` + ``sendgrid_parse_password`` (and
    ``sendgrid_parse_previous_password`` during a rotation)."""
    text = path.read_text()
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected a mapping of tenant id to credentials")
    configs: dict[str, TenantWebhookConfig] = {}
    for tenant, values in raw.items():
        v = {str(k): str(x) for k, x in (values or {}).items()}

        def secrets(*names: str, v: dict[str, str] = v) -> list[SecretStr]:
            return [SecretStr(v[n]) for n in names if v.get(n)]

        configs[str(tenant)] = TenantWebhookConfig(
            stripe=secrets("stripe_webhook_secret", "stripe_webhook_previous_secret"),
            shopify=secrets("shopify_webhook_secret", "shopify_webhook_previous_secret"),
            printful=secrets("printful_webhook_secret", "printful_webhook_previous_secret"),
            sendgrid=_parse_credentials(v),
            shop_domains=[v["shopify_shop_domain"]] if v.get("shopify_shop_domain") else [],
        )
    return configs


def _parse_credentials(values: Mapping[str, str]) -> list[SecretStr]:
    """The Inbound Parse credentials (``user:password``) in a tenant's credential entry."""
    user = values.get("sendgrid_parse_user")
    if not user or ":" in user:
        return []
    names = ("sendgrid_parse_password", "sendgrid_parse_previous_password")
    return [SecretStr(f"{user}:{values[n]}") for n in names if values.get(n)]
