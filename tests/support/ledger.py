"""Receipts as the order flow writes them, for tests that need our ledger to know a
capture without running OrderFulfill to the capture."""

from __future__ import annotations

import uuid
from typing import Any

from autobiz.db.database import Database
from autobiz.ledger.receipts import Receipt, ReceiptDraft, ReceiptStore
from kernel.contracts import SideEffect


async def record_capture(
    db: Database,
    tenant: str,
    order_id: str,
    payment_intent_id: str,
    amount_minor: int,
    currency: str = "USD",
) -> Receipt:
    """The ``stripe.capture_payment`` receipt of ``order_id``'s flow."""
    key = uuid.uuid4().hex
    return await ReceiptStore(db).record(
        ReceiptDraft(
            tenant_id=tenant,
            workflow_id=f"order:{tenant}:{order_id}",
            run_id="run-1",
            activity_id="1",
            tool="stripe.capture_payment",
            tool_version="1",
            side_effect=SideEffect.FINANCIAL,
            internal_key=key,
            external_key=f"ext-{key}",
            request_hash=key,
            provider="stripe",
            provider_object_id=payment_intent_id,
            status="succeeded",
            amount_minor=amount_minor,
            currency=currency,
            details={"order_id": order_id, "risk_level": "low"},
        )
    )


async def security_incidents(
    db: Database, tenant: str, action: str = "security.%"
) -> list[dict[str, Any]]:
    """The tenant's ``audit_log`` rows for refused attempts (``action`` LIKE pattern)."""
    async with db.tenant(tenant) as s:
        return await s.fetch_all(
            "SELECT actor, action, outcome, detail FROM audit_log WHERE tenant_id = %s "
            "AND action LIKE %s ORDER BY audit_id",
            (tenant, action),
        )
