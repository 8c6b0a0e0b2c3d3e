"""Start each flow by its business key, and send approvals (the CLI calls these).

A second start for the same key attaches to the running workflow (id-conflict policy
USE_EXISTING); a key whose last run completed is never started again, one whose last
run failed or was terminated may be (ALLOW_DUPLICATE_FAILED_ONLY; why that is safe for
each flow: ``autobiz.business_keys``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from activities.config_activities import flow_context
from autobiz.business_keys import KEY_CONFLICT_POLICY, KEY_REUSE_POLICY
from autobiz.db.database import Database
from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
from kernel.codes import ErrorCode
from kernel.config import BusinessConfig, DunningConfig
from kernel.tools.printful import PrintfulRecipient
from starters.refund_checks import check_refund_request
from workflows.common.handlers import DECIDE_UPDATE, FlowHandlers
from workflows.common.models import (
    ApprovalTiming,
    Decision,
    DecisionResult,
    FlowContext,
    FlowStatus,
)
from workflows.ids import (
    ORDER_CANCELLATION,
    ORDER_FULFILL,
    PAYMENT_FAILURE,
    REFUND,
    cancellation_workflow_id,
    order_workflow_id,
    payment_failure_workflow_id,
    refund_workflow_id,
)
from workflows.orders.models import (
    OrderCancellationInput,
    OrderCancellationResult,
    OrderFulfillInput,
    OrderFulfillResult,
)
from workflows.payments.models import (
    PaymentFailureInput,
    PaymentFailureResult,
    RefundInput,
    RefundResult,
)

R = TypeVar("R")


def _attributes(tenant_id: str, order_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT_ID, tenant_id),
            SearchAttributePair(ORDER_ID, order_id),
            SearchAttributePair(FLOW_STATE, "received"),
            SearchAttributePair(APPROVAL_PENDING, False),
        ]
    )


def _context(
    config: BusinessConfig, workflow_type: str, timing: ApprovalTiming | None
) -> FlowContext:
    context = flow_context(config, workflow_type)
    return context if timing is None else context.model_copy(update={"timing": timing})


async def _start(
    client: Client,
    workflow: str,
    input: Any,
    workflow_id: str,
    task_queue: str,
    result_type: type[R],
    tenant_id: str,
    order_id: str,
) -> WorkflowHandle[Any, R]:
    """Start by business key: a running run is attached to, a completed one is never
    started again (``WorkflowAlreadyStartedError``), a failed one runs again."""
    return await client.start_workflow(
        workflow,
        input,
        id=workflow_id,
        task_queue=task_queue,
        result_type=result_type,
        id_conflict_policy=KEY_CONFLICT_POLICY,
        id_reuse_policy=KEY_REUSE_POLICY,
        search_attributes=_attributes(tenant_id, order_id),
    )


async def start_order(
    client: Client,
    config: BusinessConfig,
    *,
    order_id: str,
    task_queue: str,
    payment_intent: str | None = None,
    ship_to: PrintfulRecipient | None = None,
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
    **options: Any,
) -> WorkflowHandle[Any, OrderFulfillResult]:
    context = _context(config, "order_fulfill", timing)
    input = OrderFulfillInput(
        tenant_id=config.tenant,
        order_id=order_id,
        payment_intent=payment_intent,
        ship_to=ship_to,
        context=context,
        principal=principal,
        **options,
    )
    return await _start(
        client,
        ORDER_FULFILL.type,
        input,
        order_workflow_id(config.tenant, order_id),
        task_queue,
        OrderFulfillResult,
        config.tenant,
        order_id,
    )


async def request_refund(
    client: Client,
    config: BusinessConfig,
    *,
    order_id: str,
    payment_intent_id: str,
    amount_minor: int,
    currency: str,
    task_queue: str,
    refund_request_id: str | None = None,
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
    note: str | None = None,
    ledger: Database | None = None,
) -> WorkflowHandle[Any, RefundResult]:
    """Start a Refund. With ``ledger`` (the CLI always passes it) the money invariants
    are checked on our receipts first and a refused request raises
    :class:`~starters.refund_checks.RefundRefused` before anything is started
    (``PAYMENT_UNKNOWN``, ``PAYMENT_NOT_FOR_ORDER``, ``CURRENCY_MISMATCH``,
    ``AMOUNT_INVALID``, ``REFUND_EXCEEDS_REFUNDABLE``). Either way the workflow checks
    again against Stripe right before the money moves."""
    if ledger is not None:
        await check_refund_request(
            ledger,
            tenant_id=config.tenant,
            order_id=order_id,
            payment_intent_id=payment_intent_id,
            amount_minor=amount_minor,
            currency=currency,
        )
    context = _context(config, "refund", timing)
    request_id = refund_request_id or f"rr-{uuid.uuid4().hex[:16]}"
    input = RefundInput(
        tenant_id=config.tenant,
        refund_request_id=request_id,
        order_id=order_id,
        payment_intent_id=payment_intent_id,
        amount_minor=amount_minor,
        currency=currency,
        context=context,
        principal=principal,
        note=note,
    )
    return await _start(
        client,
        REFUND.type,
        input,
        refund_workflow_id(config.tenant, request_id),
        task_queue,
        RefundResult,
        config.tenant,
        order_id,
    )


async def start_payment_failure(
    client: Client,
    config: BusinessConfig,
    *,
    payment_intent_id: str,
    order_id: str | None,
    task_queue: str,
    dunning: DunningConfig | Sequence[timedelta] | None = None,
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
) -> WorkflowHandle[Any, PaymentFailureResult]:
    """Dun (or cancel) a declined PaymentIntent; the ingress starts the same workflow on
    ``payment_intent.payment_failed``. ``dunning``: the waits, instead of the config's."""
    context = _context(config, "payment_failure", timing)
    if dunning is not None and not isinstance(dunning, DunningConfig):
        dunning = DunningConfig(schedule=tuple(dunning))
    input = PaymentFailureInput(
        tenant_id=config.tenant,
        payment_intent=payment_intent_id,
        order_id=order_id,
        context=context,
        dunning=dunning,
        principal=principal,
    )
    return await _start(
        client,
        PAYMENT_FAILURE.type,
        input,
        payment_failure_workflow_id(config.tenant, payment_intent_id),
        task_queue,
        PaymentFailureResult,
        config.tenant,
        order_id or "",
    )


