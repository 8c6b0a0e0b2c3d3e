"""`autobiz sandbox`: the local stand-in for Stripe, Shopify, Printful and SendGrid."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import typer

from autobiz.cli.output import emit_json
from autobiz.devstack.sandbox_package import sandbox_required
from autobiz.errors import AutobizError, UsageError
from autobiz.providers.hygiene import ensure_host_allowed
from autobiz.settings import get_settings
from kernel.codes import ErrorCode

HELP = """Serve the provider sandbox: one HTTP server that speaks the parts of the Stripe,
Shopify, Printful and SendGrid APIs AutoBiz uses, keeps its state in memory and sends
signed webhooks. The clients' default settings point at it
(AUTOBIZ_STRIPE__API_BASE=http://HOST:PORT/stripe, likewise /shopify, /printful,
/sendgrid).

\b
Control API (JSON bodies) under /_control. Every call but GET /health needs
Authorization: Bearer TOKEN (AUTOBIZ_SANDBOX__CONTROL_TOKEN, else a fresh token
per start in $AUTOBIZ_HOME/sandbox/control_token, mode 0600; printed at start);
a cross-origin call (Origin header) is 403, a POST that is not
application/json 415:
  GET  /health                  liveness
  POST /reset                   forget all state, faults and switches
  POST /faults                  arm a fault for the next N matching calls:
         {"kind": "latency|error|rate_limit|timeout|commit_then_drop",
          "path": "/stripe/v1/refunds*", "method": "POST", "count": 1,
          "latency_ms": 500, "status": 503, "retry_after": 2}
  GET|DELETE /faults            list / disarm
  POST /rate_limits             {"enabled": true}: Stripe 25/s, Printful
                                120/min, Shopify cost bucket (1000, 50/s)
  POST /webhooks                {"target_url": "http://127.0.0.1:8000/webhooks",
                                 "duplicates": false, "reorder": false,
                                 "max_attempts": 5, "retry_seconds": 0.5}
  POST /webhooks/flush          release an event held back by "reorder"
  GET  /webhooks/deliveries     every delivery attempt and its answer
  POST /shopify/orders          seed an order {"email", "currency",
                                 "line_items": [{"title", "quantity", "price"}]}
  POST /printful/orders/ID/advance
                                {"action": "start|ship|fail|hold|release"}
  GET  /sendgrid/outbox         every accepted email
  GET  /stripe/payment_intents  every PaymentIntent
  GET  /printful/orders         every Printful order
  POST /trigger                 make a provider event happen (`autobiz sandbox trigger`)

\b
Webhooks go to TARGET/stripe, TARGET/shopify, TARGET/printful, signed with
the secrets in settings: Stripe-Signature (t=,v1=), X-Shopify-Hmac-Sha256,
x-pf-webhook-signature (hex HMAC-SHA256 of the body).
"""


app = typer.Typer(help=HELP, invoke_without_command=True, no_args_is_help=False)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Listen address (default: AUTOBIZ_SANDBOX__HOST)."),
    port: int = typer.Option(None, help="Port (default: AUTOBIZ_SANDBOX__PORT)."),
    webhook_target: str = typer.Option(
        None, help="Base URL for webhooks (default: AUTOBIZ_SANDBOX__WEBHOOK_TARGET)."
    ),
) -> None:
    if ctx.invoked_subcommand is None:
        sandbox(host=host, port=port, webhook_target=webhook_target)


main.__doc__ = HELP


def sandbox(
    host: str = typer.Option(None, help="Listen address (default: AUTOBIZ_SANDBOX__HOST)."),
    port: int = typer.Option(None, help="Port (default: AUTOBIZ_SANDBOX__PORT)."),
    webhook_target: str = typer.Option(
        None, help="Base URL for webhooks (default: AUTOBIZ_SANDBOX__WEBHOOK_TARGET)."
    ),
) -> None:
    with sandbox_required("`autobiz sandbox`"):  # dev tooling: not in the production image
        from sandbox.control_auth import ensure_control_token
        from sandbox.server import serve

    from autobiz.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)  # JSON or text lines, uvicorn's included
    if webhook_target:
        ensure_host_allowed("sandbox", webhook_target, settings)
        settings = settings.model_copy(
            update={
                "sandbox": settings.sandbox.model_copy(update={"webhook_target": webhook_target})
            }
        )
    settings, written = ensure_control_token(settings)
    where = written if written is not None else "AUTOBIZ_SANDBOX__CONTROL_TOKEN"
    typer.echo(f"control API token: {where} (send it as Authorization: Bearer <token>)")
    serve(settings, host=host, port=port)


sandbox.__doc__ = HELP


TRIGGER_HELP = """Make the running sandbox produce a provider event, as the provider would, and
deliver it signed to the webhook target (like `stripe trigger`). EVENT is one of:
payment_intent.payment_failed, charge.refunded, charge.dispute.created (Stripe);
orders/paid, orders/cancelled (Shopify); shipment_sent, order_put_hold, order_failed
(Printful); inbound_email
(SendGrid Inbound Parse: a customer's email, --from/--subject/--text).

\b
--order acts on an existing object (a PaymentIntent to refund, a Shopify order to cancel,
a confirmed Printful order) instead of making a new one. Exit 2: unknown event or tenant;
exit 4: the sandbox is not running."""


@app.command("trigger", help=TRIGGER_HELP)
def trigger(
    event: str = typer.Argument(..., help="The provider event to produce."),
    tenant: str = typer.Option(
        None, help="The merchant (default: AUTOBIZ_INGRESS__DEFAULT_TENANT)."
    ),
    order: str = typer.Option(None, help="An existing object to act on."),
    from_email: str = typer.Option("customer@example.com", "--from", help="inbound_email sender."),
    subject: str = typer.Option("Where is my order?", help="inbound_email subject."),
    text: str = typer.Option("Hello, has my order shipped yet?", help="inbound_email body."),
    url: str = typer.Option(
        None, help="Sandbox base URL (default: http://AUTOBIZ_SANDBOX__HOST:AUTOBIZ_SANDBOX__PORT)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    with sandbox_required("`autobiz sandbox trigger`"):
        from sandbox.triggers import EVENTS

    supported = ", ".join(sorted(EVENTS))
    if event not in EVENTS:
        raise UsageError(f"unknown event {event!r}; supported: {supported}")
    settings = get_settings()
    base = url or f"http://{settings.sandbox.host}:{settings.sandbox.port}"
    options = {"tenant": tenant, "order": order, "from_email": from_email}
    result = asyncio.run(_trigger(base, event, {**options, "subject": subject, "text": text}))
    if as_json:
        emit_json(result)
    else:
        typer.echo(
            f"triggered {result['event']} ({result['provider']}) for {result['tenant']}: "
            f"{result['object']}"
        )


async def _trigger(base: str, event: str, options: dict[str, Any]) -> dict[str, Any]:
    from sandbox.control_client import SandboxControl

    control = SandboxControl(base)
    try:
        response = await control.trigger(event, **options)
    except httpx.TransportError as exc:
        raise AutobizError(
            f"the sandbox at {base} is not reachable ({type(exc).__name__})",
            code=ErrorCode.SANDBOX_UNREACHABLE,
            hint="start it with `autobiz dev up` or `autobiz sandbox`, or pass --url",
        ) from None
    finally:
        await control.aclose()
    answer: dict[str, Any] = response.json()
    if response.status_code == 404:
        raise AutobizError(str(answer.get("error")), code=ErrorCode.TENANT_UNKNOWN)
    if response.status_code >= 400:
        raise AutobizError(str(answer.get("error")), code=ErrorCode.INPUT_INVALID)
    return answer
