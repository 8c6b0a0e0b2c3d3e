"""The codec server: the Temporal Web UI (or ``temporal --codec-endpoint``) shows
decrypted inputs, results and failures through it.

``POST /encode`` and ``POST /decode`` take and return ``{"payloads": [...]}`` in the
protobuf JSON form the UI sends (``Content-Type: application/json``, ``X-Namespace``, and
``Authorization`` when the UI passes its user's access token); ``GET /healthz`` answers
without decoding anything.

Who may decode is ``AUTOBIZ_KERNEL__CODEC_SERVER_AUTH`` (autobiz.codec_server_auth):

- development: ``autobiz dev up`` runs this server with ``none`` on 127.0.0.1 and starts
  the dev server's UI with ``--ui-codec-endpoint`` pointing here, so the UI decodes with
  no setup (``none`` is refused off loopback and in production);
- production: the Temporal UI, with its OIDC login, ``TEMPORAL_CODEC_ENDPOINT`` (an
  ``https://`` address: the UI sends no token to plain http) and
  ``TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true``, forwards the user's access token; ``oidc``
  checks it against the issuer's JWKS (signature, ``iss``, ``aud``, ``exp``, optionally a
  group or scope claim);
- ``token``: a static bearer token, for the ``temporal`` CLI's ``--codec-auth``.

The browser calls this server from the UI's page, another origin: CORS admits the dev
server UI's own origins (``http://127.0.0.1:<ui_port>``, ``http://localhost:<ui_port>``;
not in production) and ``codec_server_cors_origins``, and answers the preflight for the
headers above. A refused request decodes nothing and is logged without its token.
"""

from __future__ import annotations

import logging

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from autobiz.codec import AesGcmCodec, CodecError
from autobiz.codec_server_auth import Authoriser, Refusal, build_authoriser
from autobiz.errors import ConfigError
from autobiz.settings import Settings
from kernel.codes import ErrorCode

log = logging.getLogger("autobiz.codec_server")

# What the Temporal UI sends (its data-encoder service): JSON, the namespace, and the
# user's access token when it passes one.
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Namespace"]


def cors_origins(settings: Settings) -> list[str]:
    """The Web UI origins the browser may call us from: the dev server UI's (outside
    production), then the configured ones."""
    t = settings.temporal
    derived = (
        []
        if settings.is_production
        else [
            f"http://127.0.0.1:{t.ui_port}",
            f"http://localhost:{t.ui_port}",
            f"http://{t.host}:{t.ui_port}",
        ]
    )
    origins = list(dict.fromkeys([*derived, *settings.kernel.codec_server_cors_origins]))
    if "*" in origins:
        raise ConfigError(
            "the codec server's CORS origins may not be `*`",
            code=ErrorCode.SETTINGS_INVALID,
            hint="list the Web UI's origin in AUTOBIZ_KERNEL__CODEC_SERVER_CORS_ORIGINS",
        )
    return origins


def create_app(settings: Settings) -> Starlette:
    authoriser: Authoriser = build_authoriser(settings)  # refuses unsafe settings first
    codec = AesGcmCodec.from_settings(settings)

    async def handle(request: Request, encode: bool) -> Response:
        try:
            caller = await authoriser.authorise(request.headers.get("authorization"))
        except Refusal as refusal:
            log.warning("codec request refused (%s): %s", authoriser.mode.value, refusal.reason)
            error = "unauthorised" if refusal.status == 401 else "unavailable"
            return JSONResponse({"error": error}, status_code=refusal.status)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError:
            return JSONResponse({"error": "body is not a Payloads JSON"}, status_code=400)
        try:
            fn = codec.encode if encode else codec.decode
            result = Payloads(payloads=await fn(list(payloads.payloads)))
        except CodecError as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        log.info(
            "%s %d payload(s) for %s in namespace %s",
            "encoded" if encode else "decoded",
            len(result.payloads),
            caller.subject or f"a {caller.mode.value}-auth caller",
            request.headers.get("x-namespace", "-"),
        )
        return Response(json_format.MessageToJson(result), media_type="application/json")

    async def encode(request: Request) -> Response:
        return await handle(request, True)

    async def decode(request: Request) -> Response:
        return await handle(request, False)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "auth": authoriser.mode.value})

    return Starlette(
        routes=[
            Route("/encode", encode, methods=["POST"]),
            Route("/decode", decode, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins(settings),
                allow_methods=["POST"],
                allow_headers=ALLOWED_HEADERS,
                # For a UI with TEMPORAL_CODEC_INCLUDE_CREDENTIALS (cookies of an auth
                # proxy); the origins are an explicit list, never `*`.
                allow_credentials=True,
                max_age=600,
            )
        ],
    )
