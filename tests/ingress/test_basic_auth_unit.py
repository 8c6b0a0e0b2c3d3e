"""The Inbound Parse credential check: HTTP Basic, compared in constant time against
every candidate secret, its failures named for logs only."""

from __future__ import annotations

import base64

import pytest

from ingress.signatures import Failure, basic_credentials, verify_basic

pytestmark = pytest.mark.unit


def _header(credential: bytes) -> str:
    return "Basic " + base64.b64encode(credential).decode()


def test_the_credential_that_matches_is_named() -> None:
    secrets = [b"shop-a:old-password", b"shop-a:new-password"]
    result = verify_basic(_header(b"shop-a:new-password"), secrets)
    assert result.ok and result.secret_index == 1


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        (None, Failure.MISSING_HEADER),
        ("Bearer abc", Failure.MALFORMED_HEADER),
        ("Basic not base64!", Failure.MALFORMED_HEADER),
        (_header(b"no-colon"), Failure.MALFORMED_HEADER),
        (_header(b":password-only"), Failure.MALFORMED_HEADER),
        ("Basic " + "A" * 2000, Failure.MALFORMED_HEADER),
        (_header(b"shop-a:wrong"), Failure.MISMATCH),
        (_header(b"shop-b:new-password"), Failure.MISMATCH),
    ],
)
def test_refusals(header: str | None, failure: Failure) -> None:
    result = verify_basic(header, [b"shop-a:new-password"])
    assert not result.ok and result.failure is failure


def test_the_user_name_is_read_for_candidate_selection() -> None:
    assert basic_credentials(_header(b"shop-a:p:w")) == ("shop-a", b"shop-a:p:w")
    assert basic_credentials("basic " + base64.b64encode(b"u:p").decode()) == ("u", b"u:p")
