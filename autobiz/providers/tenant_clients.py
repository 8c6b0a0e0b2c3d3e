"""Provider clients per tenant, built from that tenant's credentials only (DESIGN §5).

Every activity asks :class:`TenantClients` for the client of the tenant its call belongs
to (``ctx.tenant_id``, fixed by the workflow's own input and bound into the call's
idempotency keys, so an activity cannot be talked into another tenant). The credentials
come from the :class:`~autobiz.secrets.CredentialStore` under a principal of that same
tenant, so even a bug here cannot read another tenant's secrets: the store refuses and
records it.

Clients are cached per tenant together with a fingerprint of the credentials they were
built with. The store's own cache expires (``ttl_seconds``), so a rotated secret is read
again within that time and the next call gets a client built with the new one — no
restart. The replaced client is closed after a grace period, once calls that borrowed
it have finished.

Endpoints (``api_base``, timeouts, API version) stay process-wide settings; only
identities are per tenant. A Shopify ``api_base`` may name the shop with ``{shop}``
(``https://{shop}`` against Shopify itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from autobiz.errors import SecretNotFoundError
from autobiz.providers.hygiene import ensure_settings_safe
from autobiz.providers.llm_client import LlmClient, llm_client
from autobiz.providers.printful_client import PrintfulOrders
from autobiz.providers.sendgrid_client import SendGridMailer
from autobiz.providers.shopify_client import ShopifyAdmin
from autobiz.providers.stripe_client import StripePayments
from autobiz.providers.throttle import Throttle
from autobiz.secrets import CredentialStore, Principal
from autobiz.settings import Settings

log = logging.getLogger(__name__)

# The credential names a tenant's secrets hold, and the settings field each one fills.
CREDENTIALS: dict[str, tuple[str, str]] = {
    "stripe_api_key": ("stripe", "api_key"),
    "shopify_shop_domain": ("shopify", "shop_domain"),
    "shopify_access_token": ("shopify", "access_token"),
    "printful_api_token": ("printful", "api_token"),
    "printful_store_id": ("printful", "store_id"),
    "sendgrid_api_key": ("sendgrid", "api_key"),
    "llm_api_key": ("llm", "api_key"),
}
OPTIONAL = frozenset({"printful_store_id", "llm_api_key"})
SECRET_FIELDS = frozenset({"api_key", "access_token", "api_token"})
RETIRE_AFTER_SECONDS = 120.0


@dataclass
class ProviderClients:
    """One tenant's clients, built from one version of its credentials."""

    tenant_id: str
    stripe: StripePayments
    shopify: ShopifyAdmin
    printful: PrintfulOrders
    mailer: SendGridMailer
    llm: LlmClient
    fingerprint: str
    shop_domain: str

    async def aclose(self) -> None:
        for client in (self.stripe, self.shopify, self.printful, self.mailer, self.llm):
            await client.aclose()


def tenant_settings(settings: Settings, tenant_id: str, values: dict[str, SecretStr]) -> Settings:
    """``settings`` with the provider identities replaced by this tenant's."""
    updates: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        section, attr = CREDENTIALS[name]
        raw = value if attr in SECRET_FIELDS else value.get_secret_value()
        updates.setdefault(section, {})[attr] = raw
    copy = settings.model_copy(
        update={
            section: getattr(settings, section).model_copy(update=fields)
            for section, fields in updates.items()
        }
    )
    ensure_settings_safe(copy)
    return copy


def _fingerprint(values: dict[str, SecretStr]) -> str:
    digest = hashlib.sha256()
    for name in sorted(values):
        digest.update(f"{name}\0{values[name].get_secret_value()}\0".encode())
    return digest.hexdigest()


class TenantThrottles(Protocol):
    """The rate limits of each tenant's provider accounts (``autobiz.ratelimits``)."""

    def for_tenant(self, tenant_id: str) -> Throttle: ...


@dataclass
class TenantClients:
    """The worker's source of provider clients: one set per tenant, never shared. With
    ``limiter``, each tenant's clients take every request from that tenant's budget."""

    settings: Settings
    store: CredentialStore
    limiter: TenantThrottles | None = None
    _clients: dict[str, ProviderClients] = field(default_factory=dict, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _retiring: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _retired: list[ProviderClients] = field(default_factory=list, repr=False)

    async def _credentials(self, tenant_id: str) -> dict[str, SecretStr]:
        principal = Principal(tenant_id, actor="worker")
        values: dict[str, SecretStr] = {}
        for name in CREDENTIALS:
            try:
                values[name] = await self.store.get(principal, tenant_id, name)
            except SecretNotFoundError:
                if name not in OPTIONAL:
                    raise
        return values

    async def for_tenant(self, tenant_id: str) -> ProviderClients:
        values = await self._credentials(tenant_id)
        fingerprint = _fingerprint(values)
        current = self._clients.get(tenant_id)
        if current is not None and current.fingerprint == fingerprint:
            return current
        async with self._lock:
            current = self._clients.get(tenant_id)
            if current is not None and current.fingerprint == fingerprint:
                return current
            own = tenant_settings(self.settings, tenant_id, values)
            throttle = None if self.limiter is None else self.limiter.for_tenant(tenant_id)
            built = ProviderClients(
                tenant_id=tenant_id,
                stripe=StripePayments(own, throttle=throttle),
                shopify=ShopifyAdmin(own, throttle=throttle),
                printful=PrintfulOrders(own, throttle=throttle),
                mailer=SendGridMailer(own, throttle=throttle),
                llm=llm_client(own),
                fingerprint=fingerprint,
                shop_domain=own.shopify.shop_domain,
            )
            self._clients[tenant_id] = built
            if current is not None:
                log.info("credentials of tenant %s changed: new provider clients", tenant_id)
                self._retire(current)
            return built

    async def stripe(self, tenant_id: str) -> StripePayments:
        return (await self.for_tenant(tenant_id)).stripe

    async def shopify(self, tenant_id: str) -> ShopifyAdmin:
        return (await self.for_tenant(tenant_id)).shopify

    async def printful(self, tenant_id: str) -> PrintfulOrders:
        return (await self.for_tenant(tenant_id)).printful

    async def mailer(self, tenant_id: str) -> SendGridMailer:
        return (await self.for_tenant(tenant_id)).mailer

    async def llm(self, tenant_id: str) -> LlmClient:
        return (await self.for_tenant(tenant_id)).llm

    def _retire(self, old: ProviderClients) -> None:
        """Close the replaced clients once calls that borrowed them are done."""

        async def later() -> None:
            await asyncio.sleep(RETIRE_AFTER_SECONDS)
            self._retired.remove(old)
            await old.aclose()

        self._retired.append(old)
        task = asyncio.get_running_loop().create_task(later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        clients = [*self._clients.values(), *self._retired]
        self._clients, self._retired = {}, []
        for c in clients:
            await c.aclose()

    def __repr__(self) -> str:
        return f"TenantClients(tenants={sorted(self._clients)})"
