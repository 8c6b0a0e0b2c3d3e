"""`autobiz ingress`: the webhook receiver (DESIGN §7)."""

from __future__ import annotations

import typer

from autobiz.settings import get_settings


def ingress(
    host: str = typer.Option(None, help="Listen address (default: AUTOBIZ_INGRESS__HOST)."),
    port: int = typer.Option(None, help="Port (default: AUTOBIZ_INGRESS__PORT)."),
    relay: bool = typer.Option(
        True, "--relay/--no-relay", help="Hand stored events to Temporal from this process."
    ),
) -> None:
    """Receive signed Stripe, Shopify and Printful webhooks at /webhooks/{provider}.

    Signatures are verified on the raw body, events are stored once in event_store
    (duplicates answer 200, a database outage 503), and a relay in the same process
    starts or signals the workflows. Also serves /healthz, /readyz, /metrics and
    /openapi.json.
    """
    settings = get_settings()
    update = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if update:
        settings = settings.model_copy(
            update={"ingress": settings.ingress.model_copy(update=update)}
        )
    from autobiz.logs import configure_logging
    from ingress.server import serve

    configure_logging(settings)  # JSON or text lines, uvicorn's included
    serve(settings, relay=relay)
