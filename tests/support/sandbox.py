"""The provider sandbox over real HTTP for tests, plus a webhook sink.

Fixtures (import them into a folder's conftest.py):

- ``sandbox_server`` (session): the sandbox served by uvicorn on 127.0.0.1, a free port,
  on a background thread.
- ``sandbox``: per test, the same server reset to a clean state; a :class:`Sandbox` with
  ``settings`` (every client pointed at it), ``control`` (the control API) and ``url``.
- ``webhook_sink``: a second server that records every request it receives.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autobiz.providers.tenant_clients import TenantClients
from autobiz.secrets import CredentialStore, MappingSecretsBackend
from autobiz.settings import (
    Environment,
    PrintfulSettings,
    SendGridSettings,
    Settings,
    ShopifySettings,
    StripeSettings,
)
from ingress.tenants import StaticWebhookSecrets, TenantWebhookConfig
from sandbox.accounts import SandboxAccount, credentials_of, generated_account
from sandbox.app import build_app
from sandbox.control_client import SandboxControl
from sandbox.server import ServerThread


def sandbox_settings(base_url: str = "http://127.0.0.1:1", *, timeout: float = 5.0) -> Settings:
    """Test settings with every provider client pointed at ``base_url``."""
    return Settings(
        env=Environment.TEST,
        stripe=StripeSettings(api_base=f"{base_url}/stripe", timeout_seconds=timeout),
        shopify=ShopifySettings(api_base=f"{base_url}/shopify/{{shop}}", timeout_seconds=timeout),
        printful=PrintfulSettings(api_base=f"{base_url}/printful", timeout_seconds=timeout),
        sendgrid=SendGridSettings(api_base=f"{base_url}/sendgrid", timeout_seconds=timeout),
    )


def with_timeout(settings: Settings, seconds: float) -> Settings:
    """A copy of ``settings`` whose clients give up after ``seconds``."""
    update = {
        name: getattr(settings, name).model_copy(update={"timeout_seconds": seconds})
        for name in ("stripe", "shopify", "printful", "sendgrid")
    }
    return settings.model_copy(update=update)


@dataclass
class Sandbox:
    url: str
    settings: Settings
    control: SandboxControl
    accounts: dict[str, SandboxAccount] = field(default_factory=dict)

    async def host(self, tenant: str) -> SandboxAccount:
        """Open provider accounts for ``tenant`` (fresh credentials of its own)."""
        account = generated_account(tenant, secret=uuid.uuid4().hex)
        await self.control.add_account(account.model_dump())
        self.accounts[tenant] = account
        return account

    def webhook_secrets(self, *tenants: str) -> StaticWebhookSecrets:
        """What an ingress needs to receive these hosted tenants' webhooks."""
        return StaticWebhookSecrets(
            {
                t: TenantWebhookConfig(
                    stripe=[SecretStr(a.stripe_webhook_secret)],
                    shopify=[SecretStr(a.shopify_webhook_secret)],
                    printful=[SecretStr(a.printful_webhook_secret)],
                    sendgrid=[SecretStr(f"{a.sendgrid_parse_user}:{a.sendgrid_parse_password}")]
                    if a.sendgrid_parse_user and a.sendgrid_parse_password
                    else [],
                    shop_domains=[a.shopify_shop_domain],
                )
                for t in tenants
                for a in [self.accounts[t]]
            }
        )

    async def tenant_clients(self, *tenants: str) -> TenantClients:
        """Host each tenant and give the clients a worker would build for them: every
        tenant's credentials from a secrets backend, nothing from global settings."""
        data = {t: credentials_of(await self.host(t)) for t in tenants}
        return TenantClients(self.settings, CredentialStore(MappingSecretsBackend(data)))


# The control API's bearer token for this test process's sandbox (never a file).
CONTROL_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[ServerThread]:
    settings = sandbox_settings()
    token = settings.sandbox.model_copy(update={"control_token": SecretStr(CONTROL_TOKEN)})
    server = ServerThread(build_app(settings.model_copy(update={"sandbox": token}))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sandbox(sandbox_server: ServerThread) -> AsyncIterator[Sandbox]:
    control = SandboxControl(sandbox_server.url, token=CONTROL_TOKEN)
    await control.reset()
    try:
        yield Sandbox(sandbox_server.url, sandbox_settings(sandbox_server.url), control)
    finally:
        await control.aclose()


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookSink:
    """Records requests; answers ``fail_next`` of them with 500 first."""

    url: str = ""
    received: list[ReceivedRequest] = field(default_factory=list)
    fail_next: int = 0
    _arrived: asyncio.Event | None = None

    def for_provider(self, provider: str) -> list[ReceivedRequest]:
        return [r for r in self.received if r.path.endswith(f"/{provider}")]

    async def wait_for(self, predicate: Any, *, within: float = 15.0) -> list[ReceivedRequest]:
        """Wait until ``predicate(received)`` holds (a deadline, not a timed assertion)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate(self.received):
            if loop.time() > deadline:
                raise AssertionError(f"webhooks not received in time; got {len(self.received)}")
            await asyncio.sleep(0.02)
        return self.received


@pytest.fixture(scope="session")
def _sink_server() -> Iterator[tuple[ServerThread, WebhookSink]]:
    sink = WebhookSink()

    async def receive(request: Request) -> Response:
        sink.received.append(
            ReceivedRequest(request.url.path, dict(request.headers), await request.body())
        )
        if sink.fail_next > 0:
            sink.fail_next -= 1
            return JSONResponse({"ok": False}, status_code=500)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/webhooks/{provider}", receive, methods=["POST"])])
    server = ServerThread(app).start()
    sink.url = f"{server.url}/webhooks"
    try:
        yield server, sink
    finally:
        server.stop()


@pytest.fixture
def webhook_sink(_sink_server: tuple[ServerThread, WebhookSink]) -> WebhookSink:
    _, sink = _sink_server
    sink.received.clear()
    sink.fail_next = 0
    return sink
