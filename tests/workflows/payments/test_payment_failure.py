"""WF02 PaymentFailure: dunning, recovery, cancellation, the void's approval, duplicate
and ingress-style starts; provider-side state checked in the sandbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, CancelledError, WorkflowAlreadyStartedError

from autobiz.business_keys import KEY_CONFLICT_POLICY, KEY_REUSE_POLICY
from autobiz.providers.errors import CardDeclined
from autobiz.search_attributes import ORDER_ID, TENANT_ID
from ingress.handoff import EventEnvelope, WorkflowTrigger
from ingress.routing import route_for
from ingress.tenants import Source
from kernel.compiler import compile_text
from kernel.config import DunningConfig
from starters.flows import decide, flow_status, start_payment_failure
from tests.replay.recorder import maybe_record
from tests.support.approver_keys import Approvers
from tests.workflows.support import DEMO_CONFIG, FAST, Harness, eventually
from workflows.common.approvals import FLOW_CANCELLED
from workflows.common.models import ApprovalTiming
from workflows.ids import payment_failure_workflow_id
from workflows.payments.models import PaymentFailureInput, PaymentFailureResult
from workflows.payments.payment_failure import classify_decline, order_from_key

pytestmark = pytest.mark.integration

SECONDS = [timedelta(seconds=1)] * 3  # notice, 2 reminders, then the cancellation
HOURS = [timedelta(hours=1)] * 3  # nothing happens on its own during a test
CUSTOMER = "customer@example.com"
T_FAILED, T_REMINDER = "d-autobiz-payment-failed", "d-autobiz-dunning-reminder"
T_RECOVERED, T_CANCELLED = "d-autobiz-payment-recovered", "d-autobiz-order-cancelled-unpaid"


# -- helpers ---------------------------------------------------------------------------


async def _declined(h: Harness, price: str, pm: str) -> tuple[str, str]:
    """A pending Shopify order and its PaymentIntent, declined at confirmation."""
    order_id = await h.seed_order(price, financial_status="pending")
    with pytest.raises(CardDeclined) as declined:
        await h.clients.stripe.create_payment_intent(
            amount=int(price.replace(".", "")),
            currency="usd",
            order_key=f"{h.tenant}:{order_id}",
            idempotency_key=f"test-{uuid.uuid4()}",
            payment_method=pm,
            confirm=True,
            capture_method="manual",
        )
    pi = declined.value.payment_intent_id
    assert pi is not None
    return order_id, pi


async def _start(
    h: Harness,
    pi: str,
    order_id: str | None,
    dunning: list[timedelta],
    timing: ApprovalTiming = FAST,
) -> WorkflowHandle[Any, PaymentFailureResult]:
    return await start_payment_failure(
        h.client,
        h.config,
        payment_intent_id=pi,
        order_id=order_id,
        task_queue=h.task_queue,
        dunning=dunning,
        timing=timing,
    )


async def _pay(h: Harness, pi: str) -> None:
    """The customer pays again with a good card (the PaymentIntent is authorised)."""
    paid = await h.clients.stripe.confirm_payment_intent(
        pi, idempotency_key=f"test-{uuid.uuid4()}", payment_method="pm_card_visa"
    )
    assert paid.status == "requires_capture"


async def _envelope(h: Harness, pi: str, order_id: str, topic: str) -> dict[str, Any]:
    """The sandbox's Stripe event for this intent, wrapped as the ingress hands it over."""
    page = await h.clients.stripe.list_events(types=[topic], limit=100)
    event = next(e for e in page.events if e.object_id == pi)
    return EventEnvelope(
        tenant_id=h.tenant,
        event_id=abs(hash(event.id)) % 10**9,
        dedup_id=f"stripe:{event.id}",
        source=Source.STRIPE,
        provider_event_id=event.id,
        topic=topic,
        entity_key=f"payment_intent:{pi}",
        order_id=order_id,
        payment_intent=pi,
        payload_sha256="0" * 64,
        payload=event.model_dump(mode="json"),
        received_at=datetime.now(UTC),
    ).model_dump(mode="json")


