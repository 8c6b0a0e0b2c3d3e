"""Fixtures: an ingress app per test (own tenant, own secrets, injected clock, a
recording hand-off and a relay driven by the test), reachable in-process (httpx over
ASGI) or over real loopback HTTP (uvicorn on a random port)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette

from autobiz.db.database import Database
from autobiz.settings import IngressSettings
from ingress.app import IngressDeps, IngressRuntime, create_app
from ingress.handoff import Handoff
from ingress.metrics import IngressMetrics
from ingress.ordering import PreconditionProbe
from ingress.relay import Relay
from ingress.tenants import StaticWebhookSecrets, TenantWebhookConfig
from tests.ingress.support import (
    PRINTFUL_SECRET,
    SHOPIFY_PREVIOUS,
    SHOPIFY_SECRET,
    STRIPE_SECRET,
    FakeClock,
    RecordingHandoff,
    printful_header,
    shopify_header,
    stripe_header,
)


def tenant_config(tenant: str, **over: Any) -> TenantWebhookConfig:
    values: dict[str, Any] = {
        "stripe": [SecretStr(STRIPE_SECRET)],
        "shopify": [SecretStr(SHOPIFY_SECRET), SecretStr(SHOPIFY_PREVIOUS)],
        "printful": [SecretStr(PRINTFUL_SECRET)],
        "shop_domains": [f"{tenant}.myshopify.com"],
    }
    values.update(over)
    return TenantWebhookConfig(**values)


@dataclass
class Harness:
    app: Starlette
    http: httpx.AsyncClient
    tenant: str
    clock: FakeClock
    db: Database
    handoff: Any
    runtime: IngressRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = self.app.state.ingress

    @property
    def metrics(self) -> IngressMetrics:
        return self.runtime.deps.metrics

    @property
    def relay(self) -> Relay:
        assert self.runtime.relay is not None
        return self.runtime.relay

    async def stripe(
        self, body: bytes, header: str | None = "sign", **headers: str
    ) -> httpx.Response:
        if header == "sign":
            header = stripe_header(body, t=self.clock.unix)
        if header is not None:
            headers["Stripe-Signature"] = header
        return await self.http.post("/webhooks/stripe", content=body, headers=headers)

    async def shopify(
        self, body: bytes, topic: str, header: str | None = "sign", **headers: str
    ) -> httpx.Response:
        if header == "sign":
            header = shopify_header(body)
        if header is not None:
            headers["X-Shopify-Hmac-Sha256"] = header
        headers.setdefault("X-Shopify-Shop-Domain", f"{self.tenant}.myshopify.com")
        headers["X-Shopify-Topic"] = topic
        return await self.http.post("/webhooks/shopify", content=body, headers=headers)

    async def printful(
        self, body: bytes, header: str | None = "sign", **headers: str
    ) -> httpx.Response:
        if header == "sign":
            header = printful_header(body)
        if header is not None:
            headers["x-pf-webhook-signature"] = header
        return await self.http.post("/webhooks/printful", content=body, headers=headers)

    async def rows(self, tenant: str | None = None) -> list[dict[str, Any]]:
        async with self.db.tenant(tenant or self.tenant) as s:
            return await s.fetch_all("SELECT * FROM event_store ORDER BY event_id")

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_ingress(database: Database, tenant: str) -> AsyncIterator[HarnessFactory]:
    clients: list[httpx.AsyncClient] = []

    async def factory(
        *,
        settings: IngressSettings | None = None,
        handoff: Handoff | None = None,
        db: Database | None = None,
        secrets: StaticWebhookSecrets | None = None,
        clock: FakeClock | None = None,
        probe: PreconditionProbe | None = None,
    ) -> Harness:
        clock = clock or FakeClock()
        handoff = handoff if handoff is not None else RecordingHandoff()
        deps = IngressDeps(
            db=db or database,
            secrets=secrets or StaticWebhookSecrets({tenant: tenant_config(tenant)}),
            settings=settings or IngressSettings(hold_timeout_seconds=60),
            handoff=handoff,
            clock=clock,
            probe=probe,
        )
        app = create_app(deps)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress")
        clients.append(http)
        return Harness(app, http, tenant, clock, deps.db, handoff)

    yield factory
    for c in clients:
        await c.aclose()


@asynccontextmanager
async def serve_http(app: Starlette) -> AsyncIterator[str]:
    """uvicorn on a random loopback port, in this event loop; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