async def request_cancellation(
    client: Client,
    config: BusinessConfig,
    *,
    order_id: str,
    task_queue: str,
    payment_intent_id: str | None = None,
    reason: str = "CUSTOMER",
    timing: ApprovalTiming | None = None,
    principal: str = "cli:operator",
) -> WorkflowHandle[Any, OrderCancellationResult]:
    """Cancel an order (stop its fulfilment, cancel at Printful, void or refund, cancel in
    Shopify); the ingress starts the same workflow on Shopify ``orders/cancelled``.
    ``reason`` is Shopify's (CUSTOMER, DECLINED, FRAUD, INVENTORY, OTHER, STAFF); an
    unknown one raises ``pydantic.ValidationError`` before anything starts."""
    context = _context(config, "order_cancellation", timing)
    input = OrderCancellationInput.model_validate(
        {
            "tenant_id": config.tenant,
            "order_id": order_id,
            "payment_intent_id": payment_intent_id,
            "reason": reason.upper(),
            "context": context,
            "principal": principal,
        }
    )
    return await _start(
        client,
        ORDER_CANCELLATION.type,
        input,
        cancellation_workflow_id(config.tenant, order_id),
        task_queue,
        OrderCancellationResult,
        config.tenant,
        order_id,
    )


NOT_READY_WAIT = timedelta(seconds=10)


async def decide(
    client: Client,
    workflow_id: str,
    decision: Decision,
    *,
    update_id: str | None = None,
) -> DecisionResult:
    """Send a decision as the ``decide`` update; a rejected one raises
    ``WorkflowUpdateFailedError`` and leaves no trace in the workflow's history. A
    decision that arrives while its request is still opening (the flow shows it, its key
    registry is on its way) is sent again for up to ``NOT_READY_WAIT``."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = asyncio.get_running_loop().time() + NOT_READY_WAIT.total_seconds()
    while True:
        try:
            result: DecisionResult = await handle.execute_update(
                DECIDE_UPDATE, decision, id=update_id, result_type=DecisionResult
            )
            return result
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            not_ready = (
                isinstance(cause, ApplicationError) and cause.type == ErrorCode.DECISION_NOT_READY
            )
            if not not_ready or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.1)


async def flow_status(client: Client, workflow_id: str) -> FlowStatus:
    handle = client.get_workflow_handle(workflow_id)
    status: FlowStatus = await handle.query(FlowHandlers.status)
    return status