async def _ingress_start(
    h: Harness, pi: str, order_id: str, envelope: dict[str, Any]
) -> WorkflowHandle[Any, Any]:
    """Signal-with-start exactly as ``ingress.handoff.TemporalHandoff.deliver`` does."""
    route = route_for(Source.STRIPE, "payment_intent.payment_failed")
    assert route is not None
    workflow_id = route.workflow_id(h.tenant, pi)
    trigger = WorkflowTrigger(
        tenant_id=h.tenant,
        workflow_id=workflow_id,
        order_id=order_id,
        payment_intent=pi,
        source=Source.STRIPE,
        topic="payment_intent.payment_failed",
        event_id=int(envelope["event_id"]),
    )
    return await h.client.start_workflow(
        route.workflow,
        trigger.model_dump(mode="json"),
        id=workflow_id,
        task_queue=h.task_queue,
        id_conflict_policy=KEY_CONFLICT_POLICY,
        id_reuse_policy=KEY_REUSE_POLICY,
        start_signal=route.signal,
        start_signal_args=[envelope],
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(TENANT_ID, h.tenant), SearchAttributePair(ORDER_ID, order_id)]
        ),
    )


async def _templates(h: Harness) -> list[str]:
    return [m["request"]["template_id"] for m in await h.sandbox.control.outbox()]


async def _customer_templates(h: Harness) -> list[str]:
    return [
        m["request"]["template_id"]
        for m in await h.sandbox.control.outbox()
        if m["recipients"] == [CUSTOMER]
    ]


async def _order_cancelled(h: Harness, order_id: str) -> bool:
    order = await h.clients.shopify.get_order(f"gid://shopify/Order/{order_id}")
    return order.cancelled_at is not None


async def _projection_row(h: Harness, order_id: str) -> dict[str, Any] | None:
    async with h.db.tenant(h.tenant) as s:
        return await s.fetch_one(
            "SELECT state, version FROM order_state WHERE tenant_id = %s AND order_id = %s",
            (h.tenant, order_id),
        )


async def _projection(h: Harness, order_id: str) -> str | None:
    row = await _projection_row(h, order_id)
    return None if row is None else str(row["state"])


# -- the flow --------------------------------------------------------------------------


async def test_soft_decline_dunned_then_cancelled_when_exhausted(harness: Harness) -> None:
    h = harness
    order_id, pi = await _declined(h, "25.00", "pm_card_chargeDeclinedInsufficientFunds")
    handle = await _start(h, pi, order_id, SECONDS)
    assert handle.id == payment_failure_workflow_id(h.tenant, pi)
    result = await handle.result()
    assert result.state == "cancelled"
    assert (result.decline_class, result.decline_code) == ("soft", "insufficient_funds")
    assert result.reminders_sent == 2 and result.order_id == order_id

    # SendGrid: the notice, two reminders, the cancellation — all to the customer.
    outbox = await h.sandbox.control.outbox()
    assert [m["request"]["template_id"] for m in outbox] == [
        T_FAILED,
        T_REMINDER,
        T_REMINDER,
        T_CANCELLED,
    ]
    assert all(m["recipients"] == [CUSTOMER] for m in outbox)
    notice = outbox[0]["request"]["personalizations"][0]["dynamic_template_data"]
    assert "pay again" in notice["pay_again"].lower() and notice["amount_minor"] == "2500"
    # Stripe: voided (abandoned); Shopify: cancelled.
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "canceled" and intent.cancellation_reason == "abandoned"
    assert await _order_cancelled(h, order_id)
    # Receipts: one per side effect; the void with amount and currency.
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts] == [
        "sendgrid.send_email",
        "sendgrid.send_email",
        "sendgrid.send_email",
        "stripe.cancel_payment",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]
    void = receipts[3]
    assert (void.amount_minor, void.currency, void.provider_object_id) == (2500, "USD", pi)
    assert await h.hitl_rows(handle.id) == []  # below the approval threshold
    assert await _projection(h, order_id) == "cancelled"
    status = await flow_status(h.client, handle.id)
    assert status.state == "cancelled" and status.error is None
    trace = await handle.query("kernel_trace")
    outcomes = [e["outcome"] for e in trace["entries"] if e["kind"] == "decision"]
    assert "decline_soft" in outcomes and "dunning_exhausted" in outcomes
    await maybe_record(h.client, handle.id, "payment_failure_exhausted")


