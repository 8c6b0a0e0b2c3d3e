"""Signed webhooks, delivered at least once.

Signing, per provider, with the secrets of the account that owns the object (see
:mod:`sandbox.accounts`):

- Stripe: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``,
  re-signed with a fresh timestamp on every attempt, as Stripe does.
- Shopify: ``X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(secret, body))`` plus
  ``X-Shopify-Topic``, ``-Shop-Domain``, ``-Webhook-Id`` (one per delivery, kept across its
  retries), ``-Event-Id``, ``-Triggered-At`` and ``-API-Version``.
- Printful: ``x-pf-webhook-signature: hex(HMAC-SHA256(key, body))``, the key being the
  v2 ``secret_key`` hex-decoded (see ``ingress.signatures.printful_hmac_key`` for why).

Delivery: a background task posts each event to ``{target}/{provider}``; a non-2xx answer
or a transport error is retried with exponential backoff up to ``max_attempts``. Switches
make it deliver every event twice (duplicates) or swap neighbours (reordering); held
events are released by ``flush``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import string
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field

from autobiz.settings import Settings
from sandbox.accounts import SandboxAccount, account_from_settings


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def shopify_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def printful_signature(secret: str, body: bytes) -> str:
    """hex(HMAC-SHA256(key, raw body)), the key being the secret hex-decoded when it is hex
    (a v2 ``secret_key`` is 128 hex digits), else its text; see
    ``ingress.signatures.printful_hmac_key`` for why."""
    text = secret.strip()
    is_hex = bool(text) and len(text) % 2 == 0 and all(c in string.hexdigits for c in text)
    key = bytes.fromhex(text) if is_hex else secret.encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


PRINTFUL_SIGNATURE_HEADER = "x-pf-webhook-signature"


@dataclass
class WebhookEvent:
    provider: str
    topic: str
    event_id: str
    body: bytes
    account: SandboxAccount | None = None
    delivery_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    triggered_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class DeliveryRecord(BaseModel):
    provider: str
    topic: str
    event_id: str
    url: str
    attempt: int
    status: int | None = None
    error: str | None = None
    delivered: bool = False


class WebhookConfig(BaseModel):
    target_url: str | None = Field(default=None, description="base URL; /{provider} is appended")
    urls: dict[str, str] = Field(default_factory=dict, description="per-provider full URL")
    duplicates: bool = False
    reorder: bool = False
    max_attempts: int = Field(default=5, ge=1, le=50)
    retry_seconds: float = Field(default=0.5, ge=0)


class WebhookDispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = self._default_config()
        self.deliveries: list[DeliveryRecord] = []
        self._queue: asyncio.Queue[WebhookEvent] | None = None
        self._held: WebhookEvent | None = None
        self._target_set: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    def _default_config(self) -> WebhookConfig:
        sb = self.settings.sandbox
        return WebhookConfig(
            target_url=sb.webhook_target,
            max_attempts=sb.webhook_max_attempts,
            retry_seconds=sb.webhook_retry_seconds,
        )

    # -- lifecycle (runs inside the server's event loop) ----------------------------

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._target_set = asyncio.Event()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self._sync_target_event()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()

    def reset(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.deliveries.clear()
        self._held = None
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        self.config = self._default_config()
        self._sync_target_event()
        if self._worker is not None:
            # The worker may hold an event it took before the reset: replace it.
            self._worker.cancel()
            self._worker = asyncio.create_task(self._run())

    def configure(self, config: WebhookConfig) -> None:
        self.config = config
        self._sync_target_event()

    def _sync_target_event(self) -> None:
        if self._target_set is None:
            return
        if self.config.target_url or self.config.urls:
            self._target_set.set()
        else:
            self._target_set.clear()

    def url_for(self, provider: str) -> str | None:
        if provider in self.config.urls:
            return self.config.urls[provider]
        if self.config.target_url:
            return f"{self.config.target_url.rstrip('/')}/{provider}"
        return None

    # -- producing ------------------------------------------------------------------

    def emit(
        self,
        provider: str,
        topic: str,
        event_id: str,
        payload: dict[str, Any],
        account: SandboxAccount | None = None,
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        event = WebhookEvent(
            provider=provider, topic=topic, event_id=event_id, body=body, account=account
        )
        if self._queue is not None:
            self._queue.put_nowait(event)

    def flush(self) -> int:
        """Release an event held back for reordering."""
        held, self._held = self._held, None
        if held is None:
            return 0
        self._spawn(self._dispatch(held))
        return 1

    @property
    def pending(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + (1 if self._held else 0)

    # -- delivering -----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._queue is not None and self._target_set is not None
        while True:
            event = await self._queue.get()
            await self._target_set.wait()
            if self.config.reorder:
                if self._held is None:
                    self._held = event
                    continue
                held, self._held = self._held, None
                await self._dispatch(event)
                await self._dispatch(held)
            else:
                await self._dispatch(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, event: WebhookEvent) -> None:
        """First attempts go out in order; retries continue in the background."""
        copies = 2 if self.config.duplicates else 1
        for _ in range(copies):
            if not await self._attempt(event, 1):
                self._spawn(self._retry(event))

    def headers_for(self, event: WebhookEvent) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "autobiz-sandbox/1"}
        account = event.account or account_from_settings(self.settings)
        if event.provider == "stripe":
            secret = account.stripe_webhook_secret
            headers["Stripe-Signature"] = stripe_signature(secret, event.body, int(time.time()))
        elif event.provider == "shopify":
            shop = self.settings.shopify
            headers.update(
                {
                    "X-Shopify-Topic": event.topic,
                    "X-Shopify-Hmac-Sha256": shopify_hmac(
                        account.shopify_webhook_secret, event.body
                    ),
                    "X-Shopify-Shop-Domain": account.shopify_shop_domain,
                    "X-Shopify-Webhook-Id": event.delivery_id,
                    "X-Shopify-Event-Id": event.event_id,
                    "X-Shopify-Triggered-At": event.triggered_at,
                    "X-Shopify-API-Version": shop.api_version,
                }
            )
        elif event.provider == "printful":
            headers[PRINTFUL_SIGNATURE_HEADER] = printful_signature(
                account.printful_webhook_secret, event.body
            )
        return headers

    async def _attempt(self, event: WebhookEvent, attempt: int) -> bool:
        """One POST; True when it was delivered, or when there is nowhere to deliver."""
        assert self._http is not None
        url = self.url_for(event.provider)
        if url is None:
            return True
        record = DeliveryRecord(
            provider=event.provider,
            topic=event.topic,
            event_id=event.event_id,
            url=url,
            attempt=attempt,
        )
        try:
            response = await self._http.post(
                url, content=event.body, headers=self.headers_for(event)
            )
            record.status = response.status_code
            record.delivered = 200 <= response.status_code < 300
        except httpx.HTTPError as exc:
            record.error = type(exc).__name__
        self.deliveries.append(record)
        return record.delivered

    async def _retry(self, event: WebhookEvent) -> None:
        for attempt in range(2, self.config.max_attempts + 1):
            await asyncio.sleep(self.config.retry_seconds * 2 ** (attempt - 2))
            if await self._attempt(event, attempt):
                return
