"""Every flow's names in one place: its workflow type (as registered with Temporal),
its workflow-id pattern, and the ids derived from a business key.

Starters, the ingress, the CLI and the workflows import these; no other module spells a
workflow type or an id prefix. Pure: no I/O, no Temporal.
"""

from __future__ import annotations

import hashlib

# Names of the workflow types, as registered with Temporal (and used by the ingress).
ORDER_FULFILL = "OrderFulfill"
REFUND = "Refund"
PAYMENT_FAILURE = "PaymentFailure"


def order_workflow_id(tenant_id: str, order_id: str) -> str:
    return f"order:{tenant_id}:{order_id}"


def refund_workflow_id(tenant_id: str, refund_request_id: str) -> str:
    return f"refund:{tenant_id}:{refund_request_id}"


def payment_failure_workflow_id(tenant_id: str, payment_intent_id: str) -> str:
    """Matches the ingress route for ``payment_intent.payment_failed``."""
    return f"payment-failure:{tenant_id}:{payment_intent_id}"


def printful_external_id(tenant_id: str, order_id: str) -> str:
    """The order key as Printful sees it (≤ 32 chars, stable): ``{order}-{tenant hash}``."""
    digest = hashlib.sha256(f"{tenant_id}:{order_id}".encode()).hexdigest()
    legacy = order_id.rsplit("/", 1)[-1]
    head = legacy[:20]
    return f"{head}-{digest[: 31 - len(head)]}"


# --- OrderCancellation ----------------------------------------------------------------

ORDER_CANCELLATION = "OrderCancellation"


def cancellation_workflow_id(tenant_id: str, order_id: str) -> str:
    """Matches the ingress route for Shopify ``orders/cancelled``."""
    return f"cancel:{tenant_id}:{order_id}"


# --- Reconciliation -------------------------------------------------------------------

RECONCILIATION = "Reconciliation"
RECONCILE_DRIFT = "ReconcileDrift"


def reconciliation_workflow_id(tenant_id: str, run_key: str) -> str:
    """``reconcile:{tenant}:{window end or run key}`` (a schedule appends its own time)."""
    return f"reconcile:{tenant_id}:{run_key}"


def reconcile_schedule_id(tenant_id: str) -> str:
    return f"reconcile-schedule:{tenant_id}"


def drift_workflow_id(tenant_id: str, drift_id: int) -> str:
    """The repair (approval) workflow of one financial drift row."""
    return f"reconcile-drift:{tenant_id}:{drift_id}"
