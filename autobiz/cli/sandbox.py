"""`autobiz sandbox`: the local stand-in for Stripe, Shopify, Printful and SendGrid."""

from __future__ import annotations

import typer

from autobiz.devstack.sandbox_package import sandbox_required
from autobiz.providers.hygiene import ensure_host_allowed
from autobiz.settings import get_settings

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

\b
Webhooks go to TARGET/stripe, TARGET/shopify, TARGET/printful, signed with
the secrets in settings: Stripe-Signature (t=,v1=), X-Shopify-Hmac-Sha256,
x-pf-webhook-signature (hex HMAC-SHA256 of the body).
"""


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
