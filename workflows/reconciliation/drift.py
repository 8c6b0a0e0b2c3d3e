"""The checks of reconciliation: what a provider says against what our records say, as
``Drift`` values (P1-R27..R30). Pure: no I/O, no Temporal — the flows read, these decide.

* ``payment_drifts``: one PaymentIntent we captured — ``capture_missing`` (not
  ``succeeded``, or nothing received), ``amount_mismatch`` (another amount or currency),
  and a ``refund_outside`` per live refund no receipt of ours accounts for;
* ``printful_drift``: an order in production or later whose Printful order is
  ``canceled`` — ``printful_cancelled_outside`` (non-financial: the projection is
  repaired);
* ``drift_amount``: the money a financial drift row is about, for its approval.
"""

from __future__ import annotations

from typing import Any

from kernel.tools.printful import GetPrintfulOrderOutput
from kernel.tools.stripe import GetPaymentIntentOutput, ListRefundsOutput, RefundView
from workflows.reconciliation.models import (
    Drift,
    DriftKind,
    DriftRow,
    OrderView,
    PaymentView,
)

# Projection states in which the Printful order must still be alive.
PRODUCTION_STATES = frozenset({"in_production", "awaiting_shipment", "shipped", "completed"})
# Refunds in these states moved no money.
DEAD_REFUNDS = frozenset({"failed", "canceled"})


def payment_drifts(
    payment: PaymentView, intent: GetPaymentIntentOutput, refunds: ListRefundsOutput
) -> list[Drift]:
    """Capture and refund drift of one PaymentIntent we captured."""
    drifts: list[Drift] = []
    capture = capture_drift(payment, intent)
    if capture is not None:
        drifts.append(capture)
    drifts.extend(outside_refunds(payment, refunds))
    return drifts


def capture_kind(payment: PaymentView, intent: GetPaymentIntentOutput) -> DriftKind | None:
    """``capture_missing``, ``amount_mismatch``, or None when Stripe agrees."""
    if intent.status != "succeeded" or intent.amount_received_minor == 0:
        return "capture_missing"
    if (
        intent.amount_received_minor != payment.captured_minor
        or intent.currency != payment.currency
    ):
        return "amount_mismatch"
    return None


def capture_drift(payment: PaymentView, intent: GetPaymentIntentOutput) -> Drift | None:
    """Our capture receipt against the PaymentIntent (people acknowledge it)."""
    kind = capture_kind(payment, intent)
    if kind is None:
        return None
    return Drift(
        kind=kind,
        entity_ref=payment.payment_intent_id,
        order_id=payment.order_id,
        financial=True,
        expected={
            "status": "succeeded",
            "amount_received_minor": payment.captured_minor,
            "currency": payment.currency,
            "order_id": payment.order_id,
        },
        actual={
            "status": intent.status,
            "amount_received_minor": intent.amount_received_minor,
            "currency": intent.currency,
            "order_id": payment.order_id,
        },
        action="acknowledge_required",
    )


def outside_refunds(payment: PaymentView, refunds: ListRefundsOutput) -> list[Drift]:
    """Each live refund on the intent that no ``stripe.create_refund`` receipt of ours
    accounts for (recorded in Shopify once finance approves)."""
    accounted = set(payment.accounted_refunds)
    ours = sum(r.amount_minor for r in refunds.refunds if r.refund_id in accounted)
    expected = {
        "payment_intent_id": payment.payment_intent_id,
        "order_id": payment.order_id,
        "refunded_by_autobiz_minor": ours,
        "autobiz_refunds": sorted(accounted),
    }
    return [
        Drift(
            kind="refund_outside",
            entity_ref=r.refund_id,
            order_id=payment.order_id,
            financial=True,
            expected=dict(expected),
            actual=_refund_seen(payment, r),
            action="approval_to_record_in_shopify",
        )
        for r in refunds.refunds
        if r.refund_id not in accounted and r.status not in DEAD_REFUNDS
    ]


def _refund_seen(payment: PaymentView, refund: RefundView) -> dict[str, Any]:
    return {
        "refund_id": refund.refund_id,
        "payment_intent_id": payment.payment_intent_id,
        "order_id": payment.order_id,
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "created": refund.created,
        "refund_request_id": refund.refund_request_id,
    }


def in_production(order: OrderView) -> bool:
    """The projection says the order's Printful order must be alive (so it is checked)."""
    return order.printful_order_id is not None and order.state in PRODUCTION_STATES


def printful_drift(order: OrderView, printful: GetPrintfulOrderOutput) -> Drift | None:
    if printful.status != "canceled":
        return None
    return Drift(
        kind="printful_cancelled_outside",
        entity_ref=f"printful:{printful.printful_order_id}",
        order_id=order.order_id,
        financial=False,
        expected={
            "projection_state": order.state,
            "printful_status": "not canceled",
            "printful_order_id": printful.printful_order_id,
        },
        actual={
            "printful_status": printful.status,
            "printful_order_id": printful.printful_order_id,
            "external_id": printful.external_id,
        },
        action="repair_projection",
    )


def drift_amount(drift: DriftRow) -> tuple[int | None, str | None]:
    """The money a financial drift is about, for the approval request."""
    a, e = drift.actual, drift.expected
    currency = a.get("currency") or e.get("currency")
    if drift.kind == "refund_outside":
        return int(a.get("amount_minor") or 0), currency
    expected = int(e.get("amount_received_minor") or 0)
    return abs(expected - int(a.get("amount_received_minor") or 0)), currency
