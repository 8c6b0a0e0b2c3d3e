"""Who may use the codec server: the ``AUTOBIZ_KERNEL__CODEC_SERVER_AUTH`` modes.

- ``none``: anyone who can reach it. Only where nobody else can: bound to a loopback
  address and not in production (``autobiz dev up``'s codec server, for the dev server's
  UI, which has no login and so no token to send). Anything else is refused at start
  (``CODEC_SERVER_AUTH_UNSAFE``).
- ``token``: ``Authorization: Bearer <codec_server_token>``, compared in constant time;
  for ``temporal --codec-endpoint … --codec-auth 'Bearer …'`` and scripts.
- ``oidc``: the bearer is the Web UI user's OIDC access token (the UI's login, with
  ``TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true``), checked against the issuer's JWKS
  (autobiz.oidc_tokens).

Unset, the mode is ``token`` when a token is configured, else ``none``.
"""

from __future__ import annotations

import hmac
import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from starlette.concurrency import run_in_threadpool

from autobiz.errors import ConfigError
from autobiz.oidc_tokens import (
    ASYMMETRIC_ALGORITHMS,
    JwksVerifier,
    KeysUnavailable,
    TokenPolicy,
    TokenRejected,
)
from autobiz.settings import CodecServerAuth, Settings
from kernel.codes import ErrorCode


class Refusal(Exception):
    """A request is not let in: the HTTP status to answer and a reason for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who a let-in request is from (``subject``: the token's ``sub``, if any)."""

    mode: CodecServerAuth
    subject: str | None = None


class Authoriser(ABC):
    mode: CodecServerAuth

    @abstractmethod
    async def authorise(self, authorization: str | None) -> Caller:
        """The caller, or :class:`Refusal`."""


class Open(Authoriser):
    mode = CodecServerAuth.NONE

    async def authorise(self, authorization: str | None) -> Caller:
        return Caller(self.mode)


class StaticToken(Authoriser):
    mode = CodecServerAuth.TOKEN

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def authorise(self, authorization: str | None) -> Caller:
        if not hmac.compare_digest((authorization or "").encode(), self._expected):
            raise Refusal(401, "wrong or missing bearer token")
        return Caller(self.mode)


class OidcAccessToken(Authoriser):
    mode = CodecServerAuth.OIDC

    def __init__(self, verifier: JwksVerifier) -> None:
        self._verifier = verifier

    async def authorise(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(401, "no bearer token")
        try:
            claims: dict[str, Any] = await run_in_threadpool(self._verifier.verify, token.strip())
        except TokenRejected as exc:
            raise Refusal(401, exc.reason) from None
        except KeysUnavailable as exc:
            raise Refusal(503, str(exc)) from None
        sub = claims.get("sub")
        return Caller(self.mode, sub if isinstance(sub, str) else None)


def auth_mode(settings: Settings) -> CodecServerAuth:
    kernel = settings.kernel
    if kernel.codec_server_auth is not None:
        return kernel.codec_server_auth
    token = kernel.codec_server_token
    return CodecServerAuth.TOKEN if token and token.get_secret_value() else CodecServerAuth.NONE


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_authoriser(settings: Settings) -> Authoriser:
    """The authoriser the settings ask for, once they are safe to serve with; else a
    :class:`ConfigError` (before anything listens)."""
    mode = auth_mode(settings)
    kernel = settings.kernel
    if mode is CodecServerAuth.NONE:
        where = None
        if settings.is_production:
            where = "in production"
        elif not is_loopback(kernel.codec_server_host):
            where = f"bound to {kernel.codec_server_host} (not a loopback address)"
        if where is not None:
            raise ConfigError(
                f"the codec server will not decode for anyone who asks {where}",
                code=ErrorCode.CODEC_SERVER_AUTH_UNSAFE,
                hint="set AUTOBIZ_KERNEL__CODEC_SERVER_AUTH=oidc (the Web UI's login) or "
                "token (AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN)"
                + ("" if settings.is_production else ", or bind it to 127.0.0.1"),
            )
        return Open()
    if mode is CodecServerAuth.TOKEN:
        token = kernel.codec_server_token
        if token is None or not token.get_secret_value():
            raise ConfigError(
                "the codec server's auth is `token` but no token is set",
                code=ErrorCode.CODEC_SERVER_TOKEN_MISSING,
                hint="set AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN",
            )
        return StaticToken(token.get_secret_value())
    return OidcAccessToken(JwksVerifier(token_policy(settings), kernel.codec_server_oidc_jwks_url))


def token_policy(settings: Settings) -> TokenPolicy:
    """The OIDC settings, checked: issuer and audience given, asymmetric algorithms only,
    https for the issuer and the JWKS in production."""
    kernel = settings.kernel
    problems = []
    if not kernel.codec_server_oidc_issuer:
        problems.append("AUTOBIZ_KERNEL__CODEC_SERVER_OIDC_ISSUER is not set")
    if not kernel.codec_server_oidc_audience:
        problems.append("AUTOBIZ_KERNEL__CODEC_SERVER_OIDC_AUDIENCE is not set")
    algorithms = tuple(kernel.codec_server_oidc_algorithms)
    refused = sorted(set(algorithms) - ASYMMETRIC_ALGORITHMS)
    if refused or not algorithms:
        problems.append(
            f"algorithms {refused or '[]'} not accepted (only {sorted(ASYMMETRIC_ALGORITHMS)})"
        )
    if kernel.codec_server_oidc_required_value and not kernel.codec_server_oidc_required_claim:
        problems.append("a required value needs AUTOBIZ_KERNEL__CODEC_SERVER_OIDC_REQUIRED_CLAIM")
    if settings.is_production:
        for name, url in (
            ("ISSUER", kernel.codec_server_oidc_issuer),
            ("JWKS_URL", kernel.codec_server_oidc_jwks_url),
        ):
            if url and urlparse(url).scheme != "https":
                problems.append(f"AUTOBIZ_KERNEL__CODEC_SERVER_OIDC_{name} is not https")
    if problems:
        raise ConfigError(
            "the codec server's OIDC settings will not do: " + "; ".join(problems),
            code=ErrorCode.CODEC_SERVER_OIDC_INVALID,
            hint="see docs/operations.md, 'The Web UI and the codec server'",
        )
    assert kernel.codec_server_oidc_issuer and kernel.codec_server_oidc_audience
    return TokenPolicy(
        issuer=kernel.codec_server_oidc_issuer,
        audience=kernel.codec_server_oidc_audience,
        algorithms=algorithms,
        required_claim=kernel.codec_server_oidc_required_claim,
        required_value=kernel.codec_server_oidc_required_value,
        leeway_seconds=kernel.codec_server_oidc_leeway_seconds,
    )
