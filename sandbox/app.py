"""The sandbox as one ASGI app: ``/stripe``, ``/shopify``, ``/printful``, ``/sendgrid``
speak the providers' APIs, ``/_control`` drives it (see :mod:`sandbox.control`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from autobiz.settings import Settings
from sandbox.control import control_routes
from sandbox.faults import FaultMiddleware
from sandbox.state import SandboxState


def build_app(settings: Settings, state: SandboxState | None = None) -> Starlette:
    state = state or SandboxState(settings)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await state.webhooks.start()
        try:
            yield
        finally:
            await state.webhooks.stop()

    app = Starlette(
        routes=[
            Mount("/stripe", routes=state.stripe.routes()),
            Mount("/shopify", routes=state.shopify.routes()),
            Mount("/printful", routes=state.printful.routes()),
            Mount("/sendgrid", routes=state.sendgrid.routes()),
            Mount("/_control", routes=control_routes(state)),
        ],
        middleware=[Middleware(FaultMiddleware, book=state.faults)],
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app
