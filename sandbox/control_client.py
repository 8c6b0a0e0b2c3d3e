"""A small async client for the sandbox control API (tests and the demo use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class SandboxControl:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=f"{base_url.rstrip('/')}/_control", timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    async def health(self) -> bool:
        return bool((await self._call("GET", "/health")).get("status") == "ok")

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def fault(
        self, kind: str, path: str, *, method: str = "*", count: int = 1, **extra: Any
    ) -> None:
        """Arm a fault (see :class:`sandbox.faults.FaultRule`)."""
        await self._call(
            "POST",
            "/faults",
            {"kind": kind, "path": path, "method": method, "count": count, **extra},
        )

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def rate_limits(self, **config: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/rate_limits", config)
        return result

    async def webhooks(self, **config: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/webhooks", config)
        return result

    async def flush_webhooks(self) -> int:
        return int((await self._call("POST", "/webhooks/flush"))["released"])

    async def deliveries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/webhooks/deliveries"))[
            "deliveries"
        ]
        return result

    async def seed_shopify_order(self, **order: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/shopify/orders", order)
        return result

    async def advance_printful(
        self, order_id: int | str, action: str, **extra: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = (
            await self._call(
                "POST", f"/printful/orders/{order_id}/advance", {"action": action, **extra}
            )
        )["data"]
        return result

    async def add_account(self, account: Mapping[str, Any]) -> None:
        """Host one more merchant (a :class:`sandbox.accounts.SandboxAccount`'s fields)."""
        await self._call("POST", "/accounts", dict(account))

    async def outbox(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/sendgrid/outbox"))["messages"]
        return result

    async def stripe_payment_intents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/stripe/payment_intents"))["data"]
        return result

    async def printful_orders(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/printful/orders"))["data"]
        return result
