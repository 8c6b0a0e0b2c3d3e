"""The golden scenarios: one per way each workflow must end, acted out with the demo's
drivers (customers check out, providers send signed webhooks, operators use the CLI).

The deploy gate (``autobiz gate``) runs each of them N times under injected provider
faults. A scenario passes when every case it opened reached its expected outcome, judged
by Temporal and the providers (``Case.ok``), as in the demo. P0 is order-to-cash (money
moves): it must pass every time; P1 is the rest, judged by its Wilson lower bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from autobiz.demo.business_day import BusinessDay
from autobiz.demo.care_cases import care_cases
from autobiz.demo.closeout_cases import closeout_case
from autobiz.demo.exception_cases import address_hold, escalated_hold
from kernel.codes import ErrorCode

Gate = Literal["P0", "P1"]


@dataclass(frozen=True)
class Scenario:
    name: str  # a stable slug: `autobiz gate --only <name>`
    gate: Gate
    workflows: tuple[str, ...]
    summary: str
    act: Callable[[BusinessDay], Awaitable[None]]
    # Runs once the others of its round are over (the closeout judges the day's money).
    last: bool = False


async def order_fulfilled(day: BusinessDay) -> None:
    case = day._case("golden: order paid, printed, shipped", "OrderFulfill", "completed")
    await day._fulfilled_order(case, "42.00")


async def refund_below_threshold(day: BusinessDay) -> None:
    order = day._case("golden: order before a small refund", "OrderFulfill", "completed")
    refund = day._case("golden: refund 10.00 (below threshold)", "Refund", "refunded")
    await day._refund_after(day._fulfilled_order(order, "25.00"), "10.00", refund)


async def refund_above_threshold(day: BusinessDay) -> None:
    order = day._case("golden: order before a large refund", "OrderFulfill", "completed")
    refund = day._case(
        "golden: refund 60.00 (above threshold), approved from the CLI", "Refund", "refunded"
    )
    await day._refund_after(day._fulfilled_order(order, "80.00"), "60.00", refund, approve_as="ana")


async def refund_unanswered(day: BusinessDay) -> None:
    order = day._case("golden: order before an unanswered refund", "OrderFulfill", "completed")
    refund = day._case(
        "golden: refund 55.00 nobody approves, fails closed",
        "Refund",
        f"failed:{ErrorCode.APPROVAL_EXPIRED}",
    )
    await day._refund_after(day._fulfilled_order(order, "55.00"), "55.00", refund)


async def payment_failure_dunning(day: BusinessDay) -> None:
    await day._payment_failure(
        day._case("golden: card declined, dunned, cancelled", "PaymentFailure", "cancelled")
    )


async def cancellation(day: BusinessDay) -> None:
    await day._cancellation(
        day._case("golden: order held for review, stopped", "OrderFulfill", "cancelled"),
        day._case(
            "golden: customer cancels, authorisation voided (approved)",
            "OrderCancellation",
            "cancelled",
        ),
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "order-fulfilled",
        "P0",
        ("OrderFulfill",),
        "checkout, capture, Printful order, shipment webhook: completed",
        order_fulfilled,
    ),
    Scenario(
        "refund-below-threshold",
        "P0",
        ("OrderFulfill", "Refund"),
        "a refund under the approval threshold goes straight to Stripe",
        refund_below_threshold,
    ),
    Scenario(
        "refund-above-threshold",
        "P0",
        ("OrderFulfill", "Refund"),
        "a refund over the threshold waits for `approvals approve`, then refunds",
        refund_above_threshold,
    ),
    Scenario(
        "refund-unanswered",
        "P0",
        ("OrderFulfill", "Refund"),
        "an unanswered refund approval fails closed: no money moves",
        refund_unanswered,
    ),
    Scenario(
        "payment-failure-dunning",
        "P0",
        ("PaymentFailure",),
        "a declined card is dunned, then the order cancelled",
        payment_failure_dunning,
    ),
    Scenario(
        "cancellation",
        "P0",
        ("OrderFulfill", "OrderCancellation"),
        "an order held for review is cancelled; the authorisation voided after approval",
        cancellation,
    ),
    Scenario(
        "wismo",
        "P1",
        ("OrderFulfill", "WISMO"),
        "two customer emails: one answered with the tracking, one reviewed and edited",
        care_cases,
    ),
    Scenario(
        "exception-address-hold",
        "P1",
        ("OrderFulfill", "FulfillmentException"),
        "a Printful address hold fixed from Shopify's corrected address, then shipped",
        address_hold,
    ),
    Scenario(
        "exception-escalated",
        "P1",
        ("OrderFulfill", "FulfillmentException", "OrderCancellation"),
        "a Printful file hold escalated; ops cancel and refund from the CLI",
        escalated_hold,
    ),
    Scenario(
        "daily-closeout",
        "P1",
        ("DailyCloseout",),
        "the day closed from the CLI, its figures judged against Stripe",
        closeout_case,
        last=True,
    ),
)


def by_name(names: list[str] | None) -> list[Scenario]:
    """The scenarios named (all when ``names`` is empty), in the suite's order; an
    unknown name raises ``KeyError`` with the name."""
    if not names:
        return list(SCENARIOS)
    known = {s.name: s for s in SCENARIOS}
    for name in names:
        if name not in known:
            raise KeyError(name)
    return [s for s in SCENARIOS if s.name in names]
