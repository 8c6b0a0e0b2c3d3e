"""Activities directly (ActivityEnvironment): keys checked, errors mapped, writes once."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.approval_activities import ApprovalActivities
from activities.printful_activities import PrintfulActivities
from activities.stripe_activities import StripeActivities
from autobiz.db.database import Database
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.tools.printful import CreatePrintfulOrderInput, PrintfulItem, PrintfulRecipient
from kernel.tools.stripe import CapturePaymentInput
from tests.support.calls import call_context
from tests.support.sandbox import Sandbox
from workflows.common.models import OrderStateWrite

pytestmark = pytest.mark.integration


def _capture(payment_intent_id: str) -> CapturePaymentInput:
    """A $1 capture for order 1."""
    return CapturePaymentInput(
        payment_intent_id=payment_intent_id, order_id="1", amount_minor=100, currency="USD"
    )


async def test_forged_keys_are_refused_without_retry(
    clients: TenantClients, database: Database, tenant: str
) -> None:
    stripe = StripeActivities(clients, database)
    input = _capture("pi_x")
    ctx = call_context(tenant, tools.stripe.CAPTURE_PAYMENT, input).model_copy(
        update={"external_key": "autobiz:forged"}
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(stripe.capture_payment, ctx, input)
    assert refused.value.type == "GATE_BYPASSED" and refused.value.non_retryable


async def test_missing_payment_intent_is_not_retried(
    clients: TenantClients, database: Database, tenant: str
) -> None:
    stripe = StripeActivities(clients, database)
    input = _capture("pi_missing")
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            stripe.capture_payment, call_context(tenant, tools.stripe.CAPTURE_PAYMENT, input), input
        )
    assert failed.value.type == "PROVIDER_NOT_FOUND" and failed.value.non_retryable


async def test_printful_create_finds_the_existing_order(
    clients: TenantClients, database: Database, tenant: str, sandbox: Sandbox
) -> None:
    printful = PrintfulActivities(clients, database)
    input = CreatePrintfulOrderInput(
        external_id="ext-123",
        recipient=PrintfulRecipient(
            name="A", address1="1 St", city="X", zip="1", country_code="US"
        ),
        items=[PrintfulItem(catalog_variant_id=4012, quantity=1)],
    )
    env = ActivityEnvironment()
    first = await env.run(
        printful.create_order,
        call_context(tenant, tools.printful.CREATE_ORDER, input, step="a"),
        input,
    )
    # Another step (other keys, past the idempotency store): still the same order.
    second = await env.run(
        printful.create_order,
        call_context(tenant, tools.printful.CREATE_ORDER, input, step="b"),
        input,
    )
    assert first.printful_order_id == second.printful_order_id
    assert len(await sandbox.control.printful_orders()) == 1


async def test_order_state_is_optimistic(database: Database, tenant: str) -> None:
    acts = ApprovalActivities(database)
    env = ActivityEnvironment()
    w = OrderStateWrite(tenant_id=tenant, order_id="o1", state="received", expected_version=0)
    assert (await env.run(acts.write_order_state, w)).version == 1
    again = await env.run(acts.write_order_state, w)  # a retried write: same outcome
    assert again.version == 1 and not again.applied
    moved = w.model_copy(update={"state": "paid", "expected_version": 1})
    assert (await env.run(acts.write_order_state, moved)).version == 2
    stale = w.model_copy(update={"state": "failed", "expected_version": 1})
    with pytest.raises(ApplicationError) as conflict:
        await env.run(acts.write_order_state, stale)
    assert conflict.value.type == "ORDER_STATE_CONFLICT"
