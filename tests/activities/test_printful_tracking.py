"""Tracking numbers for the poll: from the signed shipment_sent events, never made up."""

from __future__ import annotations

import pytest

from activities.printful_activities import _tracked
from autobiz.providers.printful_client import Shipment as Listed

pytestmark = pytest.mark.unit

LISTED = [Listed(id=11, carrier="USPS", tracking_url="https://t.example/11")]


def test_the_number_comes_from_the_shipment_sent_event_of_that_shipment() -> None:
    sent = [{"id": 11, "tracking_number": "9400111", "tracking_url": "https://t.example/11"}]
    [shipment] = _tracked(LISTED, sent)
    assert (shipment.carrier, shipment.tracking_number) == ("USPS", "9400111")


def test_no_event_no_number_and_the_shipment_is_left_out() -> None:
    assert _tracked(LISTED, []) == []
    assert _tracked(LISTED, [{"id": 12, "tracking_number": "other shipment"}]) == []


def test_a_webhook_shipment_has_no_carrier_nor_need_the_listing() -> None:
    no_carrier = [Listed(id=11)]
    [shipment] = _tracked(no_carrier, [{"id": 11, "tracking_number": "T1", "tracking_url": "u"}])
    assert (shipment.carrier, shipment.tracking_url) == ("unknown", "u")
