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
from typing import Any, Protocol, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.config_activities import flow_context
from autobiz.business_keys import KEY_CONFLICT_POLICY, KEY_REUSE_POLICY
from autobiz.db.database import Database
from autobiz.search_attributes import initial_attributes
from kernel.codes import ErrorCode
from kernel.config import BusinessConfig, DunningConfig
from kernel.tools.printful import PrintfulRecipient
from starters.refund_checks import check_refund_request
from workflows.common.handlers import ApprovalHandlers, FlowHandlers
from workflows.common.models import (
    ApprovalTiming,
    Decision,
    DecisionResult,
    FlowStatus,
)
from workflows.ids import ORDER_CANCELLATION, ORDER_FULFILL, PAYMENT_FAILURE, REFUND, FlowName
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


class _KeyedInput(Protocol):
    """What every flow's input names: its tenant, and its order (None: not known yet)."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def order_id(self) -> str | None: ...


async def _start(
    client: Client,
    flow: FlowName,
    input: _KeyedInput,
    business_key: str,
    task_queue: str,
    result_type: type[R],
) -> WorkflowHandle[Any, R]:
    """Start ``flow`` by its business key: a running run is attached to, a completed one
    is never started again (``WorkflowAlreadyStartedError``), a failed one runs again."""
    return await client.start_workflow(
        flow.type,
        input,
        id=flow.workflow_id(input.tenant_id, business_key),
        task_queue=task_queue,
        result_type=result_type,
        id_conflict_policy=KEY_CONFLICT_POLICY,
        id_reuse_policy=KEY_REUSE_POLICY,
        search_attributes=initial_attributes(input.tenant_id, input.order_id or ""),
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
    """Fulfil an order (capture, Printful, ship); the ingress starts the same workflow on
    Shopify ``orders/paid``. ``options``: further ``OrderFulfillInput`` fields."""
    input = OrderFulfillInput(
        tenant_id=config.tenant,
        order_id=order_id,
        payment_intent=payment_intent,
        ship_to=ship_to,
        context=flow_context(config, ORDER_FULFILL.key, timing),
        principal=principal,
        **options,
    )
    return await _start(client, ORDER_FULFILL, input, order_id, task_queue, OrderFulfillResult)


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
    request_id = refund_request_id or f"rr-{uuid.uuid4().hex[:16]}"
    input = RefundInput(
        tenant_id=config.tenant,
        refund_request_id=request_id,
        order_id=order_id,
        payment_intent_id=payment_intent_id,
        amount_minor=amount_minor,
        currency=currency,
        context=flow_context(config, REFUND.key, timing),
        principal=principal,
        note=note,
    )
    return await _start(client, REFUND, input, request_id, task_queue, RefundResult)


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
    context = flow_context(config, PAYMENT_FAILURE.key, timing)
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
        client, PAYMENT_FAILURE, input, payment_intent_id, task_queue, PaymentFailureResult
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
    input = OrderCancellationInput.model_validate(
        {
            "tenant_id": config.tenant,
            "order_id": order_id,
            "payment_intent_id": payment_intent_id,
            "reason": reason.upper(),
            "context": flow_context(config, ORDER_CANCELLATION.key, timing),
            "principal": principal,
        }
    )
    return await _start(
        client, ORDER_CANCELLATION, input, order_id, task_queue, OrderCancellationResult
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
                ApprovalHandlers.decide, decision, id=update_id
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
