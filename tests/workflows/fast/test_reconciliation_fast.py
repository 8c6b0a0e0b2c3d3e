"""Reconciliation and ReconcileDrift branches with stand-in activities (``fakes``): each
drift kind found and handled (financial ones through a ReconcileDrift child), and the
child's ends — approved (recorded in Shopify or acknowledged), denied, expired, failed,
cancelled, resolved meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from activities.config_activities import flow_context
from kernel.codes import ErrorCode
from kernel.tools.printful import GetPrintfulOrderOutput
from kernel.tools.stripe import ListRefundsOutput, RefundView
from starters.reconciliation import start_reconciliation
from tests.workflows.fast.conftest import TIMING, Fast
from tests.workflows.fast.fakes import payment_intent, refusal, shop_order
from workflows.common.approvals import FLOW_CANCELLED
from workflows.common.models import ApprovalTiming
from workflows.ids import RECONCILE_DRIFT, drift_workflow_id, printful_external_id
from workflows.reconciliation.models import (
    DriftRepairInput,
    DriftRepairResult,
    DriftRow,
    DriftStatus,
    OrderView,
    PaymentView,
    ReconcileScope,
    ReconciliationResult,
)
from workflows.reconciliation.reconcile_drift import ReconcileDrift

WINDOW_REFUNDS = PI_REFUNDS = "stripe.list_refunds@1"
INTENT, PF_GET = "stripe.get_payment_intent@1", "printful.get_order@1"
GET, SHOPIFY_REFUND = "shopify.get_order@1", "shopify.refund_create@1"
EMAIL = "sendgrid.send_email@1"
# The approval expires at once (the dev server fires the timer up to about a second late).
EXPIRING = TIMING.model_copy(update={"timeout": timedelta(milliseconds=100)})


# -- setting up -----------------------------------------------------------------------


def _captured(fast: Fast, order_id: str, captured_minor: int = 2500) -> PaymentView:
    """A capture of ours in the run's scope (the fake answers ``pi_<order_id>``)."""
    payment = PaymentView(
        payment_intent_id=f"pi_{order_id}",
        order_id=order_id,
        captured_minor=captured_minor,
        currency="USD",
    )
    fast.fakes.scope = fast.fakes.scope.model_copy(
        update={"payments": (*fast.fakes.scope.payments, payment)}
    )
    return payment


def _outside_refund(fast: Fast, pi: str, amount_minor: int = 1000) -> str:
    """A refund made straight in Stripe: no receipt of ours accounts for it."""
    refund_id = f"re_{uuid.uuid4().hex[:12]}"
    refund = RefundView(
        refund_id=refund_id,
        payment_intent_id=pi,
        amount_minor=amount_minor,
        currency="USD",
        status="succeeded",
        created=1_700_000_000,
    )
    fast.fakes.refunds[pi] = ListRefundsOutput(refunds=[refund])
    return refund_id


def _in_production(fast: Fast, order_id: str, printful: str, *, version: int = 0) -> None:
    """The projection says the order is in production; Printful says ``printful``."""
    external = printful_external_id(fast.tenant, order_id)
    fast.fakes.printful[external] = GetPrintfulOrderOutput(
        printful_order_id=88, external_id=external, status=printful
    )
    order = OrderView(
        order_id=order_id, state="in_production", version=version, printful_order_id=88
    )
    fast.fakes.scope = ReconcileScope(orders=(order,))


async def _reconcile(fast: Fast, timing: ApprovalTiming = TIMING) -> ReconciliationResult:
    handle = await start_reconciliation(
        fast.client, fast.config, task_queue=fast.task_queue, key=uuid.uuid4().hex, timing=timing
    )
    return await handle.result()


