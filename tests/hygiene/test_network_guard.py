"""The test-suite guard: any connection beyond loopback fails the test, and no packet leaves."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.support.netguard import NetGuard, OutboundConnectionRefused, address_allowed

pytestmark = pytest.mark.hygiene


def test_loopback_and_unix_are_allowed_everything_else_is_not() -> None:
    assert address_allowed(socket.AF_INET, ("127.0.0.1", 5432))
    assert address_allowed(socket.AF_INET, ("127.8.9.10", 80))
    assert address_allowed(socket.AF_INET6, ("::1", 80, 0, 0))
    assert address_allowed(socket.AF_INET, ("localhost", 80))
    assert address_allowed(socket.AF_UNIX, "/tmp/.s.PGSQL.5432")
    for host in [
        "203.0.113.7",
        "10.0.0.1",
        "192.168.1.1",
        "8.8.8.8",
        "api.stripe.com",
        "::ffff:1.2.3.4",
    ]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        assert not address_allowed(family, (host, 443)), host


@pytest.mark.allow_network_violation
def test_guard_refuses_before_any_packet_is_sent(network_guard: NetGuard) -> None:
    real_calls: list[Any] = []
    real_connect = network_guard._originals["connect"]
    network_guard._originals["connect"] = lambda sock, addr: real_calls.append(addr)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            with pytest.raises(OutboundConnectionRefused):
                sock.connect(("203.0.113.7", 443))
    finally:
        # uninstall() restores _originals: put the real connect back, or every later
        # test in the session would "connect" through the recorder and never connect.
        network_guard._originals["connect"] = real_connect
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("api.stripe.com", 443)
    assert real_calls == []
    assert network_guard.violations == [
        "connect to ('203.0.113.7', 443)",
        "resolve 'api.stripe.com'",
    ]
    network_guard.violations.clear()


def test_a_violation_fails_the_test(pytester: pytest.Pytester) -> None:
    """Run a tiny suite under the real conftest: the offending test must fail."""
    pytester.makeconftest("from tests.conftest import network_guard  # noqa: F401\n")
    pytester.makepyfile(
        """
        import socket
        def test_swallows_the_error():
            try:
                socket.socket().connect(("203.0.113.7", 443))
            except OSError:
                pass  # a library that hides the refusal must not hide it from the suite
        def test_loopback_is_fine():
            socket.getaddrinfo("127.0.0.1", 80)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*non-loopback connections*203.0.113.7*"])
