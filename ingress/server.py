"""Build the ingress from the one ``Settings`` object and serve it with uvicorn."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from temporalio.client import Client

from autobiz import temporal_client
from autobiz.closeout_links import ReportLinks
from autobiz.db.database import Database
from autobiz.db.dsn import app_dsn
from autobiz.providers.shopify_client import ShopifyAdmin
from autobiz.providers.stripe_client import StripePayments
from autobiz.settings import Settings
from ingress.app import IngressDeps, create_app
from ingress.handoff import TemporalHandoff
from ingress.probe import ProviderProbe
from ingress.tenants import secrets_from_settings


def app_from_settings(settings: Settings, *, relay: bool = True) -> Starlette:
    ingress = settings.ingress
    db = Database(
        app_dsn(settings),
        None,
        min_size=settings.postgres.pool_min_size,
        max_size=settings.postgres.pool_max_size,
        timeout=ingress.db_timeout_seconds,
    )

    async def connect() -> Client:
        # The shared converter (pydantic payloads, AES-GCM codec, redacted failures).
        return await temporal_client.connect(settings)

    handoff = TemporalHandoff(connect, settings.temporal.task_queue) if relay else None
    # Held events released on timeout are re-checked against the providers (the
    # settings' credentials: the default tenant's).
    probe = ProviderProbe(StripePayments(settings), ShopifyAdmin(settings)) if relay else None
    return create_app(
        IngressDeps(
            db=db,
            secrets=secrets_from_settings(settings),
            settings=ingress,
            handoff=handoff,
            probe=probe,
            owns_db=True,
            report_links=ReportLinks.from_settings(settings),
        )
    )


def serve(settings: Settings, *, relay: bool = True) -> None:
    app = app_from_settings(settings, relay=relay)
    uvicorn.run(
        app,
        host=settings.ingress.host,
        port=settings.ingress.port,
        log_level=settings.log_level.lower(),
        # The body limit is ours (413 before hashing); keep uvicorn from buffering more.
        h11_max_incomplete_event_size=64 * 1024,
        timeout_keep_alive=5,
    )
