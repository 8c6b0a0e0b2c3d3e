"""The httpx plumbing the JSON clients (Shopify, Printful, SendGrid) share.

One request helper with a timeout on every call, no retries, and one mapping from
transport failures and HTTP statuses onto :mod:`autobiz.providers.errors`. Clients add
their provider-specific mapping (declines, userErrors, problem details) on top.
:class:`JsonClient` is what each of them is built on.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from autobiz.providers.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StateConflict,
)
from autobiz.providers.throttle import Throttle


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date)."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def error_for_status(
    provider: str, status: int, message: str, *, code: str | None, headers: Mapping[str, str]
) -> ProviderError:
    """The generic mapping: 429 and 5xx retryable, other 4xx not."""
    kwargs: dict[str, Any] = {"provider": provider, "provider_code": code, "http_status": status}
    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(headers), **kwargs)
    if status >= 500:
        return ProviderUnavailable(message, **kwargs)
    if status in (401, 403):
        return AuthenticationFailed(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 409:
        return StateConflict(message, **kwargs)
    return InvalidRequest(message, **kwargs)


def transport_error(provider: str, exc: httpx.HTTPError) -> ProviderUnavailable:
    """Timeouts and broken connections: the outcome is unknown, so retry (same key)."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "transport failure"
    return ProviderUnavailable(
        f"{kind}: {type(exc).__name__}",
        provider=provider,
        provider_code="timeout" if isinstance(exc, httpx.TimeoutException) else "transport",
    )


def build_http_client(timeout_seconds: float) -> httpx.AsyncClient:
    """A client with a timeout on connect, read, write and pool, and no redirects."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False)


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class JsonClient:
    """A provider's JSON API client: its httpx client (its own unless one is given; it
    closes only its own) and one request at a time, with the provider's timeout, each
    after the account's rate limit (``throttle``) let it go."""

    provider: str

    def __init__(
        self,
        http: httpx.AsyncClient | None,
        timeout_seconds: float,
        throttle: Throttle | None = None,
    ) -> None:
        self._throttle = throttle
        self._timeout_seconds = timeout_seconds
        self._owns_http = http is None
        self._http = http or build_http_client(timeout_seconds)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        params: Mapping[str, str] | None = None,
        cost: float = 1.0,
    ) -> httpx.Response:
        """One request, once, once ``cost`` of the rate limit is taken. Transport failures
        become :class:`ProviderUnavailable`."""
        if self._throttle is not None:
            await self._throttle.acquire(self.provider, cost)
        try:
            return await self._http.request(
                method,
                url,
                headers=dict(headers),
                json=json,
                params=params,
                timeout=httpx.Timeout(self._timeout_seconds),
            )
        except httpx.HTTPError as exc:
            raise transport_error(self.provider, exc) from exc
