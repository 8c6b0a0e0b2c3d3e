from __future__ import annotations

import pytest

from sandbox.formdecode import decode_form, pairs_fingerprint

pytestmark = pytest.mark.unit


def test_nested_objects_and_lists_decode_like_stripe() -> None:
    body = (
        "amount=100&metadata[order_key]=o%3A1&metadata[tenant]=t1"
        "&payment_method_types[0]=card&expand[]=latest_charge&expand[]=customer"
    )
    assert decode_form(body) == {
        "amount": "100",
        "metadata": {"order_key": "o:1", "tenant": "t1"},
        "payment_method_types": ["card"],
        "expand": ["latest_charge", "customer"],
    }


def test_fingerprint_ignores_parameter_order_but_not_values() -> None:
    assert pairs_fingerprint("a=1&b=2") == pairs_fingerprint("b=2&a=1")
    assert pairs_fingerprint("a=1&b=2") != pairs_fingerprint("a=1&b=3")