def _row(
    fast: Fast,
    kind: str,
    *,
    actual: dict[str, Any],
    expected: dict[str, Any] | None = None,
    order_id: str | None = "6100",
    status: DriftStatus = "open",
) -> DriftRow:
    """A drift row as a reconciliation run left it (in the fake database)."""
    drift_id = 500 + len(fast.fakes.rows)
    row = DriftRow(
        drift_id=drift_id,
        kind=kind,
        entity_ref=str(actual.get("refund_id") or f"pi_{order_id}"),
        order_id=order_id,
        financial=kind != "printful_cancelled_outside",
        expected=expected or {},
        actual=actual,
        action="approval_to_record_in_shopify",
        status=status,
        run_id="reconcile:test",
        last_run_id="reconcile:test",
        detected_at=datetime.now(UTC),
    )
    fast.fakes.rows[drift_id] = row
    return row


def _refund_row(fast: Fast, order_id: str | None = "6100", **row: Any) -> DriftRow:
    actual = {"refund_id": "re_outside1", "amount_minor": 1000, "currency": "USD"}
    return _row(fast, "refund_outside", actual=actual, order_id=order_id, **row)


async def _repair(
    fast: Fast, row: DriftRow, timing: ApprovalTiming = TIMING
) -> WorkflowHandle[Any, DriftRepairResult]:
    """Start the row's ReconcileDrift as a reconciliation run would."""
    context = flow_context(fast.config, RECONCILE_DRIFT.key).model_copy(update={"timing": timing})
    return await fast.client.start_workflow(
        RECONCILE_DRIFT.type,
        DriftRepairInput(
            tenant_id=fast.tenant, drift=row, context=context, reconciliation_id="reconcile:test"
        ),
        id=drift_workflow_id(fast.tenant, row.drift_id),
        task_queue=fast.task_queue,
        result_type=DriftRepairResult,
    )


