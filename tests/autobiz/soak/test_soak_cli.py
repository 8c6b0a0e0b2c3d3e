"""`autobiz soak`, CI-sized, as an operator runs it: a fresh home, the embedded stack,
rounds of the business day until 40 events went through, judged by the providers."""

from __future__ import annotations

import json

import pytest

from tests.support.stack import autobiz

pytestmark = pytest.mark.e2e

FLOWS = {
    "OrderFulfill",
    "Refund",
    "PaymentFailure",
    "OrderCancellation",
    "FulfillmentException",
    "WISMO",
    "DailyCloseout",
    "ingress",  # the second merchant's forged webhook, refused
}


def test_a_ci_sized_soak_loses_and_doubles_nothing(stack_env: dict[str, str]) -> None:
    result = autobiz(
        stack_env, "soak", "--events", "40", "--json", "--down", check=False, timeout=400
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["events"] >= 40 and report["rounds"] >= 1
    assert (report["lost"], report["duplicated"], report["invariant_violations"]) == (0, 0, 0)
    assert report["findings"] == {"lost": [], "duplicated": [], "invariant_violations": []}
    # Every flow ran, and each ended as often in each outcome as it was expected to.
    assert set(report["outcomes"]) == FLOWS
    for name, flow in report["outcomes"].items():
        assert flow["expected"] == flow["observed"] and not flow["mismatches"], name
    assert report["outcomes"]["Refund"]["observed"]["failed:APPROVAL_EXPIRED"] >= 1
    # The events came in through every door, counted by the ingress's own table.
    sources = report["events_by_source"]
    for source in ("webhook:shopify", "webhook:stripe", "webhook:printful", "webhook:sendgrid"):
        assert sources.get(source, 0) > 0, sources
    assert sources["cli:commands"] > 0 and sources["cli:requests"] > 0
    # The judge read the providers' state, it did not assume it.
    checked = report["checked"]
    assert checked["captured_payment_intents"] >= 7 and checked["printful_orders"] >= 7
    assert checked["stripe_refunds"] >= 3 and checked["emails"] > 0
    assert checked["webhooks"] > 0 and checked["stored_events"] > 0
    # Latency per flow, from Temporal's start and close times.
    for flow in FLOWS - {"ingress"}:
        latency = report["latency_seconds"][flow]
        assert latency["n"] >= 1 and 0 < latency["p50"] <= latency["p99"], (flow, latency)
    assert report["chaos"] == []
