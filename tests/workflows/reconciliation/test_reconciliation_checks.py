"""The reconciliation checks themselves (pure): what counts as drift and what does not."""

from __future__ import annotations

import pytest

from kernel.tools.printful import GetPrintfulOrderOutput
from kernel.tools.stripe import GetPaymentIntentOutput, ListRefundsOutput, RefundView
from workflows.reconciliation.drift import payment_drifts, printful_drift
from workflows.reconciliation.models import OrderView, PaymentView

pytestmark = pytest.mark.unit

PAYMENT = PaymentView(
    payment_intent_id="pi_1",
    order_id="1001",
    captured_minor=2500,
    currency="USD",
    accounted_refunds=("re_ours",),
)


def _intent(
    status: str = "succeeded", received: int = 2500, currency: str = "USD"
) -> GetPaymentIntentOutput:
    return GetPaymentIntentOutput(
        id="pi_1",
        status=status,
        amount_minor=2500,
        amount_received_minor=received,
        amount_capturable_minor=0,
        currency=currency,
    )


def _refund(refund_id: str, amount: int, status: str = "succeeded") -> RefundView:
    return RefundView(
        refund_id=refund_id,
        payment_intent_id="pi_1",
        amount_minor=amount,
        currency="USD",
        status=status,
        created=1_700_000_000,
    )


def _refunds(*refunds: RefundView) -> ListRefundsOutput:
    return ListRefundsOutput(refunds=list(refunds))


def test_matching_capture_and_our_own_refunds_are_no_drift() -> None:
    assert payment_drifts(PAYMENT, _intent(), _refunds(_refund("re_ours", 500))) == []


def test_refunds_that_moved_no_money_are_no_drift() -> None:
    found = payment_drifts(
        PAYMENT,
        _intent(),
        _refunds(_refund("re_failed", 100, "failed"), _refund("re_canceled", 100, "canceled")),
    )
    assert found == []


def test_outside_refund_is_financial_drift_per_refund() -> None:
    found = payment_drifts(
        PAYMENT,
        _intent(),
        _refunds(_refund("re_ours", 500), _refund("re_x", 700), _refund("re_y", 100, "pending")),
    )
    assert [(d.kind, d.entity_ref, d.financial) for d in found] == [
        ("refund_outside", "re_x", True),
        ("refund_outside", "re_y", True),
    ]
    assert found[0].expected["refunded_by_autobiz_minor"] == 500
    assert found[0].actual["amount_minor"] == 700 and found[0].order_id == "1001"


@pytest.mark.parametrize(
    ("intent", "kind"),
    [
        (_intent(status="requires_capture", received=0), "capture_missing"),
        (_intent(status="canceled", received=0), "capture_missing"),
        (_intent(received=2000), "amount_mismatch"),
        (_intent(currency="EUR"), "amount_mismatch"),
    ],
)
def test_capture_disagreement(intent: GetPaymentIntentOutput, kind: str) -> None:
    (found,) = payment_drifts(PAYMENT, intent, _refunds())
    assert (found.kind, found.entity_ref, found.financial) == (kind, "pi_1", True)
    assert found.expected["amount_received_minor"] == 2500


def test_printful_cancelled_is_non_financial_drift() -> None:
    order = OrderView(order_id="1001", state="in_production", version=4, printful_order_id=9)
    live = GetPrintfulOrderOutput(printful_order_id=9, status="pending")
    assert printful_drift(order, live) is None
    drift = printful_drift(order, live.model_copy(update={"status": "canceled"}))
    assert drift is not None
    assert (drift.kind, drift.entity_ref, drift.financial, drift.action) == (
        "printful_cancelled_outside",
        "printful:9",
        False,
        "repair_projection",
    )
