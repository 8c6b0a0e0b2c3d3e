"""Who may drive the sandbox: the control API's bearer token and its checks.

``/_control`` can arm faults, reset state and point webhooks anywhere, so a web page a
developer happens to open must not reach it (a browser sends a cross-origin
``text/plain`` POST without a preflight). Every control request except ``GET /health``:

* with an ``Origin`` header, must come from the sandbox's own origin (the address it
  listens on, or loopback under the same port) → else 403;
* must carry ``Authorization: Bearer <token>`` → else 401;
* if it is a POST, must say ``Content-Type: application/json`` → else 415.

The token is ``AUTOBIZ_SANDBOX__CONTROL_TOKEN`` when set; otherwise the sandbox makes a
fresh one at start and writes it to ``$AUTOBIZ_HOME/sandbox/control_token`` (mode 0600,
directory 0700), where :class:`sandbox.control_client.SandboxControl` reads it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from autobiz.settings import Settings

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def token_file(settings: Settings) -> Path:
    return settings.home_dir / "sandbox" / "control_token"


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` readable by the owner only (created 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_CREAT: tighten it
        os.write(fd, token.encode("ascii"))
    finally:
        os.close(fd)


def ensure_control_token(settings: Settings) -> tuple[Settings, Path | None]:
    """``settings`` with a control token: the configured one (no file), else a fresh one
    written to :func:`token_file` (its path returned)."""
    if settings.sandbox.control_token is not None:
        return settings, None
    token = secrets.token_urlsafe(32)
    path = token_file(settings)
    write_token_file(path, token)
    sandbox = settings.sandbox.model_copy(update={"control_token": SecretStr(token)})
    return settings.model_copy(update={"sandbox": sandbox}), path


def read_control_token(settings: Settings) -> str | None:
    """The token a client should send: the setting, else the file the sandbox wrote."""
    if settings.sandbox.control_token is not None:
        return settings.sandbox.control_token.get_secret_value()
    try:
        return token_file(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def _refuse(status: int, error: str, **headers: str) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


def _own_origins(request: Request) -> set[str]:
    server = request.scope.get("server")
    port = server[1] if server else request.url.port
    hosts = {*_LOOPBACK, *([server[0]] if server else [])}
    return {f"http://{h}:{port}" for h in hosts}


def check_control_request(request: Request, token: str) -> Response | None:
    """None if ``request`` may use the control API, else the refusal to answer with."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() not in _own_origins(request):
        return _refuse(403, f"cross-origin control requests are refused (Origin: {origin})")
    if request.method == "GET" and request.url.path.endswith("/_control/health"):
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return _refuse(
            401,
            "the control API needs Authorization: Bearer <token> (AUTOBIZ_SANDBOX__CONTROL_TOKEN"
            ", or the file `autobiz sandbox` names at start)",
            **{"WWW-Authenticate": 'Bearer realm="sandbox-control"'},
        )
    if request.method == "POST":
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return _refuse(415, "control POSTs must be Content-Type: application/json")
    return None
