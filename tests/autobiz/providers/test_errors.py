"""The error hierarchy and the generic HTTP mapping (pure code)."""

from __future__ import annotations

import pytest

from autobiz.providers.errors import (
    AuthenticationFailed,
    CardDeclined,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    StateConflict,
    is_hard_decline,
)
from autobiz.providers.http import error_for_status, retry_after_seconds

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, InvalidRequest, False),
        (401, AuthenticationFailed, False),
        (403, AuthenticationFailed, False),
        (404, NotFound, False),
        (409, StateConflict, False),
        (422, InvalidRequest, False),
        (429, RateLimited, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
    ],
)
def test_status_mapping(status: int, kind: type, retryable: bool) -> None:
    err = error_for_status("printful", status, "boom", code=None, headers={"Retry-After": "4"})
    assert type(err) is kind
    assert err.retryable is retryable
    assert err.http_status == status and err.provider == "printful"


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None


def test_declines_hard_and_soft() -> None:
    assert is_hard_decline("stolen_card") and is_hard_decline("expired_card")
    assert not is_hard_decline("insufficient_funds") and not is_hard_decline(None)
    soft = CardDeclined("no", decline_code="insufficient_funds")
    assert (soft.retryable, soft.hard, soft.code) == (False, False, "CARD_DECLINED")
    assert "insufficient" not in soft.message or soft.provider == "stripe"