async def test_soft_decline_recovered_when_the_customer_pays_between_reminders(
    harness: Harness,
) -> None:
    h = harness
    order_id, pi = await _declined(h, "30.00", "pm_card_chargeDeclined")
    handle = await _start(h, pi, order_id, [timedelta(seconds=1), *HOURS])
    await h.status_when(handle.id, lambda s: s.detail.get("reminders_sent") == 1)
    await _pay(h, pi)
    # The webhook as the ingress delivers it wakes the wait; the re-read decides.
    envelope = await _envelope(h, pi, order_id, "payment_intent.amount_capturable_updated")
    await handle.signal("stripe_event", envelope)
    await handle.signal("stripe_event", envelope)  # a redelivery is dropped
    result = await handle.result()
    assert (result.state, result.payment_status, result.reminders_sent) == (
        "recovered",
        "requires_capture",
        1,
    )
    assert await _templates(h) == [T_FAILED, T_REMINDER, T_RECOVERED]
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_capturable == 3000
    assert not await _order_cancelled(h, order_id)
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert "stripe.cancel_payment" not in tools and "shopify.cancel_order" not in tools
    status = await flow_status(h.client, handle.id)
    assert status.detail["stripe_events"] == ["payment_intent.amount_capturable_updated"]
    assert await _projection(h, order_id) == "recovered"


async def test_hard_decline_cancels_without_dunning(harness: Harness) -> None:
    h = harness
    order_id, pi = await _declined(h, "40.00", "pm_card_chargeDeclinedStolenCard")
    # Another flow has been projecting this order: this one continues from its version.
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "INSERT INTO order_state (tenant_id, order_id, version, state, state_hash, data) "
            "VALUES (%s, %s, 3, 'assessing', 'x', '{}')",
            (h.tenant, order_id),
        )
    # The order id comes from the PaymentIntent's metadata when the trigger has none.
    handle = await _start(h, pi, None, HOURS)
    result = await handle.result()
    assert result.state == "cancelled"
    assert (result.decline_class, result.decline_code) == ("hard", "stolen_card")
    assert result.reminders_sent == 0 and result.order_id == order_id
    assert await _templates(h) == [T_CANCELLED]  # no notice, no reminders
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "canceled"
    assert await _order_cancelled(h, order_id)
    assert [r.tool for r in await h.receipts(handle.id)] == [
        "stripe.cancel_payment",
        "shopify.cancel_order",
        "sendgrid.send_email",
    ]
    row = await _projection_row(h, order_id)
    assert row is not None and row["state"] == "cancelled" and row["version"] > 3
    trace = await handle.query("kernel_trace")
    assert "projection_skipped" not in [e["outcome"] for e in trace["entries"]]


# -- the void's approval ---------------------------------------------------------------


async def _large_void_waiting(
    h: Harness, pm: str
) -> tuple[str, str, WorkflowHandle[Any, PaymentFailureResult]]:
    """A $250 payment declined with ``pm``: its PaymentFailure waits for finance to
    approve the void; (order id, PaymentIntent, handle)."""
    order_id, pi = await _declined(h, "250.00", pm)
    handle = await _start(h, pi, order_id, HOURS)
    status = await h.status_when(
        handle.id, lambda s: s.approval is not None and s.approval.status == "pending"
    )
    assert status.state == "awaiting_approval" and status.approval is not None
    assert status.approval.roles == ("finance",) and status.approval.amount_minor == 25000
    return order_id, pi, handle


