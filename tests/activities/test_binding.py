"""Money moves only on the tenant's own objects, only for their own order.

Two tenants on one sandbox, each with its own Stripe account: the worker's clients are
built per tenant from a secrets backend, so tenant A's capture cannot even see B's
PaymentIntent; and an intent of A's account whose ``order_key`` names another order or
another tenant is refused before Stripe is asked to move anything, as an incident."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.stripe_activities import StripeActivities
from autobiz.db.database import Database
from kernel import tools
from kernel.tools.stripe import CancelPaymentInput, CapturePaymentInput
from tests.conftest import new_tenant
from tests.support.calls import call_context
from tests.support.ledger import security_incidents
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


async def _authorised(sandbox: Sandbox, clients: Any, tenant: str, order_key: str) -> str:
    stripe = await clients.stripe(tenant)
    pi = await stripe.create_payment_intent(
        amount=2500,
        currency="usd",
        order_key=order_key,
        idempotency_key=str(uuid.uuid4()),
        payment_method="pm_card_visa",
        confirm=True,
        capture_method="manual",
    )
    return str(pi.id)


async def _capture(clients: Any, db: Database, tenant: str, pi: str, order_id: str) -> None:
    input = CapturePaymentInput(
        payment_intent_id=pi, order_id=order_id, amount_minor=2500, currency="USD"
    )
    await ActivityEnvironment().run(
        StripeActivities(clients, db).capture_payment,
        call_context(tenant, tools.stripe.CAPTURE_PAYMENT, input),
        input,
    )


async def test_payment_of_another_order_is_refused_before_capture(
    sandbox: Sandbox, database: Database, tenant: str
) -> None:
    clients = await sandbox.tenant_clients(tenant)
    pi = await _authorised(sandbox, clients, tenant, f"{tenant}:1001")
    with pytest.raises(ApplicationError) as refused:
        await _capture(clients, database, tenant, pi, "2002")
    assert refused.value.type == "PAYMENT_NOT_FOR_ORDER" and refused.value.non_retryable
    intent = await (await clients.stripe(tenant)).retrieve_payment_intent(pi)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    [incident] = await security_incidents(database, tenant)
    assert incident["action"] == "security.PAYMENT_NOT_FOR_ORDER"
    assert incident["detail"]["payment_intent"] == pi
    await _capture(clients, database, tenant, pi, "1001")  # its own order: captured
    assert (await (await clients.stripe(tenant)).retrieve_payment_intent(pi)).amount_received
    await clients.aclose()


async def test_intent_naming_another_tenant_is_refused_before_void(
    sandbox: Sandbox, database: Database, tenant: str
) -> None:
    other = await new_tenant(database, "b")
    clients = await sandbox.tenant_clients(tenant)
    pi = await _authorised(sandbox, clients, tenant, f"{other}:1001")
    input = CancelPaymentInput(
        payment_intent_id=pi,
        order_id="1001",
        amount_minor=2500,
        currency="USD",
        reason="requested_by_customer",
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            StripeActivities(clients, database).cancel_payment,
            call_context(tenant, tools.stripe.CANCEL_PAYMENT, input),
            input,
        )
    assert refused.value.type == "CROSS_TENANT_REFUSED"
    intent = await (await clients.stripe(tenant)).retrieve_payment_intent(pi)
    assert intent.status == "requires_capture"
    assert [i["action"] for i in await security_incidents(database, tenant)] == [
        "security.CROSS_TENANT_REFUSED"
    ]
    await clients.aclose()


async def test_one_tenants_credentials_cannot_see_anothers_payment(
    sandbox: Sandbox, database: Database, tenant: str
) -> None:
    other = await new_tenant(database, "b")
    clients = await sandbox.tenant_clients(tenant, other)
    theirs = await _authorised(sandbox, clients, other, f"{other}:1001")
    # A's worker, asked (by a forged or buggy input) to capture B's intent for B's order.
    with pytest.raises(ApplicationError) as failed:
        await _capture(clients, database, tenant, theirs, "1001")
    assert failed.value.type == "PROVIDER_NOT_FOUND"  # A's Stripe account has no such intent
    intent = await (await clients.stripe(other)).retrieve_payment_intent(theirs)
    assert intent.status == "requires_capture" and intent.amount_received == 0
    assert (await clients.for_tenant(tenant)).stripe is not (await clients.for_tenant(other)).stripe
    await clients.aclose()
