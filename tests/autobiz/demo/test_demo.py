"""`autobiz demo` as a new user runs it: a fresh home, the embedded stack, the day."""

from __future__ import annotations

import json

import pytest

from tests.support.stack import autobiz

pytestmark = pytest.mark.e2e

EXPECTED = {
    # demo-shop's four orders and corner-shop's one; the two Printful holds (WF06)
    "OrderFulfill": [
        "completed",
        "completed",
        "completed",
        "cancelled",
        "completed",
        "completed",
        "cancelled",
        "completed",  # order #8, whose customer writes in (WF05)
    ],
    "FulfillmentException": ["resolved", "cancelling"],
    "Refund": ["refunded", "refunded", "failed:APPROVAL_EXPIRED"],
    "PaymentFailure": ["cancelled"],
    "OrderCancellation": ["cancelled", "cancelled"],
    # corner-shop's signed webhook naming demo-shop's order
    "ingress": ["refused:CROSS_TENANT_REFUSED"],
    # the day closed from the CLI, judged against Stripe's balance transactions (WF07)
    "DailyCloseout": ["completed"],
    # a customer's email answered with the tracking; a refund request reviewed, edited
    "WISMO": ["answered", "answered"],
}


def test_the_business_day_reaches_every_expected_outcome(stack_env: dict[str, str]) -> None:
    result = autobiz(stack_env, "demo", "--json", "--down", check=False, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    outcomes: dict[str, list[str]] = {}
    for case in report["cases"]:
        assert case["ok"] and case["problems"] == [], case
        assert case["actual"] == case["expected"]
        if case["workflow_type"] != "ingress":  # the refused webhook started nothing
            ui = f"http://127.0.0.1:{stack_env['AUTOBIZ_TEMPORAL__UI_PORT']}/"
            assert case["ui"].startswith(ui)
        outcomes.setdefault(case["workflow_type"], []).append(case["actual"])
    assert {k: sorted(v) for k, v in outcomes.items()} == {
        k: sorted(v) for k, v in EXPECTED.items()
    }
    by_name = {c["name"]: c for c in report["cases"]}
    # Money moved where it should and nowhere else.
    refunds = {n: c["facts"]["stripe_refunded"] for n, c in by_name.items() if "refund" in n}
    assert sorted(refunds.values()) == [0, 1000, 6000]
    cancelled = by_name["order #5: customer cancels, authorisation voided (approved)"]
    assert cancelled["facts"]["payment_status"] == "canceled"
    assert cancelled["facts"]["approved_by"] == "omar"
    # Every side effect left a receipt; the stopped order moved no money at all (it may
    # have sent its approvers a reminder or an escalation while it waited: the demo's
    # escalate_after is 8 s, and a busy machine can take that long).
    fulfilled = [c for c in report["cases"] if c["workflow_type"] == "OrderFulfill"]
    stopped = by_name["order #5 (650.00, held for review): stopped"]
    assert stopped["money_receipts"] == 0 and stopped["receipts"] <= 3
    shipped = [c["receipts"] for c in fulfilled if c is not stopped]
    assert sorted(shipped) == [3, 5, 5, 5, 5, 5, 5]
    # The Printful holds: one fixed from Shopify's corrected address, one escalated and
    # cancelled from the CLI (refunded at Stripe, cancelled at Printful).
    fixed = by_name["order #6: the hold fixed from Shopify's corrected address"]
    assert fixed["facts"]["diagnosis"] == "address"
    escalated = by_name["order #7: cancelled, the capture paid back"]
    assert escalated["facts"]["stripe_refunded"] == 2200
    assert escalated["facts"]["printful_status"] == "canceled"
    # Two merchants on one stack: the other one's webhook naming demo-shop's order #1 was
    # stored as a dead letter and moved nothing; its own order ran on its own accounts.
    [attack] = [c for c in report["cases"] if c["workflow_type"] == "ingress"]
    assert attack["facts"]["ingress_answer"] == "dead_letter"
    first = next(c for c in fulfilled if c["name"].startswith("order #1"))
    assert attack["facts"]["order_id"] == first["facts"]["order_id"]
    assert attack["receipts"] == 0 and attack["ui"] is None
    # WF05: the customer of order #8 asked where it is (answered with its tracking, as
    # SendGrid received it) and then for a refund (reviewed, sent as edited from the CLI).
    wismo = {c["name"]: c for c in report["cases"] if c["workflow_type"] == "WISMO"}
    [where] = [c for n, c in wismo.items() if "where it is" in n]
    assert where["facts"]["outcome"] == "answered" and where["facts"]["tracking_number"]
    [refund] = [c for n, c in wismo.items() if "money back" in n]
    assert refund["facts"]["outcome"] == "answered_after_review"
    assert refund["facts"]["review_reason"] == "refund_or_cancel_request"
    # WF07: the day closed from the CLI; its CSV (fetched through the signed link) saved
    # where the demo printed it, its figures Stripe's (judged in the demo itself).
    [closeout] = [c for c in report["cases"] if c["workflow_type"] == "DailyCloseout"]
    assert closeout["facts"]["csv"].endswith(".csv") and closeout["facts"]["metrics"] > 0
    assert closeout["facts"]["gross_captured_minor"] > 0 < closeout["facts"]["stripe_fees_minor"]
    assert "/reports/closeout/demo-shop/" in closeout["facts"]["report_url"]
