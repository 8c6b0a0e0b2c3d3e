"""The tools the workflows call, one module per provider, each tool a typed object:
``kernel_call(run, tools.stripe.CAPTURE_PAYMENT, CapturePaymentInput(...))`` returns a
``CapturePaymentOutput`` to the type checker. Inputs carry the ids an activity needs to
look up existing provider objects before it writes; money is integer minor units plus an
ISO 4217 currency code.
"""

from __future__ import annotations

from kernel.contracts import ToolContract
from kernel.registry import ToolRegistry
from kernel.tools import llm, printful, risk, sendgrid, shopify, stripe

CATALOG: tuple[ToolContract, ...] = (  # type: ignore[type-arg]
    shopify.GET_ORDER,
    shopify.SEARCH_ORDERS,
    risk.ASSESS,
    stripe.CAPTURE_PAYMENT,
    stripe.CANCEL_PAYMENT,
    stripe.CREATE_REFUND,
    stripe.GET_PAYMENT_INTENT,
    stripe.LIST_REFUNDS,
    stripe.LIST_BALANCE_TRANSACTIONS,
    printful.CREATE_ORDER,
    printful.CONFIRM_ORDER,
    printful.CANCEL_ORDER,
    printful.GET_ORDER,
    printful.GET_ORDER_COSTS,
    printful.UPDATE_ORDER,
    shopify.CREATE_FULFILLMENT,
    shopify.REFUND_CREATE,
    shopify.CANCEL_ORDER,
    sendgrid.SEND_EMAIL,
    llm.COMPLETE,
)

REGISTRY = ToolRegistry(CATALOG)

__all__ = [
    "CATALOG",
    "REGISTRY",
    "WORKFLOW_TOOLS",
    "llm",
    "printful",
    "risk",
    "sendgrid",
    "shopify",
    "stripe",
]

WORKFLOW_TOOLS: dict[str, frozenset[str]] = {
    "order_fulfill": frozenset(
        {
            shopify.GET_ORDER.ref,
            risk.ASSESS.ref,
            stripe.CAPTURE_PAYMENT.ref,
            printful.CREATE_ORDER.ref,
            printful.CONFIRM_ORDER.ref,
            printful.GET_ORDER.ref,
            shopify.CREATE_FULFILLMENT.ref,
            sendgrid.SEND_EMAIL.ref,
            # compensations: cancel the Printful draft, refund the capture
            printful.CANCEL_ORDER.ref,
            stripe.CREATE_REFUND.ref,
        }
    ),
    "payment_failure": frozenset(
        {
            shopify.GET_ORDER.ref,
            stripe.GET_PAYMENT_INTENT.ref,
            stripe.CANCEL_PAYMENT.ref,
            shopify.CANCEL_ORDER.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
    "refund": frozenset(
        {
            shopify.GET_ORDER.ref,
            stripe.CREATE_REFUND.ref,
            shopify.REFUND_CREATE.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
    "order_cancellation": frozenset(
        {
            shopify.GET_ORDER.ref,
            printful.GET_ORDER.ref,
            printful.CANCEL_ORDER.ref,
            stripe.GET_PAYMENT_INTENT.ref,
            stripe.CANCEL_PAYMENT.ref,
            stripe.CREATE_REFUND.ref,
            shopify.CANCEL_ORDER.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
    "wismo": frozenset(
        {
            shopify.SEARCH_ORDERS.ref,
            printful.GET_ORDER.ref,
            llm.COMPLETE.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
    "reconciliation": frozenset(
        {
            # provider truth
            stripe.LIST_REFUNDS.ref,
            stripe.GET_PAYMENT_INTENT.ref,
            printful.GET_ORDER.ref,
            shopify.GET_ORDER.ref,
            # the financial repair (always approved first), ops and approval notices
            shopify.REFUND_CREATE.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
    # the day's provider truth and the report email (a drift's repair: reconciliation's)
    "daily_closeout": frozenset(
        {
            shopify.SEARCH_ORDERS.ref,
            stripe.LIST_BALANCE_TRANSACTIONS.ref,
            stripe.LIST_REFUNDS.ref,
            printful.GET_ORDER_COSTS.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
    # reads only our own database (internal activities); tells ops by email
    "invariant_monitor": frozenset({sendgrid.SEND_EMAIL.ref}),
    # WF06: triage reads, the safe fixes (address, re-submit), the customer's or ops' email
    "fulfillment_exception": frozenset(
        {
            shopify.GET_ORDER.ref,
            printful.GET_ORDER.ref,
            printful.UPDATE_ORDER.ref,
            printful.CONFIRM_ORDER.ref,
            sendgrid.SEND_EMAIL.ref,
        }
    ),
}
