"""The demo day's Printful exceptions (WF06), acted out as the world acts them out.

* Order #6: the customer's address was wrong; the shop corrects it in Shopify, then
  Printful's address check puts the order on hold (signed ``order_put_hold`` webhook →
  ingress → OrderFulfill → FulfillmentException). The flow sends Shopify's corrected
  address to Printful, Printful releases the hold, the order ships and completes.
* Order #7: Printful cannot use the print file and holds the order; the exception is
  escalated, and ops decide ``cancel_and_refund`` from the CLI (``autobiz approvals
  approve <request> --as omar --choice cancel_and_refund``): OrderCancellation stops the
  fulfilment, refunds the capture and cancels at Printful.

Judged by Temporal (each flow's outcome) and the providers (Printful's address and
status, Stripe's refund), never by what this script did.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from workflows.ids import cancellation_workflow_id

if TYPE_CHECKING:
    from autobiz.demo.business_day import BusinessDay, Case

ORDER_UPDATE = """
mutation OrderUpdate($input: OrderInput!) {
  orderUpdate(input: $input) { order { id } userErrors { field message } }
}
"""
# Where the customer of order #6 really lives (the merchant types it into Shopify).
CORRECTED = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "address1": "12 Analytical Way",
    "city": "London",
    "zip": "N1 9GX",
    "countryCode": "GB",
}


async def exception_cases(day: BusinessDay) -> None:
    """Both cases, concurrently (one line in the day's ``gather``)."""
    await asyncio.gather(address_hold(day), escalated_hold(day))


async def _placed(day: BusinessDay, case: Case, amount: str) -> tuple[str, str, int]:
    """Checkout → OrderFulfill in production: (order id, PaymentIntent, Printful id)."""
    order_id, pi, status = await day._in_production(case, amount)
    return order_id, pi, int(status.detail["printful_order_id"])


async def _exception(day: BusinessDay, order: Case, exc: Case, state: str) -> dict[str, Any]:
    """The order's exception as OrderFulfill shows it, once it is in ``state``."""
    status = await day._state(
        order, lambda s: (s.detail.get("exception") or {}).get("state") == state
    )
    shown: dict[str, Any] = status.detail["exception"]
    exc.workflow_id = shown["workflow_id"]
    return shown


async def address_hold(day: BusinessDay) -> None:
    from autobiz.demo.business_day import _CaseFailed

    order = day._case("order #6: held for its address, fixed, shipped", "OrderFulfill", "completed")
    exc = day._case(
        "order #6: the hold fixed from Shopify's corrected address",
        "FulfillmentException",
        "resolved",
    )
    try:
        order_id, _, pf_id = await _placed(day, order, "20.00")
        shopify = (await day.clients.for_tenant(day.tenant)).shopify
        await shopify.execute(
            "OrderUpdate",
            ORDER_UPDATE,
            {"input": {"id": f"gid://shopify/Order/{order_id}", "shippingAddress": CORRECTED}},
        )
        day.say(f"{order.name}: the shop corrects the address in Shopify; Printful holds it")
        await day.control.advance_printful(
            pf_id, "hold", reason="Address verification failed: street not found"
        )
        shown = await _exception(day, order, exc, "resolved")
        await day._settle(exc)
        exc.facts["diagnosis"] = shown.get("cause")
        printful = next(o for o in await day.control.printful_orders() if o["id"] == pf_id)
        exc.facts["printful_status"] = printful["status"]
        if printful["recipient"]["address1"] != CORRECTED["address1"]:
            exc.problems.append("Printful does not have the corrected address")
        await day.control.advance_printful(pf_id, "ship")
        day.say(f"{order.name}: Printful released the hold and shipped it")
        await day._settle(order)
    except _CaseFailed as failed:
        (exc if exc.workflow_id else order).problems.append(str(failed))


async def escalated_hold(day: BusinessDay) -> None:
    from autobiz.demo.business_day import _CaseFailed

    order = day._case("order #7: held, escalated, cancelled", "OrderFulfill", "cancelled")
    exc = day._case(
        "order #7: the hold escalated; ops choose to cancel it, from the CLI",
        "FulfillmentException",
        "cancelling",
    )
    cancel = day._case(
        "order #7: cancelled, the capture paid back", "OrderCancellation", "cancelled"
    )
    try:
        order_id, pi, pf_id = await _placed(day, order, "22.00")
        await day.control.advance_printful(pf_id, "hold", reason="Print file too small (low DPI)")
        day.say(f"{order.name}: Printful holds it (print file)")
        shown = await _exception(day, order, exc, "awaiting_decision")
        await _choose_from_cli(day, exc, str(shown["request_id"]), "cancel_and_refund")
        await day._settle(exc)
        cancel.workflow_id = cancellation_workflow_id(day.tenant, order_id)
        await day._settle(cancel)
        await day._settle(order)
        refunded = await day._refunded_minor(pi)
        cancel.facts["stripe_refunded"] = refunded
        if refunded != 2200:
            cancel.problems.append(f"Stripe shows {refunded} refunded, expected 2200")
        printful = next(o for o in await day.control.printful_orders() if o["id"] == pf_id)
        cancel.facts["printful_status"] = printful["status"]
        if printful["status"] != "canceled":
            cancel.problems.append(f"Printful order is {printful['status']}, not canceled")
    except _CaseFailed as failed:
        target = cancel if cancel.workflow_id else exc if exc.workflow_id else order
        target.problems.append(str(failed))


async def _choose_from_cli(day: BusinessDay, case: Case, request_id: str, choice: str) -> None:
    """``autobiz approvals approve … --choice`` exactly as an operator would type it."""
    status = await day._cli_approval(
        case,
        request_id,
        "omar",
        "--choice",
        choice,
        reason="demo: the print file cannot be fixed today",
    )
    case.facts.update(approved_by="omar", choice=choice, approval=status)
