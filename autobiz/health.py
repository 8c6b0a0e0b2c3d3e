"""Liveness probes of the long-running roles, as a container healthcheck runs them.

The production image has no curl: ``autobiz health ROLE`` asks the process in the same
container (loopback) on the address its settings give it:

* ``worker``: the Prometheus endpoint (``AUTOBIZ_WORKER__METRICS_BIND``) answers 200;
* ``ingress``: ``GET /healthz`` answers 200;
* ``codec-server``: ``POST /decode`` answers as the server does to an anonymous caller
  (401/403, or 200 where no credential is required): the app is up and routing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from autobiz.errors import AutobizError
from autobiz.settings import Settings
from kernel.codes import ErrorCode

ROLES = ("worker", "ingress", "codec-server")


@dataclass(frozen=True)
class Probe:
    role: str
    url: str
    ok: bool
    detail: str


def _local(host: str) -> str:
    """Where a probe inside the container reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104


def _worker(settings: Settings, timeout: float) -> Probe:
    bind = settings.worker.metrics_bind
    if not bind:
        return Probe("worker", "", False, "no metrics endpoint (AUTOBIZ_WORKER__METRICS_BIND)")
    host, _, port = bind.rpartition(":")
    url = f"http://{_local(host)}:{port}/metrics"
    return _get(settings, "worker", url, timeout, {200})


def _ingress(settings: Settings, timeout: float) -> Probe:
    ing = settings.ingress
    return _get(
        settings, "ingress", f"http://{_local(ing.host)}:{ing.port}/healthz", timeout, {200}
    )


def _codec(settings: Settings, timeout: float) -> Probe:
    k = settings.kernel
    url = f"http://{_local(k.codec_server_host)}:{k.codec_server_port}/decode"
    try:
        resp = httpx.post(url, json={"payloads": []}, timeout=timeout)
    except httpx.HTTPError as exc:
        return Probe("codec-server", url, False, type(exc).__name__)
    return Probe("codec-server", url, resp.status_code in (200, 401, 403), str(resp.status_code))


def _get(settings: Settings, role: str, url: str, timeout: float, good: set[int]) -> Probe:
    try:
        resp = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Probe(role, url, False, type(exc).__name__)
    return Probe(role, url, resp.status_code in good, str(resp.status_code))


_PROBES: dict[str, Callable[[Settings, float], Probe]] = {
    "worker": _worker,
    "ingress": _ingress,
    "codec-server": _codec,
}


def probe(settings: Settings, role: str | None, timeout: float = 3.0) -> Probe:
    """The probe of ``role``; None (the image's HEALTHCHECK, which does not know the role
    its container was given): the first role that answers. Raises SERVICE_UNHEALTHY."""
    roles = ROLES if role is None else (role,)
    results = [_PROBES[r](settings, timeout) for r in roles]
    for result in results:
        if result.ok:
            return result
    summary = "; ".join(f"{r.role} {r.url or '-'}: {r.detail}" for r in results)
    raise AutobizError(f"unhealthy: {summary}", code=ErrorCode.SERVICE_UNHEALTHY)
