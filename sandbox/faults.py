"""Injected faults and published rate limits, applied around the provider routes.

A fault rule matches ``method``, a glob on the request path (``/stripe/v1/refunds*``)
and, for Shopify's one GraphQL endpoint, optionally the ``operation`` the request names
(``GetOrder``), and fires for the next ``count`` matching calls:

- ``latency``: the handler sleeps ``latency_ms`` once it has started processing (for
  Stripe, after the idempotency key is registered, so a concurrent retry sees 409);
- ``error``: answer ``status`` (default 500) without running the handler;
- ``rate_limit``: answer 429 with ``Retry-After: retry_after``;
- ``timeout``: never answer (the handler does not run); hang until the client gives up;
- ``commit_then_drop``: run the handler (the provider commits), then withhold the
  response until the client gives up.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["latency", "error", "rate_limit", "timeout", "commit_then_drop"]
PROVIDERS = ("stripe", "shopify", "printful", "sendgrid")


class FaultRule(BaseModel):
    kind: FaultKind
    path: str = Field(description="glob on the request path, e.g. /stripe/v1/payment_intents*")
    method: str = "*"
    count: int = Field(default=1, ge=1)
    latency_ms: int = Field(default=0, ge=0)
    status: int = Field(default=500, ge=400, le=599)
    retry_after: float = Field(default=1.0, ge=0)
    hang_seconds: float = Field(default=30.0, gt=0, description="timeout/commit_then_drop")
    operation: str | None = Field(
        default=None, description="GraphQL operationName the request must name (Shopify)"
    )

    def matches(self, method: str, path: str, operation: str | None = None) -> bool:
        return (
            (self.method == "*" or self.method.upper() == method.upper())
            and fnmatch.fnmatchcase(path, self.path)
            and (self.operation is None or self.operation == operation)
        )


class RateLimitConfig(BaseModel):
    """The published limits; ``enabled`` switches enforcement (off by default)."""

    enabled: bool = False
    stripe_per_second: float = Field(default=25.0, gt=0)
    printful_per_minute: float = Field(default=120.0, gt=0)
    shopify_bucket_size: float = Field(default=1000.0, gt=0)
    shopify_restore_rate: float = Field(default=50.0, gt=0)


@dataclass
class TokenBucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0 on success, else the seconds until it would fit."""
        self.refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


# Scope keys the Shopify endpoint sets so the request log shows its cost and throttling.
COST_SCOPE_KEY = "sandbox.query_cost"
THROTTLED_SCOPE_KEY = "sandbox.throttled"
REQUEST_LOG_SIZE = 100_000


