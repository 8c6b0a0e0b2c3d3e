"""Per-tenant provider credentials (P1-TASK-05).

A ``CredentialStore`` reads from a pluggable ``SecretsBackend`` (environment and file
backends ship; Vault or a cloud secrets manager implement the same one-method protocol),
caches what it read for a while, hands values out only as ``SecretStr``, and refuses —
and records — any request by one tenant's principal for another tenant's credential.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import SecretStr

from autobiz.db.database import Database, validate_tenant_id
from autobiz.errors import SecretAccessError, SecretNotFoundError
from autobiz.settings import Settings

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Principal:
    """Who is asking: the tenant a worker task acts for, and an actor name for the audit."""

    tenant_id: str
    actor: str = "worker"


@dataclass(frozen=True)
class AccessEvent:
    principal: Principal
    tenant_id: str
    name: str
    outcome: str  # "granted" | "refused" | "missing"


AuditSink = Callable[[AccessEvent], Awaitable[None]]


class SecretsBackend(Protocol):
    def load(self, tenant_id: str, name: str) -> str | None:
        """The raw secret, or None when this backend has none."""
        ...


class EnvSecretsBackend:
    """``AUTOBIZ_SECRET__<TENANT>__<NAME>``; dashes in the tenant id become underscores."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def load(self, tenant_id: str, name: str) -> str | None:
        key = f"AUTOBIZ_SECRET__{tenant_id.replace('-', '_').upper()}__{name.upper()}"
        return self._environ.get(key)

    def __repr__(self) -> str:
        return "EnvSecretsBackend()"


class FileSecretsBackend:
    """A YAML or JSON file ``{tenant_id: {name: value}}``, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._data: dict[str, dict[str, str]] = {}

    def load(self, tenant_id: str, name: str) -> str | None:
        mtime = self._path.stat().st_mtime if self._path.exists() else None
        if mtime != self._mtime:
            self._data = self._read() if mtime is not None else {}
            self._mtime = mtime
        value = self._data.get(tenant_id, {}).get(name)
        return None if value is None else str(value)

    def _read(self) -> dict[str, dict[str, str]]:
        text = self._path.read_text()
        raw = json.loads(text) if self._path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(raw, dict):
            return {}
        return {str(t): {str(k): str(v) for k, v in (s or {}).items()} for t, s in raw.items()}

    def __repr__(self) -> str:
        return f"FileSecretsBackend({self._path.name!r})"


class MappingSecretsBackend:
    """An in-memory ``{tenant_id: {name: value}}`` (tests, and secrets read elsewhere)."""

    def __init__(self, data: Mapping[str, Mapping[str, str]]) -> None:
        self._data = {t: dict(v) for t, v in data.items()}

    def load(self, tenant_id: str, name: str) -> str | None:
        return self._data.get(tenant_id, {}).get(name)

    def set(self, tenant_id: str, name: str, value: str) -> None:
        self._data.setdefault(tenant_id, {})[name] = value

    def __repr__(self) -> str:
        return f"MappingSecretsBackend(tenants={sorted(self._data)})"


class ChainedSecretsBackend:
    """The first backend that has the secret wins."""

    def __init__(self, *backends: SecretsBackend) -> None:
        self._backends = backends

    def load(self, tenant_id: str, name: str) -> str | None:
        for backend in self._backends:
            value = backend.load(tenant_id, name)
            if value is not None:
                return value
        return None


class SettingsSecretsBackend:
    """The settings-level provider credentials (``AUTOBIZ_STRIPE__API_KEY``, …), for the
    one tenant they are declared for (``ingress.default_tenant``) and no other: a
    single-shop install needs no secrets file, and a second tenant never falls back to the
    first one's keys."""

    def __init__(self, settings: Settings) -> None:
        self._tenant = settings.ingress.default_tenant
        self._values: dict[str, SecretStr | str | None] = {
            "stripe_api_key": settings.stripe.api_key,
            "stripe_webhook_secret": settings.stripe.webhook_secret,
            "shopify_shop_domain": settings.shopify.shop_domain,
            "shopify_access_token": settings.shopify.access_token,
            "shopify_webhook_secret": settings.shopify.webhook_secret,
            "printful_api_token": settings.printful.api_token,
            "printful_store_id": settings.printful.store_id,
            "printful_webhook_secret": settings.printful.webhook_secret,
            "sendgrid_api_key": settings.sendgrid.api_key,
            "llm_api_key": settings.llm.api_key,
        }

    def load(self, tenant_id: str, name: str) -> str | None:
        if tenant_id != self._tenant:
            return None
        value = self._values.get(name)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return value

    def __repr__(self) -> str:
        return f"SettingsSecretsBackend(tenant={self._tenant!r})"


