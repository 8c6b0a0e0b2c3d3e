"""A small async client for the sandbox control API (tests and the demo use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from sandbox.control_auth import read_control_token


def _refuse_bad_token(response: httpx.Response) -> None:
    if response.status_code == 401:
        raise AutobizError(
            "the sandbox refused the control call: no or a wrong control token",
            code="SANDBOX_TOKEN_MISSING",
            hint="set AUTOBIZ_SANDBOX__CONTROL_TOKEN, or run with the AUTOBIZ_HOME the "
            "sandbox wrote sandbox/control_token under",
        )


class SandboxControl:
    """The control API with its bearer token: ``token``, else the one ``settings`` (default:
    the environment's) name — ``AUTOBIZ_SANDBOX__CONTROL_TOKEN`` or the file the sandbox
    wrote under ``AUTOBIZ_HOME`` (:mod:`sandbox.control_auth`)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        if token is None:
            token = read_control_token(settings or get_settings())
        self.auth_headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=f"{base_url.rstrip('/')}/_control", timeout=timeout, headers=self.auth_headers
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if body is None and method == "POST":
            body = {}  # POSTs are always application/json
        response = await self._http.request(method, path, json=body)
        _refuse_bad_token(response)
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

    async def armed_faults(self) -> list[dict[str, Any]]:
        """The fault rules still armed (each with the calls it has left in ``count``)."""
        rules: list[dict[str, Any]] = (await self._call("GET", "/faults"))["rules"]
        return rules

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def rate_limits(self, **config: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/rate_limits", config)
        return result

    async def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Every provider request the sandbox saw since the reset (arrival, status, limited)."""
        query = f"?provider={provider}" if provider else ""
        found: list[dict[str, Any]] = (await self._call("GET", f"/requests{query}"))["requests"]
        return found

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

    async def send_inbound_email(self, **email: Any) -> dict[str, Any]:
        """A customer's email to ``tenant``, posted to its parse URL as SendGrid's Inbound
        Parse does (``sandbox.sendgrid_api.InboundEmail``): ``{"message_id", "status",
        "answer"}`` (the ingress's status code and body)."""
        result: dict[str, Any] = await self._call("POST", "/sendgrid/inbound", email)
        return result

    async def trigger(self, event: str, **options: Any) -> httpx.Response:
        """``POST /trigger``: make ``event`` happen (:class:`sandbox.triggers.TriggerRequest`);
        the raw answer, so a caller can tell a refused trigger (4xx) from a broken one."""
        response = await self._http.post("/trigger", json={"event": event, **options})
        _refuse_bad_token(response)
        return response

    async def stripe_payment_intents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/stripe/payment_intents"))["data"]
        return result

    async def printful_orders(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/printful/orders"))["data"]
        return result