async def _waiting(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the run waits for its approval (the request's row opened, not just asked)."""
    for _ in range(200):
        attrs = (await handle.describe()).typed_search_attributes
        if any(p.key.name == "ApprovalPending" and p.value for p in attrs):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the repair never waited for its approval")


def _row_now(fast: Fast, row: DriftRow) -> tuple[str, str]:
    current = fast.fakes.rows[row.drift_id]
    return current.status, current.action


# -- Reconciliation: each drift kind --------------------------------------------------


async def test_capture_missing_asks_finance_to_acknowledge(fast: Fast) -> None:
    payment = _captured(fast, "6001")
    pi = payment.payment_intent_id
    fast.fakes.intents[pi] = [payment_intent(pi, "requires_capture")]
    result = await _reconcile(fast)
    (row,) = result.drifts
    assert (row.kind, row.entity_ref, row.financial) == ("capture_missing", pi, True)
    assert (row.status, row.action) == ("pending_approval", "approval_requested")
    assert row.actual["status"] == "requires_capture"
    repair_id = drift_workflow_id(fast.tenant, row.drift_id)
    assert result.repairs == {str(row.drift_id): repair_id}
    assert fast.fakes.names() == [WINDOW_REFUNDS, INTENT, PI_REFUNDS, EMAIL]
    request = await fast.fakes.opened_request()
    assert (request.workflow_id, request.action) == (repair_id, "acknowledge_capture_missing")
    assert (request.required_role, request.amount_minor) == ("finance", 2500)
    await fast.decide(repair_id, "ana", approve=True)
    handle = fast.client.get_workflow_handle(repair_id, result_type=DriftRepairResult)
    done = await handle.result()
    assert (done.status, done.action) == ("repaired", "acknowledged")
    assert _row_now(fast, row) == ("repaired", "acknowledged")


async def test_amount_mismatch_is_dismissed_when_denied(fast: Fast) -> None:
    payment = _captured(fast, "6002")
    pi = payment.payment_intent_id
    received = payment_intent(pi, "succeeded").model_copy(update={"amount_received_minor": 3000})
    fast.fakes.intents[pi] = [received]
    result = await _reconcile(fast)
    (row,) = result.drifts
    assert (row.kind, row.status) == ("amount_mismatch", "pending_approval")
    assert (row.expected["amount_received_minor"], row.actual["amount_received_minor"]) == (
        2500,
        3000,
    )
    repair_id = result.repairs[str(row.drift_id)]
    request = await fast.fakes.opened_request()
    assert (request.action, request.amount_minor) == ("acknowledge_amount_mismatch", 500)
    await fast.decide(repair_id, "ana", approve=False)
    handle = fast.client.get_workflow_handle(repair_id, result_type=DriftRepairResult)
    done = await handle.result()
    assert (done.status, done.action) == ("dismissed", "dismissed")
    assert done.approval is not None and done.approval.decided_by == "ana"


async def test_refund_outside_is_recorded_in_shopify_once_approved(fast: Fast) -> None:
    payment = _captured(fast, "6003")
    pi = payment.payment_intent_id
    fast.fakes.intents[pi] = [payment_intent(pi, "succeeded")]
    refund_id = _outside_refund(fast, pi, 1000)
    fast.fakes.orders["6003"] = shop_order("6003", total_minor=2500, financial_status="PAID")
    result = await _reconcile(fast)
    (row,) = result.drifts
    assert (row.kind, row.entity_ref, row.order_id) == ("refund_outside", refund_id, "6003")
    assert row.status == "pending_approval" and row.actual["amount_minor"] == 1000
    repair_id = result.repairs[str(row.drift_id)]
    request = await fast.fakes.opened_request()
    assert (request.action, request.required_role) == ("record_refund_outside", "finance")
    assert SHOPIFY_REFUND not in fast.fakes.names()  # nothing written while it waits
    await fast.decide(repair_id, "ana", approve=True)
    handle = fast.client.get_workflow_handle(repair_id, result_type=DriftRepairResult)
    done = await handle.result()
    assert (done.status, done.action) == ("repaired", "recorded_in_shopify")
    (recorded,) = fast.fakes.inputs(SHOPIFY_REFUND)
    assert (recorded.order_id, recorded.amount_minor) == ("6003", 1000)
    assert recorded.refund_request_id == f"recon-{refund_id}" and not recorded.notify_customer
    assert done.shopify_refund_id is not None and done.shopify_refund_id.startswith("shr_")
    assert _row_now(fast, row) == ("repaired", "recorded_in_shopify")


async def test_printful_cancelled_outside_on_a_moved_projection_stays_open(fast: Fast) -> None:
    _in_production(fast, "6004", "canceled", version=3)  # the projection is at 0: conflict
    result = await _reconcile(fast)
    (row,) = result.drifts
    assert (row.kind, row.financial) == ("printful_cancelled_outside", False)
    assert (row.status, row.action) == ("open", "projection_moved_retry_next_run")
    assert fast.fakes.states["6004"] == [] and result.repairs == {}
    assert fast.fakes.names() == [WINDOW_REFUNDS, PF_GET, EMAIL]


async def test_agreeing_providers_and_unknown_entities_are_no_drift(fast: Fast) -> None:
    _in_production(fast, "6005", "inprocess")
    gone = _captured(fast, "6006")  # Stripe no longer knows the intent: skipped
    result = await _reconcile(fast)
    assert result.drifts == () and result.repairs == {}
    assert (result.orders_checked, result.payments_checked) == (1, 1)
    assert fast.fakes.names() == [WINDOW_REFUNDS, INTENT, PF_GET]  # no email: nothing new
    assert fast.fakes.inputs(INTENT)[0].payment_intent_id == gone.payment_intent_id


# -- ReconcileDrift: how a repair ends ------------------------------------------------


async def test_repair_with_shopify_already_refunded_writes_nothing(fast: Fast) -> None:
    fast.fakes.orders["6100"] = shop_order("6100", total_minor=2500, financial_status="REFUNDED")
    row = _refund_row(fast)
    handle = await _repair(fast, row)
    request = await fast.fakes.opened_request()
    assert request.action == "acknowledge_refund_outside"
    await fast.decide(handle.id, "ana", approve=True)
    done = await handle.result()
    assert (done.status, done.action, done.shopify_refund_id) == (
        "repaired",
        "already_in_shopify",
        None,
    )
    assert fast.fakes.names() == [GET]
    status = await handle.query(ReconcileDrift.status)
    assert status.detail == {
        "drift_id": row.drift_id,
        "kind": "refund_outside",
        "entity_ref": "re_outside1",
        "shopify_financial_status": "REFUNDED",
    }


async def test_repair_of_an_order_shopify_does_not_know_is_acknowledged(fast: Fast) -> None:
    row = _refund_row(fast, order_id="6101")  # no such Shopify order
    handle = await _repair(fast, row)
    await fast.fakes.opened_request()
    await fast.decide(handle.id, "ana", approve=True)
    done = await handle.result()
    assert (done.status, done.action) == ("repaired", "acknowledged")
    assert fast.fakes.names() == [GET]


async def test_repair_expiry_fails_closed_and_reopens_the_row(fast: Fast) -> None:
    fast.fakes.orders["6100"] = shop_order("6100", total_minor=2500, financial_status="PAID")
    row = _refund_row(fast)
    handle = await _repair(fast, row, timing=EXPIRING)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == ErrorCode.APPROVAL_EXPIRED
    assert _row_now(fast, row) == ("open", "approval_expired")
    assert SHOPIFY_REFUND not in fast.fakes.names()
    (closed,) = fast.fakes.closed
    assert closed.status == "expired"


async def test_repair_failure_reopens_the_row(fast: Fast) -> None:
    fast.fakes.orders["6100"] = shop_order("6100", total_minor=2500, financial_status="PAID")
    fast.fakes.fail[SHOPIFY_REFUND] = refusal(ErrorCode.PROVIDER_INVALID_REQUEST, "Shopify said no")
    row = _refund_row(fast)
    handle = await _repair(fast, row)
    await fast.fakes.opened_request()
    await fast.decide(handle.id, "ana", approve=True)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert _row_now(fast, row) == ("open", "repair_failed")
    reopen = fast.fakes.inputs("autobiz.reconcile_resolve")[-1]
    assert reopen.details["error"] == "PROVIDER_INVALID_REQUEST: Shopify said no"


async def test_repair_cancelled_while_waiting_withdraws_and_reopens(fast: Fast) -> None:
    row = _row(
        fast,
        "capture_missing",
        expected={"amount_received_minor": 2500, "currency": "USD"},
        actual={"status": "requires_capture", "amount_received_minor": 0},
    )
    handle = await _repair(fast, row)
    request = await fast.fakes.opened_request()
    await _waiting(handle)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.CANCELED
    (closed,) = fast.fakes.closed
    assert closed.request_id == request.request_id
    assert (closed.status, closed.decided_by) == ("denied", FLOW_CANCELLED)
    assert _row_now(fast, row) == ("open", "repair_cancelled")
    attrs = {p.key.name: p.value for p in description.typed_search_attributes}
    assert (attrs["FlowState"], attrs["ApprovalPending"]) == ("cancelled", False)


async def test_repair_of_a_row_resolved_meanwhile_asks_nothing(fast: Fast) -> None:
    row = _refund_row(fast, status="dismissed")
    done = await (await _repair(fast, row)).result()
    assert (done.status, done.approval) == ("dismissed", None)
    assert fast.fakes.names() == [] and fast.fakes.opened == []


async def test_repair_of_a_non_financial_drift_is_refused(fast: Fast) -> None:
    row = _row(fast, "printful_cancelled_outside", actual={"printful_status": "canceled"})
    with pytest.raises(WorkflowFailureError) as failed:
        await (await _repair(fast, row)).result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == ErrorCode.DRIFT_KIND_INVALID
    assert fast.fakes.names(tools_only=False).count("autobiz.reconcile_resolve") == 0
