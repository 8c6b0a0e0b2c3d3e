"""The ASGI app: ``/webhooks/{stripe,shopify,printful}``, ``/webhooks/sendgrid/inbound``
(SendGrid Inbound Parse), probes, metrics, OpenAPI.

A webhook request does exactly this, in order, and then answers:

1. body limits (``ingress.body``: 411 / 413 / 415 before any hashing);
2. authentication: the signature verified on the raw bytes against the candidate
   tenants' secrets (``ingress.tenants`` + ``ingress.authn``; for Inbound Parse, which
   signs nothing, the parse URL's Basic credential) → 401, nothing stored;
3. normalisation (``ingress.events``) and one insert (``ingress.store``): duplicates,
   dead letters and held events all answer 200; an unavailable database answers 503.
   A signed body the database cannot hold as JSON is a dead letter with its raw bytes,
   never a 500 (which the provider would retry forever).

The hand-off to workflows is not on this path: the relay (``ingress.relay``) runs in
the background of the same process and is woken after each stored event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autobiz import __version__
from autobiz.closeout_links import ReportLinks
from autobiz.db.database import Database
from autobiz.errors import DatabaseError
from autobiz.settings import IngressSettings
from ingress.authn import authenticate
from ingress.body import BodyRejected, read_limited_body
from ingress.events import InboundEvent, normalise, unstorable
from ingress.handoff import Handoff
from ingress.metrics import IngressMetrics
from ingress.openapi import openapi_document, webhook_path
from ingress.ordering import Clock, OrderingGate, PreconditionProbe
from ingress.relay import Relay, RelayConfig
from ingress.reports import report_route
from ingress.signatures import basic_credentials
from ingress.store import EventStore, StoreResult
from ingress.tenants import Hints, Source, WebhookSecrets
from kernel.codes import ErrorCode

log = logging.getLogger(__name__)

READY_PROBE_TENANT = "ingress-readyz"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class IngressDeps:
    db: Database
    secrets: WebhookSecrets
    settings: IngressSettings = field(default_factory=IngressSettings)
    # None: this app stores only; something else runs the relay.
    handoff: Handoff | None = None
    clock: Clock = utcnow
    metrics: IngressMetrics = field(default_factory=IngressMetrics)
    probe: PreconditionProbe | None = None
    # Open the database at start-up and close it at shutdown (the CLI's case).
    owns_db: bool = False
    # Serve the daily closeout reports behind signed links (None: no report route).
    report_links: ReportLinks | None = None


@dataclass
class IngressRuntime:
    """What a running app is made of (tests and the CLI reach in through ``app.state``)."""

    deps: IngressDeps
    gate: OrderingGate
    store: EventStore
    relay: Relay | None


def build_runtime(deps: IngressDeps) -> IngressRuntime:
    s = deps.settings
    gate = OrderingGate(
        timeout_seconds=s.hold_timeout_seconds,
        clock=deps.clock,
        metrics=deps.metrics,
        probe=deps.probe,
    )
    relay = None
    if deps.handoff is not None:
        relay = Relay(
            deps.db,
            deps.handoff,
            gate,
            deps.secrets.tenants,
            metrics=deps.metrics,
            clock=deps.clock,
            config=RelayConfig(
                batch_size=s.relay_batch_size,
                max_attempts=s.relay_max_attempts,
                handoff_timeout_seconds=s.handoff_timeout_seconds,
                poll_seconds=s.relay_poll_seconds,
            ),
        )
    return IngressRuntime(deps, gate, EventStore(deps.db, gate, deps.clock), relay)


def _json(code: int, /, **body: object) -> JSONResponse:
    return JSONResponse(body, status_code=code)


class WebhookEndpoint:
    def __init__(self, runtime: IngressRuntime, source: Source) -> None:
        self.rt = runtime
        self.source = source

    async def dispatch(self, request: Request) -> Response:
        started = time.perf_counter()
        outcome = "error"
        try:
            response, outcome = await self.handle(request)
            return response
        except DatabaseError as exc:
            outcome = "unavailable"
            log.error("%s webhook not stored, database unavailable: %s", self.source, exc.message)
            return JSONResponse(
                {"error": "storage unavailable"}, status_code=503, headers={"Retry-After": "5"}
            )
        except Exception:
            log.exception("%s webhook failed", self.source)
            return _json(500, error="internal error")
        finally:
            m = self.rt.deps.metrics
            m.events.labels(source=self.source.value, outcome=outcome).inc()
            m.ack_duration.labels(source=self.source.value, outcome=outcome).observe(
                time.perf_counter() - started
            )

    async def handle(self, request: Request) -> tuple[Response, str]:
        """The module's steps in order: limits, signature, normalise and store, answer."""
        try:
            body = await read_limited_body(request, self.rt.deps.settings.max_body_bytes)
        except BodyRejected as exc:
            log.warning("%s webhook refused: %s", self.source, exc.message)
            return _json(exc.status, error=exc.message), exc.outcome
        tenant_id = await self._authenticate(request, body)
        if tenant_id is None:
            headers = {"WWW-Authenticate": 'Basic realm="inbound"'}
            if self.source is not Source.SENDGRID:
                return _json(401, error="invalid signature"), "rejected_signature"
            return JSONResponse(
                {"error": "invalid credentials"}, status_code=401, headers=headers
            ), "rejected_signature"
        event = normalise(
            tenant_id=tenant_id, source=self.source, body=body, headers=request.headers
        )
        event, result = await self._store(event, body)
        self._report(event, result)
        if result.status == "pending" and self.rt.relay is not None:
            self.rt.relay.wake()
        return _json(200, status=result.status, event_id=result.event_id), result.status

    async def _authenticate(self, request: Request, body: bytes) -> str | None:
        """The tenant whose secret verified the signature; None (logged, counted): none."""
        deps = self.rt.deps
        basic = (
            basic_credentials(request.headers.get("authorization"))
            if self.source is Source.SENDGRID
            else None
        )
        hints = Hints(
            tenant=request.query_params.get("tenant"),
            shop_domain=request.headers.get("x-shopify-shop-domain"),
            basic_user=basic[0] if basic else None,
        )
        candidates = await deps.secrets.candidates(self.source, hints)
        deps.metrics.verifications.labels(source=self.source.value).inc()
        auth = authenticate(
            self.source,
            body,
            request.headers,
            candidates,
            now=deps.clock().timestamp(),
            stripe_tolerance_seconds=deps.settings.stripe_tolerance_seconds,
        )
        if auth.tenant_id is None:
            reason = auth.failure.value if auth.failure else "unknown"
            deps.metrics.signature_failures.labels(source=self.source.value, reason=reason).inc()
            log.warning(
                "%s webhook rejected: signature %s (candidates=%d, bytes=%d, client=%s)",
                self.source,
                reason,
                len(candidates),
                len(body),
                request.client.host if request.client else "-",
            )
        return auth.tenant_id

    async def _store(self, event: InboundEvent, body: bytes) -> tuple[InboundEvent, StoreResult]:
        """One insert; a payload the database refuses is stored as a dead letter instead."""
        try:
            return event, await self.rt.store.insert(event)
        except psycopg.DataError as exc:
            # A value the checks in ingress.events let through and PostgreSQL refused:
            # still signed, so stored as a dead letter (raw bytes) and answered 200 —
            # a 500 would make the provider retry it forever.
            log.error("%s webhook payload refused by the database: %s", self.source, exc)
            reason = f"unstorable_json: {type(exc).__name__}"
            event = unstorable(event, body, reason)
            return event, await self.rt.store.insert(event)

    def _report(self, event: InboundEvent, result: StoreResult) -> None:
        """Count and log what the insert made of the event: an incident, held, dead."""
        metrics = self.rt.deps.metrics
        if result.incident is not None:
            metrics.security_incidents.labels(
                source=self.source.value, code=ErrorCode.CROSS_TENANT_REFUSED
            ).inc()
            log.warning(
                "%s webhook for tenant %s refused as a security incident: %s",
                self.source,
                event.tenant_id,
                result.incident,
            )
        if result.status == "held":
            metrics.held.labels(source=self.source.value).inc()
        if result.status == "dead_letter":
            log.warning(
                "%s webhook dead-lettered for tenant %s: %s",
                self.source,
                event.tenant_id,
                event.dead_letter_reason,
            )


def create_app(deps: IngressDeps) -> Starlette:
    runtime = build_runtime(deps)
    document = openapi_document(__version__)

    async def healthz(_: Request) -> Response:
        return _json(200, status="ok")

    async def readyz(_: Request) -> Response:
        try:
            async with deps.db.tenant(READY_PROBE_TENANT) as session:
                await session.fetch_val("SELECT 1")
        except DatabaseError:
            return _json(503, error="database unreachable")
        return _json(200, status="ready")

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    routes = [
        Route(webhook_path(s), WebhookEndpoint(runtime, s).dispatch, methods=["POST"])
        for s in Source
    ]
    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    if deps.report_links is not None:
        routes.append(report_route(deps.db, deps.report_links))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if deps.owns_db:
            await deps.db.open()
        task = None
        if runtime.relay is not None:
            task = asyncio.create_task(runtime.relay.run_forever(), name="ingress-relay")
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if deps.owns_db:
                await deps.db.close()
            closer = getattr(deps.probe, "aclose", None)
            if deps.owns_db and closer is not None:
                await closer()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ingress = runtime
    return app
