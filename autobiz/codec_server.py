"""A codec server so the Temporal Web UI (or ``temporal --codec-endpoint``) can show
decrypted payloads to an authorised operator.

``POST /encode`` and ``POST /decode`` take and return ``{"payloads": [...]}`` in the
protobuf JSON form the UI sends; every request needs ``Authorization: Bearer <token>``
(``AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN``). Point the UI's "Codec Server" setting at
``http://127.0.0.1:8235`` and enable "pass access token".
"""

from __future__ import annotations

import hmac

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from autobiz.codec import AesGcmCodec, CodecError
from autobiz.errors import ConfigError
from autobiz.settings import Settings
from kernel.codes import ErrorCode


def create_app(settings: Settings) -> Starlette:
    token = settings.kernel.codec_server_token
    if token is None or not token.get_secret_value():
        raise ConfigError(
            "the codec server needs a bearer token",
            code=ErrorCode.CODEC_SERVER_TOKEN_MISSING,
            hint="set AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN",
        )
    expected = f"Bearer {token.get_secret_value()}".encode()
    codec = AesGcmCodec.from_settings(settings)

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    async def handle(request: Request, encode: bool) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError:
            return JSONResponse({"error": "body is not a Payloads JSON"}, status_code=400)
        try:
            fn = codec.encode if encode else codec.decode
            result = Payloads(payloads=await fn(list(payloads.payloads)))
        except CodecError as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        return Response(json_format.MessageToJson(result), media_type="application/json")

    async def encode(request: Request) -> Response:
        return await handle(request, True)

    async def decode(request: Request) -> Response:
        return await handle(request, False)

    return Starlette(
        routes=[
            Route("/encode", encode, methods=["POST"]),
            Route("/decode", decode, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=settings.kernel.codec_server_cors_origins,
                allow_methods=["POST"],
                allow_headers=["Authorization", "Content-Type", "X-Namespace"],
                allow_credentials=True,
            )
        ],
    )
