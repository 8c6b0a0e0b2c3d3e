"""The closeout's provider reads as activities, against the sandbox over HTTP:
``printful.get_order_costs@1`` (the v2 order's ``costs`` as minor units, billed from
confirmation on, an order never sent reported missing) and
``stripe.list_balance_transactions@1`` (a window, every page, truncated at the bound)."""

from __future__ import annotations

import time

import pytest
from temporalio.testing import ActivityEnvironment

from activities.printful_activities import PrintfulActivities
from activities.stripe_activities import StripeActivities
from autobiz.db.database import Database
from autobiz.providers.printful_client import OrderItem, Recipient
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.tools.printful import OrderCostsInput
from kernel.tools.stripe import ListBalanceTransactionsInput
from sandbox.stripe_objects import card_fee
from tests.support.calls import call_context
from tests.support.orders import card_payment

pytestmark = pytest.mark.integration

SHIP_TO = Recipient(
    name="Ada Lovelace", address1="1 Analytical Way", city="London", zip="N1", country_code="GB"
)


async def test_printful_costs_by_external_id(
    clients: TenantClients, database: Database, tenant: str
) -> None:
    printful = (await clients.for_tenant(tenant)).printful
    confirmed = await printful.create_order(
        external_id="c1-closeout",
        recipient=SHIP_TO,
        items=[OrderItem(catalog_variant_id=4012, quantity=2)],
    )
    await printful.confirm_order(confirmed.id)
    await printful.create_order(
        external_id="d1-closeout",
        recipient=SHIP_TO,
        items=[OrderItem(catalog_variant_id=4012, quantity=1)],
    )
    input = OrderCostsInput(external_ids=["c1-closeout", "d1-closeout", "never-sent"])
    ctx = call_context(
        tenant, tools.printful.GET_ORDER_COSTS, input, workflow_type="daily_closeout"
    )
    out = await ActivityEnvironment().run(
        PrintfulActivities(clients, database).get_order_costs, ctx, input
    )

    by_id = {c.external_id: c for c in out.orders}
    paid, draft = by_id["c1-closeout"], by_id["d1-closeout"]
    # The sandbox's price list: 12.50 an item + 4.99 shipping (costs.total as Printful sums it).
    assert (paid.status, paid.billed, paid.currency) == ("pending", True, "USD")
    assert (paid.subtotal_minor, paid.shipping_minor, paid.total_minor) == (2500, 499, 2999)
    assert paid.printful_order_id == confirmed.id and paid.calculation_status == "done"
    assert (draft.status, draft.billed, draft.total_minor) == ("draft", False, 1749)
    assert out.missing == ["never-sent"]


async def test_balance_transactions_of_a_window_in_pages(
    clients: TenantClients, database: Database, tenant: str
) -> None:
    stripe = (await clients.for_tenant(tenant)).stripe
    start = int(time.time()) - 1
    for amount in (1000, 2000, 3000):
        await card_payment(stripe, amount, f"{tenant}:o-{amount}", capture=True)
    activities = StripeActivities(clients, database)

    async def listed(max_results: int, lt: int) -> tuple[list[int], list[int], bool]:
        input = ListBalanceTransactionsInput(
            created_gte=start, created_lt=lt, max_results=max_results
        )
        ctx = call_context(
            tenant, tools.stripe.LIST_BALANCE_TRANSACTIONS, input, workflow_type="daily_closeout"
        )
        out = await ActivityEnvironment().run(activities.list_balance_transactions, ctx, input)
        return (
            sorted(t.amount_minor for t in out.transactions),
            sorted(t.fee_minor for t in out.transactions),
            out.truncated,
        )

    end = int(time.time()) + 60
    amounts, fees, truncated = await listed(100, end)
    assert amounts == [1000, 2000, 3000] and not truncated
    assert fees == sorted(card_fee(a) for a in (1000, 2000, 3000))
    some, _, cut = await listed(2, end)
    assert len(some) == 2 and cut  # the bound says so, never silently
    assert (await listed(100, start))[0] == []  # created_lt is exclusive
