"""DailyCloseout end to end: orders captured, refunded and fulfilled through the real
flows on the sandbox; the day closed from provider truth (Stripe balance transactions
with their fees, Printful costs, Shopify orders) matches the sandbox's numbers, re-runs
rewrite the same rows and the same report, and drift against our receipts goes to an
approval."""

from __future__ import annotations

import pytest

from activities.reconciliation_activities import fetch_drift_rows
from sandbox.stripe_objects import card_fee
from starters.flows import decide
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.workflows.closeout.support import (
    close_day,
    fulfilled_order,
    local_today,
    metrics_of,
    refund_outside,
    report_of,
    stripe_balance,
)
from tests.workflows.support import Harness
from workflows.reconciliation.models import DriftRepairResult

pytestmark = pytest.mark.integration

DAILY_REPORT = "d-autobiz-daily-report"


async def test_a_day_closed_from_provider_truth_matches_the_sandbox(harness: Harness) -> None:
    h = harness
    day = local_today(h)
    order_id, pi, _ = await fulfilled_order(h, "25.00")
    await fulfilled_order(h, "40.00")
    refund = await h.request_refund(order_id, pi, 1000)  # below the approval threshold
    assert (await refund.result()).state == "refunded"

    result = await close_day(h, day)

    balance = await stripe_balance(h, day)
    charges = [t for t in balance if t.type == "charge"]
    refunds = [t for t in balance if t.type == "refund"]
    assert sorted(t.amount for t in charges) == [2500, 4000]
    assert [t.amount for t in refunds] == [-1000]
    assert all(t.fee == card_fee(t.amount) for t in charges)
    fees = sum(t.fee for t in balance)
    net = sum(t.net for t in balance)
    metrics = await metrics_of(h, day)
    assert metrics["orders:USD"] == ("2", None)
    assert metrics["gross_captured_minor:USD"] == ("6500", "USD")
    assert metrics["refunded_minor:USD"] == ("1000", "USD")
    assert metrics["stripe_fees_minor:USD"] == (str(fees), "USD")
    assert metrics["net_minor:USD"] == (str(net), "USD")
    # Printful (the sandbox's price list): 12.50 an item + 4.99 shipping per order.
    assert metrics["fulfillment_costs_minor:USD"] == (str(2 * 1749), "USD")
    assert metrics["margin_minor:USD"] == (str(net - 2 * 1749), "USD")
    assert result.drifts == () and result.repairs == {}
    report = await report_of(h, day)
    assert report["csv_sha256"] == result.csv_sha256 and report["runs"] == 1
    assert result.report_url and f"/reports/closeout/{h.tenant}/{day}.csv?" in result.report_url
    # Ops got the day's email with the link (SendGrid's dynamic template data).
    (mail,) = [
        m
        for m in await h.sandbox.control.outbox()
        if m["request"]["template_id"] == DAILY_REPORT and m["account"] == h.tenant
    ]
    assert mail["recipients"] == [h.config.notifications.ops_email]
    data = mail["request"]["personalizations"][0]["dynamic_template_data"]
    assert data["report_url"] == result.report_url and data["day"] == str(day)

    # Re-run: the same rows, the same bytes; the report counts the second write.
    again = await close_day(h, day)
    assert await metrics_of(h, day) == metrics
    assert again.csv_sha256 == result.csv_sha256 and again.runs == 2
    assert (await report_of(h, day))["runs"] == 2
    await maybe_record(h.client, again.workflow_id, "daily_closeout_rerun")


async def test_a_refund_made_in_stripe_goes_to_approval(harness: Harness) -> None:
    h = harness
    day = local_today(h)
    order_id, pi, _ = await fulfilled_order(h, "30.00")
    refund_id = await refund_outside(h, pi, 700)

    result = await close_day(h, day)

    rows = {r.drift_id: r for r in await fetch_drift_rows(h.db, h.tenant)}
    raised = [rows[d] for d in result.drifts]
    assert [(r.kind, r.entity_ref, r.order_id) for r in raised] == [
        ("refund_outside", refund_id, order_id)
    ], "the refund is the one drift (the refunded total is accounted for by it)"
    row = raised[0]
    assert row.status == "pending_approval" and row.run_id == result.workflow_id
    child = result.repairs[str(row.drift_id)]
    request = await h.pending_request(child)
    assert request
    # Re-running the day asks nobody twice: the row is seen again, no second repair.
    again = await close_day(h, day)
    assert again.drifts == result.drifts and again.repairs == {}
    await maybe_record(h.client, again.workflow_id, "daily_closeout_drift_seen_again")


async def test_a_capture_without_a_receipt_is_a_closeout_mismatch(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    day = local_today(h)
    await h.captured_order("12.00")  # captured in Stripe, no receipt of ours

    result = await close_day(h, day)

    rows = {r.drift_id: r for r in await fetch_drift_rows(h.db, h.tenant)}
    raised = [rows[d] for d in result.drifts]
    assert [(r.kind, r.entity_ref) for r in raised] == [
        ("closeout_mismatch", f"closeout:{day}:captured:USD")
    ]
    assert raised[0].expected["amount_received_minor"] == 0
    assert raised[0].actual["amount_received_minor"] == 1200
    repair_id = result.repairs[str(raised[0].drift_id)]
    await h.pending_request(repair_id)
    (request,) = await h.pending_rows(repair_id)
    assert (request["action"], request["amount_minor"]) == ("acknowledge_closeout_mismatch", 1200)
    assert request["required_role"] == "finance"
    # Finance acknowledges: the row is repaired (handled by people), no money moves.
    await decide(h.client, repair_id, await approvers.decision(h.client, repair_id, "ana", True))
    repaired = await h.client.get_workflow_handle(repair_id, result_type=DriftRepairResult).result()
    assert (repaired.status, repaired.action) == ("repaired", "acknowledged")