async def test_large_void_waits_for_approval_then_cancels(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi, handle = await _large_void_waiting(h, "pm_card_chargeDeclinedFraudulent")
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_payment_method"  # nothing voided while waiting
    assert not await _order_cancelled(h, order_id)
    decided = await decide(
        h.client, handle.id, await approvers.decision(h.client, handle.id, "ana", True)
    )
    assert decided.status == "approved"
    result = await handle.result()
    assert result.state == "cancelled" and result.decline_class == "hard"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "canceled" and intent.cancellation_reason == "fraudulent"
    assert await _order_cancelled(h, order_id)
    rows = await h.hitl_rows(handle.id)
    assert [(r["status"], r["decided_by"], r["amount_minor"]) for r in rows] == [
        ("approved", "ana", 25000)
    ]
    receipts = await h.receipts(handle.id)
    assert [r.tool for r in receipts][:2] == ["stripe.cancel_payment", "shopify.cancel_order"]


async def test_large_void_denied_leaves_everything_open(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi, handle = await _large_void_waiting(h, "pm_card_chargeDeclinedStolenCard")
    deny = await approvers.decision(h.client, handle.id, "ana", False, reason="collect by phone")
    await decide(h.client, handle.id, deny)
    result = await handle.result()
    assert result.state == "denied" and result.reason == "collect by phone"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_payment_method"
    assert not await _order_cancelled(h, order_id)
    assert await h.receipts(handle.id) == [] and await _templates(h) == []
    assert [r["status"] for r in await h.hitl_rows(handle.id)] == ["denied"]


async def test_large_void_approval_expiry_fails_closed(harness: Harness) -> None:
    h = harness
    order_id, pi = await _declined(h, "250.00", "pm_card_chargeDeclinedLostCard")
    timing = ApprovalTiming(
        timeout=timedelta(seconds=2), remind_before=timedelta(0), escalate_after=timedelta(0)
    )
    handle = await _start(h, pi, order_id, HOURS, timing)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "APPROVAL_EXPIRED"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_payment_method"  # fail closed: nothing voided
    assert not await _order_cancelled(h, order_id)
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert "stripe.cancel_payment" not in tools and "shopify.cancel_order" not in tools
    assert [r["status"] for r in await h.hitl_rows(handle.id)] == ["expired"]
    assert T_CANCELLED not in await _customer_templates(h)
    assert "d-autobiz-approval-expired" in await _templates(h)
    assert (await flow_status(h.client, handle.id)).state == "expired"


async def test_payment_during_the_approval_wait_is_not_voided(
    harness: Harness, approvers: Approvers
) -> None:
    h = harness
    order_id, pi, handle = await _large_void_waiting(h, "pm_card_chargeDeclinedStolenCard")
    await _pay(h, pi)
    await decide(h.client, handle.id, await approvers.decision(h.client, handle.id, "ana", True))
    result = await handle.result()
    assert result.state == "recovered" and result.payment_status == "requires_capture"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture"
    assert not await _order_cancelled(h, order_id)
    tools = [r.tool for r in await h.receipts(handle.id)]
    assert "stripe.cancel_payment" not in tools and "shopify.cancel_order" not in tools


async def test_cancelled_while_the_void_waits_closes_the_request(harness: Harness) -> None:
    """An operator cancels the run (`temporal workflow cancel`): the request is withdrawn
    and closed, nothing is voided or cancelled, and the run ends ``abandoned``."""
    h = harness
    order_id, pi, handle = await _large_void_waiting(h, "pm_card_chargeDeclinedStolenCard")

    async def waiting() -> bool | None:
        attrs = (await handle.describe()).typed_search_attributes
        pending = [p.value for p in attrs if p.key.name == "ApprovalPending"]
        return True if pending == [True] else None

    await eventually(waiting, what="the void's approval wait")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    [row] = await h.hitl_rows(handle.id)
    assert (row["status"], row["decided_by"]) == ("denied", FLOW_CANCELLED)
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_payment_method"
    assert not await _order_cancelled(h, order_id)
    assert await h.receipts(handle.id) == [] and await _templates(h) == []
    assert (await flow_status(h.client, handle.id)).state == "abandoned"
    assert await _projection(h, order_id) == "abandoned"


# -- how it is started -----------------------------------------------------------------


async def test_duplicate_starts_attach_to_one_run(harness: Harness) -> None:
    h = harness
    order_id, pi = await _declined(h, "20.00", "pm_card_chargeDeclinedInsufficientFunds")
    first = await _start(h, pi, order_id, HOURS)
    again = await _start(h, pi, order_id, HOURS)
    assert again.id == first.id and again.result_run_id == first.result_run_id
    # The ingress's delivery of the same failure lands on the running run, as a signal.
    failed = await _envelope(h, pi, order_id, "payment_intent.payment_failed")
    ingress = await _ingress_start(h, pi, order_id, failed)
    assert ingress.result_run_id == first.result_run_id
    await h.status_when(
        first.id, lambda s: s.detail.get("stripe_events") == ["payment_intent.payment_failed"]
    )
    # The customer pays once the failure notice is out (the run is dunning), not before
    # the run has read the intent: then there is nothing to recover from.
    await h.status_when(first.id, lambda s: s.state == "dunning")
    await _pay(h, pi)
    await first.signal(
        "stripe_event", await _envelope(h, pi, order_id, "payment_intent.amount_capturable_updated")
    )
    assert (await first.result()).state == "recovered"
    assert await _templates(h) == [T_FAILED, T_RECOVERED]  # one notice: one run
    # A completed key is never started again.
    with pytest.raises(WorkflowAlreadyStartedError):
        await _start(h, pi, order_id, HOURS)


async def test_started_by_the_ingress_without_a_context(harness: Harness) -> None:
    h = harness
    order_id, pi = await _declined(h, "35.00", "pm_card_chargeDeclinedVelocityLimitExceeded")
    handle = await _ingress_start(
        h, pi, order_id, await _envelope(h, pi, order_id, "payment_intent.payment_failed")
    )
    # The worker's compiled config supplies the policy and the (days-long) schedule.
    status = await h.status_when(handle.id, lambda s: s.state == "dunning")
    assert status.detail["decline_class"] == "soft"
    assert status.detail["decline_code"] == "card_velocity_exceeded"
    await h.status_when(handle.id, lambda s: s.detail.get("next_check_at") is not None)
    assert await _templates(h) == [T_FAILED]
    await _pay(h, pi)
    await handle.signal(
        "stripe_event", await _envelope(h, pi, order_id, "payment_intent.amount_capturable_updated")
    )
    result = PaymentFailureResult.model_validate(await handle.result())
    assert result.state == "recovered" and result.order_id == order_id
    assert await _templates(h) == [T_FAILED, T_RECOVERED]
    trace = await handle.query("kernel_trace")
    assert trace["principal"] == "system:payment_failure"
    assert trace["workflow_type"] == "payment_failure"


# -- pure parts ------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("decline_code", "failure_code", "expected"),
    [
        ("stolen_card", "card_declined", "hard"),
        ("lost_card", "card_declined", "hard"),
        ("fraudulent", "card_declined", "hard"),
        ("pickup_card", "card_declined", "hard"),
        ("restricted_card", "card_declined", "hard"),
        ("insufficient_funds", "card_declined", "soft"),
        ("generic_decline", "card_declined", "soft"),
        (None, "card_declined", "soft"),
        ("processing_error", "processing_error", "soft"),
        ("expired_card", "expired_card", "soft"),
        ("try_again_later", "card_declined", "soft"),
        (None, None, "soft"),
        ("something_new", "card_declined", "soft"),
    ],
)
def test_decline_classes(decline_code: str | None, failure_code: str | None, expected: str) -> None:
    assert classify_decline(decline_code, failure_code) == expected


@pytest.mark.unit
def test_order_key_parsing_refuses_another_tenant() -> None:
    assert order_from_key("shop-a:1001", "shop-a") == "1001"
    assert order_from_key("order:shop-a:1001", "shop-a") == "1001"
    assert order_from_key("1001", "shop-a") == "1001"
    assert order_from_key(None, "shop-a") is None
    with pytest.raises(ApplicationError) as refused:
        order_from_key("shop-b:1001", "shop-a")
    assert refused.value.type == "TENANT_MISMATCH"


@pytest.mark.unit
def test_trigger_fields_are_ignored_by_the_input() -> None:
    trigger = WorkflowTrigger(
        tenant_id="shop-a",
        workflow_id="payment-failure:shop-a:pi_1",
        order_id=None,
        payment_intent="pi_1",
        source=Source.STRIPE,
        topic="payment_intent.payment_failed",
        event_id=7,
    )
    parsed = PaymentFailureInput.model_validate(trigger.model_dump(mode="json"))
    assert (parsed.tenant_id, parsed.payment_intent, parsed.order_id) == ("shop-a", "pi_1", None)
    assert parsed.context is None and parsed.dunning is None


@pytest.mark.unit
def test_dunning_config_is_validated() -> None:
    text = DEMO_CONFIG.read_text()
    result = compile_text(text)
    assert result.ok and result.config is not None
    assert result.config.dunning.schedule == (
        timedelta(days=1),
        timedelta(days=2),
        timedelta(days=4),
    )
    demo_schedule = "  schedule: [1d, 2d, 4d]"
    assert demo_schedule in text
    for bad, why in [
        ("  schedule: []", "at least 1"),
        ("  schedule: [1d, 0s]", "longer than zero"),
        ("  schedule: [1d, soon]", "schedule"),
        ("  schedule: [3d, 3d, 3d]", "max_wall_time"),  # 9d > the flow's 8d bound
    ]:
        diagnostics = compile_text(text.replace(demo_schedule, bad)).diagnostics
        assert [d.code for d in diagnostics] == ["CFG-SCHEMA"], bad
        assert why in diagnostics[0].message, (bad, diagnostics[0].message)
    assert DunningConfig().total == timedelta(days=7)
