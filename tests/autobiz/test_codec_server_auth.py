"""The codec server's auth modes over real HTTP: ``oidc`` against a JWKS a local issuer
serves from keys this test generates, ``none`` only where it is safe, the CORS preflight
the Web UI's browser sends, and the settings refused before anything listens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.common.v1 import Payload

from autobiz.codec import AesGcmCodec
from autobiz.codec_server import create_app
from autobiz.errors import ConfigError
from autobiz.settings import (
    CodecServerAuth,
    Environment,
    KernelSettings,
    Settings,
    TemporalSettings,
)
from kernel.codes import ErrorCode
from sandbox.server import ServerThread

pytestmark = pytest.mark.integration

AUDIENCE = "temporal-ui"
SECRET_TEXT = "order 4711 for ada@example.com"


@dataclass
class Issuer:
    """An OIDC issuer on loopback: discovery document and JWKS, and the keys behind them."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    jwks_requests: int = 0
    server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        async def keys(request: Request) -> JSONResponse:
            self.jwks_requests += 1
            jwks = []
            for kid, key in self.keys.items():
                jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
                jwks.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
            return JSONResponse({"keys": jwks})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/keys", keys),
            ]
        )

    def token(
        self,
        kid: str = "k1",
        *,
        key: rsa.RSAPrivateKey | None = None,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "ana@example.com",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, key or self.keys[kid], algorithm=algorithm, headers={"kid": kid})


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    found = Issuer(keys={"k1": new_key()})
    found.server = ServerThread(found.app()).start()
    try:
        yield found
    finally:
        found.server.stop()


def oidc_settings(issuer: Issuer, *, discover: bool = False, **kernel: Any) -> Settings:
    return Settings(
        kernel=KernelSettings(
            codec_server_auth=CodecServerAuth.OIDC,
            codec_server_oidc_issuer=issuer.url,
            codec_server_oidc_audience=AUDIENCE,
            codec_server_oidc_jwks_url=None if discover else f"{issuer.url}/keys",
            **kernel,
        )
    )