@dataclass(frozen=True)
class RequestRecord:
    """One provider request as the sandbox saw it: when it arrived (Unix seconds), what
    it answered, and whether a limit refused it (a 429, or Shopify's ``THROTTLED``)."""

    provider: str
    method: str
    path: str
    at: float
    status: int
    limited: bool
    cost: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """The fault rules, rate limiters and request log of one sandbox. Reset with the rest
    of its state."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.limits = RateLimitConfig()
        self.buckets: dict[str, TokenBucket] = {}
        self.requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
        self.configure_limits(self.limits)

    def reset(self) -> None:
        self.rules.clear()
        self.requests.clear()
        self.configure_limits(RateLimitConfig())

    def configure_limits(self, limits: RateLimitConfig) -> None:
        self.limits = limits
        self.buckets = {
            "stripe": TokenBucket(limits.stripe_per_second, limits.stripe_per_second),
            "printful": TokenBucket(limits.printful_per_minute, limits.printful_per_minute / 60),
            "shopify": TokenBucket(limits.shopify_bucket_size, limits.shopify_restore_rate),
        }

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def take(self, method: str, path: str, operation: str | None = None) -> FaultRule | None:
        """The first rule that matches, with one of its remaining calls consumed."""
        for rule in self.rules:
            if rule.matches(method, path, operation):
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                return rule
        return None


LATENCY_SCOPE_KEY = "sandbox.latency_seconds"


async def processing_delay(request: Request) -> None:
    """Handlers call this once they have started processing (see ``latency`` above)."""
    delay = float(request.scope.get(LATENCY_SCOPE_KEY, 0.0))
    if delay > 0:
        await asyncio.sleep(delay)


def provider_of(path: str) -> str | None:
    head = path.strip("/").split("/", 1)[0]
    return head if head in PROVIDERS else None


def error_body(provider: str | None, status: int, message: str) -> dict[str, Any]:
    """An error body in the provider's own shape, so the clients' parsers see the real thing."""
    if provider == "stripe":
        kind = "invalid_request_error" if status == 429 else "api_error"
        code = "rate_limit" if status == 429 else None
        return {"error": {"type": kind, "code": code, "message": message}}
    if provider == "printful":  # as its v2 spec documents: 4xx, then 5xx problem details
        if status < 500:
            return {"code": status, "result": message, "error": {"reason": "", "message": message}}
        return {"type": "about:blank", "status": status, "title": message, "details": message}
    if provider == "sendgrid":
        return {"errors": [{"message": message, "field": None, "help": None}]}
    return {"errors": message}


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


async def _peek_operation(receive: Receive) -> tuple[str | None, Receive]:
    """The GraphQL ``operationName`` of the request body, and a ``receive`` that hands
    the app the same body again."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    name = payload.get("operationName") if isinstance(payload, dict) else None

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return (str(name) if name else None), replay


async def _wait_for_disconnect(receive: Receive, limit: float) -> None:
    async def drain() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    try:
        await asyncio.wait_for(drain(), timeout=limit)
    except TimeoutError:
        return


class FaultMiddleware:
    """ASGI middleware that applies the rules and the rate limits to provider paths."""

    def __init__(self, app: ASGIApp, book: FaultBook) -> None:
        self.app = app
        self.book = book

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        provider = provider_of(path)
        if provider is None:
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        status = 0

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._provider_request(provider, path, scope, receive, noting)
        finally:
            self.book.requests.append(
                RequestRecord(
                    provider=provider,
                    method=scope["method"],
                    path=path,
                    at=arrived,
                    status=status,
                    limited=status == 429 or bool(scope.get(THROTTLED_SCOPE_KEY)),
                    cost=float(scope.get(COST_SCOPE_KEY, 1.0)),
                )
            )

    async def _provider_request(
        self, provider: str, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        operation = None
        if provider == "shopify" and any(r.operation for r in self.book.rules):
            operation, receive = await _peek_operation(receive)
        rule = self.book.take(scope["method"], path, operation)
        if rule is not None:
            handled = await self._apply(rule, provider, scope, receive, send)
            if handled:
                return
        if self.book.limits.enabled and provider in ("stripe", "printful"):
            wait = self.book.buckets[provider].take()
            if wait > 0:
                retry_after = max(1, round(wait + 0.5))
                await _send_json(
                    send,
                    429,
                    error_body(provider, 429, "Too many requests"),
                    {"Retry-After": str(retry_after)},
                )
                return
        await self.app(scope, receive, send)

    async def _apply(
        self, rule: FaultRule, provider: str, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        if rule.kind == "latency":
            scope[LATENCY_SCOPE_KEY] = rule.latency_ms / 1000
            return False
        if rule.kind == "error":
            await _send_json(
                send, rule.status, error_body(provider, rule.status, "Injected fault"), {}
            )
            return True
        if rule.kind == "rate_limit":
            await _send_json(
                send,
                429,
                error_body(provider, 429, "Too many requests (injected)"),
                {"Retry-After": f"{rule.retry_after:g}"},
            )
            return True
        if rule.kind == "timeout":
            await _wait_for_disconnect(receive, rule.hang_seconds)
            return True

        # commit_then_drop: run the handler for real, then keep the answer to ourselves.
        async def swallow(_: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        await _wait_for_disconnect(receive, rule.hang_seconds)
        return True
