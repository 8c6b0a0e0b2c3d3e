"""Refuse, and remember, any connection a test opens to a non-loopback address.

Patched at the ``socket.socket`` class, so blocking sockets, ``asyncio`` and every
library above them (httpx, psycopg's async path, the stripe SDK) pass through it.
Host names other than ``localhost`` are refused at resolution, before any DNS query.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class OutboundConnectionRefused(ConnectionRefusedError):
    """Raised instead of opening a connection that would leave the machine."""


def is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def address_allowed(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        return is_loopback(address[0])
    return False


@dataclass
class NetGuard:
    violations: list[str] = field(default_factory=list)
    _originals: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def install(self) -> None:
        guard = self
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        self._originals = {
            "connect": real_connect,
            "connect_ex": real_connect_ex,
            "getaddrinfo": real_getaddrinfo,
        }

        def check(sock: socket.socket, address: Any) -> None:
            if not address_allowed(sock.family, address):
                guard.violations.append(f"connect to {address!r}")
                raise OutboundConnectionRefused(
                    f"test tried to connect to non-loopback address {address!r}"
                )

        def connect(sock: socket.socket, address: Any) -> None:
            check(sock, address)
            guard._originals["connect"](sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            check(sock, address)
            result: int = guard._originals["connect_ex"](sock, address)
            return result

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host is not None and not is_loopback(host):
                guard.violations.append(f"resolve {host!r}")
                raise socket.gaierror(socket.EAI_NONAME, f"resolution of {host!r} refused in tests")
            return guard._originals["getaddrinfo"](host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign, assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign, assignment]
        socket.getaddrinfo = getaddrinfo

    def uninstall(self) -> None:
        if not self._originals:
            return
        socket.socket.connect = self._originals["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._originals["connect_ex"]  # type: ignore[method-assign]
        socket.getaddrinfo = self._originals["getaddrinfo"]
        self._originals = {}


@contextmanager
def guarded() -> Iterator[NetGuard]:
    guard = NetGuard()
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()