async def sealed_body(settings: Settings) -> dict[str, Any]:
    """A Payloads JSON as the UI posts it: one payload our codec encrypted."""
    codec = AesGcmCodec.from_settings(settings)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET_TEXT).encode())
    sealed = (await codec.encode([plain]))[0]
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ServerThread] = []

    def start(settings: Settings) -> str:
        server = ServerThread(create_app(settings)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


async def decode(url: str, body: dict[str, Any], token: str | None) -> httpx.Response:
    headers = {"X-Namespace": "default"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{url}/decode", json=body, headers=headers)


def decoded_text(response: httpx.Response) -> str:
    payload = response.json()["payloads"][0]
    return str(json.loads(base64.b64decode(payload["data"])))


async def test_a_valid_access_token_decodes(issuer: Issuer, serve: Any) -> None:
    settings = oidc_settings(issuer)
    url = serve(settings)
    response = await decode(url, await sealed_body(settings), issuer.token())
    assert response.status_code == 200
    assert decoded_text(response) == SECRET_TEXT


async def test_the_jwks_is_found_through_discovery(issuer: Issuer, serve: Any) -> None:
    settings = oidc_settings(issuer, discover=True)
    url = serve(settings)
    response = await decode(url, await sealed_body(settings), issuer.token())
    assert response.status_code == 200 and decoded_text(response) == SECRET_TEXT


def _alg_none(issuer: Issuer) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1","typ":"JWT"}').rstrip(b"=")
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": now + 300}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"{header.decode()}.{body.decode()}."


def _hmac_with_public_key(issuer: Issuer) -> str:
    """HS256 keyed with the issuer's public key (the classic algorithm confusion)."""
    pem = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": now + 300}
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    signing_input = header + b"." + body
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + sig.rstrip(b"=")).decode()


BAD_TOKENS = {
    "wrong issuer": lambda i: i.token(iss="https://evil.example.com"),
    "wrong audience": lambda i: i.token(aud="another-api"),
    "expired": lambda i: i.token(exp=int(time.time()) - 600, iat=int(time.time()) - 900),
    "no exp": lambda i: i.token(exp=None),
    "unknown kid": lambda i: i.token("k9", key=new_key()),
    "bad signature": lambda i: i.token("k1", key=new_key()),
    "alg none": _alg_none,
    "hmac with the public key": _hmac_with_public_key,
    "not a jwt": lambda i: "not-a-token",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_token_decodes_nothing(issuer: Issuer, serve: Any, case: str) -> None:
    settings = oidc_settings(issuer)
    url = serve(settings)
    token = BAD_TOKENS[case](issuer)
    response = await decode(url, await sealed_body(settings), token)
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "unauthorised"}
    assert SECRET_TEXT not in response.text


async def test_no_token_or_another_scheme_is_refused(issuer: Issuer, serve: Any) -> None:
    settings = oidc_settings(issuer)
    url = serve(settings)
    body = await sealed_body(settings)
    assert (await decode(url, body, None)).status_code == 401
    async with httpx.AsyncClient(timeout=10) as http:
        basic = await http.post(
            f"{url}/decode", json=body, headers={"Authorization": f"Basic {issuer.token()}"}
        )
    assert basic.status_code == 401


async def test_a_required_group_is_checked(issuer: Issuer, serve: Any) -> None:
    settings = oidc_settings(
        issuer,
        codec_server_oidc_required_claim="groups",
        codec_server_oidc_required_value="temporal-codec",
    )
    url = serve(settings)
    body = await sealed_body(settings)
    outsider = await decode(url, body, issuer.token(groups=["support"]))
    assert outsider.status_code == 401 and SECRET_TEXT not in outsider.text
    member = await decode(url, body, issuer.token(groups=["support", "temporal-codec"]))
    assert member.status_code == 200 and decoded_text(member) == SECRET_TEXT


async def test_a_required_scope_is_a_word_of_the_scope_claim(issuer: Issuer, serve: Any) -> None:
    settings = oidc_settings(
        issuer,
        codec_server_oidc_required_claim="scope",
        codec_server_oidc_required_value="codec:decode",
    )
    url = serve(settings)
    body = await sealed_body(settings)
    assert (await decode(url, body, issuer.token(scope="openid codec"))).status_code == 401
    ok = await decode(url, body, issuer.token(scope="openid codec:decode email"))
    assert ok.status_code == 200


async def test_a_rotated_key_is_fetched_but_unknown_kids_do_not_hammer_the_issuer(
    serve: Any,
) -> None:
    rotating = Issuer(keys={"old": new_key()})
    rotating.server = ServerThread(rotating.app()).start()
    try:
        settings = oidc_settings(rotating)
        url = serve(settings)
        body = await sealed_body(settings)
        assert (await decode(url, body, rotating.token("old"))).status_code == 200
        fetched = rotating.jwks_requests
        # Strangers' kids: refused, and the key set is not fetched for each of them.
        for _ in range(5):
            stranger = rotating.token(f"k-{uuid.uuid4().hex[:6]}", key=new_key())
            assert (await decode(url, body, stranger)).status_code == 401
        assert rotating.jwks_requests <= fetched + 1
    finally:
        rotating.server.stop()


async def test_an_unreachable_issuer_is_503_not_a_decode(serve: Any) -> None:
    gone = Issuer(keys={"k1": new_key()})
    gone.server = ServerThread(gone.app()).start()
    token = gone.token()
    settings = oidc_settings(gone)
    gone.server.stop()
    url = serve(settings)
    response = await decode(url, await sealed_body(settings), token)
    assert response.status_code == 503 and SECRET_TEXT not in response.text


async def test_static_token_mode_is_kept_for_the_temporal_cli(serve: Any) -> None:
    settings = Settings(kernel=KernelSettings(codec_server_token=SecretStr("cli-token-1234")))
    url = serve(settings)
    body = await sealed_body(settings)
    assert (await decode(url, body, None)).status_code == 401
    assert (await decode(url, body, "cli-token-123")).status_code == 401
    assert decoded_text(await decode(url, body, "cli-token-1234")) == SECRET_TEXT


async def test_none_on_loopback_decodes_for_the_dev_ui(serve: Any) -> None:
    settings = Settings(kernel=KernelSettings(codec_server_auth=CodecServerAuth.NONE))
    url = serve(settings)
    response = await decode(url, await sealed_body(settings), None)
    assert response.status_code == 200 and decoded_text(response) == SECRET_TEXT
    async with httpx.AsyncClient(timeout=10) as http:
        health = await http.get(f"{url}/healthz")
    assert health.json() == {"status": "ok", "auth": "none"}


async def test_the_ui_origin_passes_the_preflight_and_others_do_not(serve: Any) -> None:
    settings = Settings(
        temporal=TemporalSettings(ui_port=18233),
        kernel=KernelSettings(
            codec_server_auth=CodecServerAuth.NONE,
            codec_server_cors_origins=["https://temporal.example.com"],
        ),
    )
    url = serve(settings)
    asked = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for origin in (
            "http://127.0.0.1:18233",
            "http://localhost:18233",
            "https://temporal.example.com",
        ):
            pre = await http.options(f"{url}/decode", headers={"Origin": origin, **asked})
            assert pre.status_code == 200, (origin, pre.text)
            assert pre.headers["access-control-allow-origin"] == origin
            allowed = pre.headers["access-control-allow-headers"].lower()
            assert {"authorization", "content-type", "x-namespace"} <= {
                h.strip() for h in allowed.split(",")
            }
        # The old default port, another site: no CORS grant.
        for origin in ("http://127.0.0.1:8233", "https://evil.example.com"):
            pre = await http.options(f"{url}/decode", headers={"Origin": origin, **asked})
            assert pre.status_code == 400
            assert "access-control-allow-origin" not in pre.headers
        posted = await http.post(
            f"{url}/decode",
            json=await sealed_body(settings),
            headers={"Origin": "http://localhost:18233", "X-Namespace": "default"},
        )
    assert posted.headers["access-control-allow-origin"] == "http://localhost:18233"


def test_production_has_no_dev_ui_origins() -> None:
    from autobiz.codec_server import cors_origins

    prod = Settings(
        env=Environment.PRODUCTION,
        kernel=KernelSettings(codec_server_cors_origins=["https://temporal.example.com"]),
    )
    assert cors_origins(prod) == ["https://temporal.example.com"]


OIDC_BASE = {
    "codec_server_auth": "oidc",
    "codec_server_oidc_issuer": "https://id.example.com",
    "codec_server_oidc_audience": "temporal-ui",
}
PROD = Environment.PRODUCTION
DEV = Environment.DEVELOPMENT
# case -> (environment, kernel settings, the code they are refused with)
REFUSED: dict[str, tuple[Environment, dict[str, Any], ErrorCode]] = {
    "none in production": (PROD, {"codec_server_auth": "none"}, ErrorCode.CODEC_SERVER_AUTH_UNSAFE),
    "none off loopback": (
        DEV,
        {"codec_server_auth": "none", "codec_server_host": "0.0.0.0"},  # noqa: S104
        ErrorCode.CODEC_SERVER_AUTH_UNSAFE,
    ),
    "token without one": (
        DEV,
        {"codec_server_auth": "token"},
        ErrorCode.CODEC_SERVER_TOKEN_MISSING,
    ),
    "oidc without issuer": (
        DEV,
        {"codec_server_auth": "oidc"},
        ErrorCode.CODEC_SERVER_OIDC_INVALID,
    ),
    "oidc with hmac": (
        DEV,
        {**OIDC_BASE, "codec_server_oidc_algorithms": ["RS256", "HS256"]},
        ErrorCode.CODEC_SERVER_OIDC_INVALID,
    ),
    "oidc with none": (
        DEV,
        {**OIDC_BASE, "codec_server_oidc_algorithms": ["none"]},
        ErrorCode.CODEC_SERVER_OIDC_INVALID,
    ),
    "oidc over http in production": (
        PROD,
        {**OIDC_BASE, "codec_server_oidc_issuer": "http://id.example.com"},
        ErrorCode.CODEC_SERVER_OIDC_INVALID,
    ),
    "cors wildcard": (
        DEV,
        {"codec_server_auth": "none", "codec_server_cors_origins": ["*"]},
        ErrorCode.SETTINGS_INVALID,
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsafe_settings_are_refused_before_serving(case: str) -> None:
    env, kernel, code = REFUSED[case]
    with pytest.raises(ConfigError) as refused:
        create_app(Settings(env=env, kernel=KernelSettings(**kernel)))
    assert refused.value.code == code


def test_the_command_refuses_none_off_loopback_with_a_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autobiz.cli.main", "codec-server", "--host", "0.0.0.0"],  # noqa: S104
        env={"PATH": "/usr/bin:/bin", "AUTOBIZ_KERNEL__CODEC_SERVER_AUTH": "none"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error[CODEC_SERVER_AUTH_UNSAFE]" in result.stderr
    assert "Traceback" not in result.stderr