async def log_audit(event: AccessEvent) -> None:
    level = logging.WARNING if event.outcome == "refused" else logging.DEBUG
    log.log(
        level,
        "credential access %s: principal tenant=%s actor=%s requested tenant=%s name=%s",
        event.outcome,
        event.principal.tenant_id,
        event.principal.actor,
        event.tenant_id,
        event.name,
    )


def database_audit(db: Database) -> AuditSink:
    """Record refusals in the principal's own ``audit_log`` (and log every access)."""

    async def sink(event: AccessEvent) -> None:
        await log_audit(event)
        if event.outcome != "refused":
            return
        async with db.tenant(event.principal.tenant_id) as session:
            await session.execute(
                "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
                "VALUES (%s, %s, 'credential.read', 'refused', %s)",
                (
                    event.principal.tenant_id,
                    event.principal.actor,
                    json.dumps({"requested_tenant": event.tenant_id, "name": event.name}),
                ),
            )

    return sink


@dataclass
class _Cached:
    value: SecretStr
    expires: float


@dataclass
class CredentialStore:
    backend: SecretsBackend
    audit: AuditSink = log_audit
    ttl_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _cache: dict[tuple[str, str], _Cached] = field(default_factory=dict, repr=False)

    async def get(self, principal: Principal, tenant_id: str, name: str) -> SecretStr:
        validate_tenant_id(tenant_id)
        if not _NAME_RE.match(name):
            raise SecretNotFoundError(f"invalid credential name {name!r}")
        if principal.tenant_id != tenant_id:
            await self.audit(AccessEvent(principal, tenant_id, name, "refused"))
            raise SecretAccessError(
                f"tenant {principal.tenant_id!r} may not read credentials of another tenant"
            )
        key = (tenant_id, name)
        cached = self._cache.get(key)
        now = self.clock()
        if cached is not None and cached.expires > now:
            return cached.value
        raw = self.backend.load(tenant_id, name)
        if raw is None:
            await self.audit(AccessEvent(principal, tenant_id, name, "missing"))
            raise SecretNotFoundError(f"no credential {name!r} for tenant {tenant_id!r}")
        value = SecretStr(raw)
        self._cache[key] = _Cached(value, now + self.ttl_seconds)
        await self.audit(AccessEvent(principal, tenant_id, name, "granted"))
        return value

    def invalidate(self, tenant_id: str | None = None) -> None:
        for key in [k for k in self._cache if tenant_id is None or k[0] == tenant_id]:
            del self._cache[key]

    def __repr__(self) -> str:
        return f"CredentialStore(backend={self.backend!r}, cached={len(self._cache)})"


def credential_store(settings: Settings, db: Database | None = None) -> CredentialStore:
    """The store a process uses: environment first, then ``AUTOBIZ_SECRETS_FILE`` if set,
    then the settings-level credentials for the default tenant only; refusals recorded in
    the database when one is given."""
    backends: list[SecretsBackend] = [EnvSecretsBackend()]
    if settings.secrets_file is not None:
        backends.append(FileSecretsBackend(settings.secrets_file))
    backends.append(SettingsSecretsBackend(settings))
    return CredentialStore(
        ChainedSecretsBackend(*backends),
        audit=database_audit(db) if db is not None else log_audit,
        ttl_seconds=settings.secrets_cache_seconds,
    )
