"""The control API (``/_control``) that tests and the demo use to drive the sandbox.

GET    /_control/health                       {"status": "ok"}
POST   /_control/reset                        forget all state, faults, limits, webhook config
GET    /_control/faults                       the armed fault rules
POST   /_control/faults                       arm one: {"kind", "path", "method", "count",
                                              "latency_ms", "status", "retry_after", "hang_seconds"}
DELETE /_control/faults                       disarm all
GET    /_control/rate_limits                  current limits
POST   /_control/rate_limits                  {"enabled", "stripe_per_second",
                                                  "printful_per_minute",
                                              "shopify_bucket_size", "shopify_restore_rate"}
GET    /_control/requests                     every provider request seen since the reset:
                                              {"provider", "method", "path", "at" (Unix s),
                                              "status", "limited", "cost"}; ?provider=
GET    /_control/webhooks                     config, pending count
POST   /_control/webhooks                     {"target_url", "urls": {provider: url}, "duplicates",
                                              "reorder", "max_attempts", "retry_seconds"}
POST   /_control/webhooks/flush               release an event held back for reordering
GET    /_control/webhooks/deliveries          every delivery attempt
POST   /_control/shopify/orders               seed an order (SeedOrder) -> {"id", ...}
POST   /_control/printful/orders/{id}/advance {"action": start|ship|fail|hold|release, "reason",
                                              "problem", "carrier", "service",
                                              "tracking_number"}; "problem": "address"
                                              holds until a PATCHed recipient releases it
GET    /_control/sendgrid/outbox              every accepted message
POST   /_control/sendgrid/inbound             a customer's email (InboundEmail) posted to the
                                              tenant's parse URL as Inbound Parse does ->
                                              {"message_id", "status", "answer"}
GET    /_control/stripe/payment_intents       every PaymentIntent (for assertions)
GET    /_control/accounts                     the merchant accounts hosted (tenants, shops)
POST   /_control/accounts                     add or replace one (SandboxAccount)
GET    /_control/printful/orders              every Printful order
POST   /_control/trigger                      make a provider event happen (TriggerRequest:
                                              {"event", "tenant", "order", ...}) ->
                                              {"event", "provider", "tenant", "object"};
                                              an unknown event is 400 with "supported"

Every call but ``GET /health`` needs ``Authorization: Bearer <token>``, any call with an
``Origin`` must be same-origin, and POSTs must be ``application/json``
(:mod:`sandbox.control_auth`: 401 / 403 / 415 with a JSON error body).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from autobiz.providers.errors import HygieneViolation
from autobiz.providers.hygiene import ensure_host_allowed
from sandbox.accounts import AccountConflict, SandboxAccount
from sandbox.control_auth import check_control_request, ensure_control_token
from sandbox.faults import FaultRule, RateLimitConfig
from sandbox.printful_api import AdvanceRequest, PrintfulProblem
from sandbox.sendgrid_api import InboundEmail
from sandbox.shopify_api import SeedOrder
from sandbox.state import SandboxState
from sandbox.triggers import EVENTS, TriggerRefused, TriggerRequest, run_trigger
from sandbox.webhooks import WebhookConfig

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


async def _parse(request: Request, model: type[M]) -> M:
    raw = await request.body()
    return model.model_validate_json(raw or b"{}")


def control_routes(state: SandboxState) -> list[BaseRoute]:
    settings, written = ensure_control_token(state.settings)
    assert settings.sandbox.control_token is not None
    token = settings.sandbox.control_token.get_secret_value()
    if written is not None:
        log.warning("sandbox control token written to %s", written)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def reset(_: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            state.faults.add(await _parse(request, FaultRule))
        elif request.method == "DELETE":
            state.faults.rules.clear()
        return JSONResponse({"rules": [r.model_dump() for r in state.faults.rules]})

    async def rate_limits(request: Request) -> Response:
        if request.method == "POST":
            state.faults.configure_limits(await _parse(request, RateLimitConfig))
        return JSONResponse(state.faults.limits.model_dump())

    async def requests(request: Request) -> Response:
        provider = request.query_params.get("provider")
        return JSONResponse(
            {
                "requests": [
                    r.as_json()
                    for r in state.faults.requests
                    if provider is None or r.provider == provider
                ]
            }
        )

    async def webhooks(request: Request) -> Response:
        if request.method == "POST":
            config = await _parse(request, WebhookConfig)
            for url in [config.target_url, *config.urls.values()]:
                if url:
                    ensure_host_allowed("sandbox", url, state.settings)
            state.webhooks.configure(config)
        return JSONResponse(
            {**state.webhooks.config.model_dump(), "pending": state.webhooks.pending}
        )

    async def flush(_: Request) -> Response:
        return JSONResponse({"released": state.webhooks.flush()})

    async def deliveries(_: Request) -> Response:
        return JSONResponse({"deliveries": [d.model_dump() for d in state.webhooks.deliveries]})

    async def shopify_seed(request: Request) -> Response:
        try:
            return JSONResponse(state.shopify.seed(await _parse(request, SeedOrder)))
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def printful_advance(request: Request) -> Response:
        body = await _parse(request, AdvanceRequest)
        try:
            return JSONResponse(
                {"data": state.printful.advance(request.path_params["order_id"], body)}
            )
        except PrintfulProblem as exc:
            return JSONResponse({"title": exc.title, "detail": exc.detail}, status_code=exc.status)

    async def accounts(request: Request) -> Response:
        if request.method == "POST":
            state.accounts.add(await _parse(request, SandboxAccount))
        return JSONResponse(
            {
                "accounts": [
                    {"tenant": a.tenant, "shop": a.shopify_shop_domain}
                    for a in state.accounts.all()
                ]
            }
        )

    async def outbox(_: Request) -> Response:
        return JSONResponse({"messages": state.sendgrid.outbox})

    async def sendgrid_inbound(request: Request) -> Response:
        email = await _parse(request, InboundEmail)
        account = state.accounts.get(email.tenant)
        if account is None:
            return JSONResponse({"error": f"no account {email.tenant!r}"}, status_code=404)
        config = state.webhooks.config
        url = config.urls.get("sendgrid_inbound") or state.sendgrid.parse_url(
            account, config.target_url
        )
        if url is None:
            return JSONResponse({"error": "no webhook target configured"}, status_code=409)
        ensure_host_allowed("sandbox", url, state.settings)
        return JSONResponse(await state.sendgrid.deliver_inbound(email, url, account))

    async def stripe_pis(_: Request) -> Response:
        return JSONResponse({"data": list(state.stripe.payment_intents.values())})

    async def printful_orders(_: Request) -> Response:
        return JSONResponse({"data": list(state.printful.orders.values())})

    async def trigger(request: Request) -> Response:
        try:
            body = await _parse(request, TriggerRequest)
            return JSONResponse(await run_trigger(state, str(request.base_url), body))
        except TriggerRefused as exc:
            return JSONResponse(
                {"error": exc.message, "supported": sorted(EVENTS)}, status_code=exc.status
            )

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if (refusal := check_control_request(request, token)) is not None:
                return refusal
            try:
                result: Response = await handler(request)
                return result
            except ValidationError as exc:
                return JSONResponse({"error": exc.errors(include_url=False)}, status_code=422)
            except HygieneViolation as exc:
                return JSONResponse({"error": exc.message}, status_code=400)
            except AccountConflict as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)

        return endpoint

    return [
        Route("/health", guarded(health), methods=["GET"]),
        Route("/reset", guarded(reset), methods=["POST"]),
        Route("/faults", guarded(faults), methods=["GET", "POST", "DELETE"]),
        Route("/rate_limits", guarded(rate_limits), methods=["GET", "POST"]),
        Route("/requests", guarded(requests), methods=["GET"]),
        Route("/webhooks", guarded(webhooks), methods=["GET", "POST"]),
        Route("/webhooks/flush", guarded(flush), methods=["POST"]),
        Route("/webhooks/deliveries", guarded(deliveries), methods=["GET"]),
        Route("/shopify/orders", guarded(shopify_seed), methods=["POST"]),
        Route("/printful/orders", guarded(printful_orders), methods=["GET"]),
        Route("/printful/orders/{order_id}/advance", guarded(printful_advance), methods=["POST"]),
        Route("/sendgrid/outbox", guarded(outbox), methods=["GET"]),
        Route("/sendgrid/inbound", guarded(sendgrid_inbound), methods=["POST"]),
        Route("/stripe/payment_intents", guarded(stripe_pis), methods=["GET"]),
        Route("/accounts", guarded(accounts), methods=["GET", "POST"]),
        Route("/trigger", guarded(trigger), methods=["POST"]),
    ]
