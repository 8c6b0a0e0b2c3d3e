"""An OIDC access token, checked against its issuer's published keys (JWKS).

The Temporal Web UI, behind its OIDC login with ``TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true``,
sends the signed-in user's access token to the codec server as ``Authorization: Bearer``.
:class:`JwksVerifier` accepts it only when the issuer's key signed it (the key found by
the token's ``kid`` in the JWKS, with an algorithm from an asymmetric allow-list, so
``none`` and HMAC-with-the-public-key are refused before any key is looked at), and
``iss``, ``aud`` and ``exp`` are what the settings say; optionally a claim (``groups``,
``scope``) must hold a value. Keys come from PyJWT's ``PyJWKClient``, which caches the
key set and refetches it for an unknown ``kid`` at most once per cooldown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWKClient, PyJWKClientConnectionError, PyJWKClientError

# Signature algorithms with a public key; nothing symmetric, never ``none``.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class TokenRejected(Exception):
    """The token does not let its bearer in; ``reason`` is short, for a log line (it never
    quotes the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched: nobody can be checked right now."""


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    required_claim: str | None = None
    required_value: str | None = None
    leeway_seconds: float = 30.0


def discover_jwks_url(issuer: str, *, timeout: float = 5.0) -> str:
    """The ``jwks_uri`` of the issuer's OpenID Provider metadata, which must name the
    same issuer (OpenID Connect Discovery §4.3)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        metadata = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise KeysUnavailable(f"cannot read {url}: {type(exc).__name__}") from exc
    if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
        raise KeysUnavailable(f"{url} names another issuer")
    jwks_uri = metadata.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise KeysUnavailable(f"{url} has no jwks_uri")
    return jwks_uri


class JwksVerifier:
    """Checks bearer tokens against ``policy``; blocking (a JWKS fetch on a cache miss),
    so async callers run :meth:`verify` in a thread."""

    def __init__(
        self, policy: TokenPolicy, jwks_url: str | None = None, *, timeout: float = 5.0
    ) -> None:
        self.policy = policy
        self._jwks_url = jwks_url
        self._timeout = timeout
        self._client: PyJWKClient | None = None
        self._lock = threading.Lock()

    def _keys(self) -> PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or discover_jwks_url(self.policy.issuer, timeout=self._timeout)
                self._client = PyJWKClient(url, timeout=self._timeout, lifespan=300)
            return self._client

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, if it lets its bearer in; else :class:`TokenRejected`."""
        policy = self.policy
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenRejected("malformed token") from exc
        algorithm = header.get("alg")
        if algorithm not in policy.algorithms:
            raise TokenRejected(f"algorithm {algorithm!r} not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token names no key (kid)")
        try:
            key = self._keys().get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            raise KeysUnavailable("the issuer's JWKS cannot be fetched") from exc
        except PyJWKClientError as exc:
            raise TokenRejected("unknown signing key") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=list(policy.algorithms),
                audience=policy.audience,
                issuer=policy.issuer,
                leeway=policy.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(_reason(exc)) from exc
        if policy.required_claim is not None and not _holds(
            claims.get(policy.required_claim), policy.required_value
        ):
            raise TokenRejected(f"claim {policy.required_claim!r} lacks the required value")
        return claims


def _reason(exc: jwt.InvalidTokenError) -> str:
    return {
        jwt.ExpiredSignatureError: "token expired",
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.InvalidSignatureError: "bad signature",
        jwt.ImmatureSignatureError: "token not yet valid",
        jwt.MissingRequiredClaimError: "a required claim is missing",
    }.get(type(exc), "invalid token")


def _holds(value: Any, wanted: str | None) -> bool:
    """A claim holds ``wanted``: equal to it, one of a list, or a word of a
    space-separated string (OAuth ``scope``). ``wanted`` None: present at all."""
    if wanted is None:
        return value is not None
    if isinstance(value, list):
        return wanted in value
    if isinstance(value, str):
        return value == wanted or wanted in value.split()
    return False
