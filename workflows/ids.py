"""Every flow's names in one place, and the ids derived from a business key.

A flow is one ``FlowName``: its workflow type (as registered with Temporal), its config
key (``workflows.<key>`` in a BusinessConfig, also its module's name and its kernel
policy's workflow type), its workflow-id prefix, its DESIGN id and its CLI command.
Starters, the ingress, the CLI, the worker and the workflows import these; no other
module spells a workflow type, a signal an outsider sends, or an id prefix.

Workflow ids are business keys (``{prefix}:{tenant}:{key}``), so a duplicate trigger
finds the running flow instead of starting a second one. The prefixes are the contract
with every flow already running: renaming one would let a redelivered webhook start a
second run of an order in flight. Pure: no I/O, no Temporal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowName:
    type: str  # the workflow type registered with Temporal
    key: str  # the config key, module name and kernel policy's workflow type
    prefix: str  # workflow ids are "{prefix}:{tenant}:{business key}"
    design: str  # the DESIGN.md id
    cli: str  # the `autobiz` command that starts or shows it ("" when none)

    def workflow_id(self, tenant_id: str, business_key: str) -> str:
        return f"{self.prefix}:{tenant_id}:{business_key}"


ORDER_FULFILL = FlowName("OrderFulfill", "order_fulfill", "order", "WF01", "order start")
PAYMENT_FAILURE = FlowName(
    "PaymentFailure", "payment_failure", "payment-failure", "WF02", "order status"
)
REFUND = FlowName("Refund", "refund", "refund", "WF03", "refund request")
ORDER_CANCELLATION = FlowName(
    "OrderCancellation", "order_cancellation", "cancel", "WF04", "cancel request"
)
RECONCILIATION = FlowName(
    "Reconciliation", "reconciliation", "reconcile", "P1-TASK-25", "reconcile run"
)
# The repair of one financial drift: a child of reconciliation, under its policy.
RECONCILE_DRIFT = FlowName(
    "ReconcileDrift", "reconciliation", "reconcile-drift", "P1-TASK-25", "reconcile list"
)
# The scheduled check of INV-01..08 against live data (issue #12 item 5).
INVARIANT_MONITOR = FlowName(
    "InvariantMonitor", "invariant_monitor", "monitor", "INV-01..08", "incidents list"
)

# Customer care: a "where is my order" message answered (issue #12 item 2).
WISMO = FlowName("WISMO", "wismo", "wismo", "WF05", "wismo list")
# A Printful hold or failure triaged, fixed or escalated (issue #12 item 3); started by
# the order's OrderFulfill as a child.
FULFILLMENT_EXCEPTION = FlowName(
    "FulfillmentException", "fulfillment_exception", "exception", "WF06", "order status"
)
# The tenant's day closed: metrics, drift, CSV report (issue #12 item 4).
DAILY_CLOSEOUT = FlowName("DailyCloseout", "daily_closeout", "closeout", "WF07", "closeout run")

FLOWS: tuple[FlowName, ...] = (
    ORDER_FULFILL,
    PAYMENT_FAILURE,
    REFUND,
    ORDER_CANCELLATION,
    RECONCILIATION,
    RECONCILE_DRIFT,
    INVARIANT_MONITOR,
    WISMO,
    FULFILLMENT_EXCEPTION,
    DAILY_CLOSEOUT,
)

# The flows that ask people for decisions (the ``decide`` update): told when an approver
# key changes (tests/hygiene/test_layout.py keeps this equal to the registered ones).
APPROVAL_FLOWS: tuple[FlowName, ...] = (
    ORDER_FULFILL,
    REFUND,
    PAYMENT_FAILURE,
    ORDER_CANCELLATION,
    RECONCILE_DRIFT,
    WISMO,
    FULFILLMENT_EXCEPTION,
)

# Signals outsiders send (the ingress, another flow), by the name in histories.
SHOPIFY_EVENT = "shopify_event"
STRIPE_EVENT = "stripe_event"
PRINTFUL_EVENT = "printful_event"
INBOUND_EMAIL = "inbound_email"  # the ingress → WISMO: a customer's email (Inbound Parse)
CANCEL_REQUESTED = "cancel_requested"  # OrderCancellation → OrderFulfill
FULFILL_STOPPED = "fulfill_stopped"  # OrderFulfill → OrderCancellation


def order_workflow_id(tenant_id: str, order_id: str) -> str:
    return ORDER_FULFILL.workflow_id(tenant_id, order_id)


def refund_workflow_id(tenant_id: str, refund_request_id: str) -> str:
    return REFUND.workflow_id(tenant_id, refund_request_id)


def payment_failure_workflow_id(tenant_id: str, payment_intent_id: str) -> str:
    """Matches the ingress route for ``payment_intent.payment_failed``."""
    return PAYMENT_FAILURE.workflow_id(tenant_id, payment_intent_id)


def cancellation_workflow_id(tenant_id: str, order_id: str) -> str:
    """Matches the ingress route for Shopify ``orders/cancelled``."""
    return ORDER_CANCELLATION.workflow_id(tenant_id, order_id)


def reconciliation_workflow_id(tenant_id: str, run_key: str) -> str:
    """``reconcile:{tenant}:{window end or run key}`` (a schedule appends its own time)."""
    return RECONCILIATION.workflow_id(tenant_id, run_key)


def reconcile_schedule_id(tenant_id: str) -> str:
    return f"{RECONCILIATION.prefix}-schedule:{tenant_id}"


def drift_workflow_id(tenant_id: str, drift_id: int) -> str:
    """The repair (approval) workflow of one financial drift row."""
    return RECONCILE_DRIFT.workflow_id(tenant_id, str(drift_id))


def monitor_workflow_id(tenant_id: str, run_key: str) -> str:
    """``monitor:{tenant}:{run key}`` (a schedule appends its own time)."""
    return INVARIANT_MONITOR.workflow_id(tenant_id, run_key)


def monitor_schedule_id(tenant_id: str) -> str:
    return f"{INVARIANT_MONITOR.prefix}-schedule:{tenant_id}"


def wismo_workflow_id(tenant_id: str, message_id: str) -> str:
    """``wismo:{tenant}:{sha256(Message-ID)[:32]}``: a redelivered message finds its run."""
    digest = hashlib.sha256(message_id.strip().encode()).hexdigest()[:32]
    return WISMO.workflow_id(tenant_id, digest)


def exception_workflow_id(tenant_id: str, order_id: str, printful_event_id: str) -> str:
    """One exception flow per Printful event of an order (a hold after a fixed hold is
    a new exception; the same event redelivered is not)."""
    return FULFILLMENT_EXCEPTION.workflow_id(tenant_id, f"{order_id}:{printful_event_id}")


def closeout_workflow_id(tenant_id: str, day: str) -> str:
    """``closeout:{tenant}:{YYYY-MM-DD}`` (the tenant's local day)."""
    return DAILY_CLOSEOUT.workflow_id(tenant_id, day)


def closeout_schedule_id(tenant_id: str) -> str:
    return f"{DAILY_CLOSEOUT.prefix}-schedule:{tenant_id}"


def printful_external_id(tenant_id: str, order_id: str) -> str:
    """The order key as Printful sees it (≤ 32 chars, stable): ``{order}-{tenant hash}``."""
    digest = hashlib.sha256(f"{tenant_id}:{order_id}".encode()).hexdigest()
    legacy = order_id.rsplit("/", 1)[-1]
    head = legacy[:20]
    return f"{head}-{digest[: 31 - len(head)]}"
