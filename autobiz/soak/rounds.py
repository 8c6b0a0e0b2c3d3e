"""One soak round: the demo's business day without its closeout, acted out again.

A round is every flow the demo drives (``autobiz.demo``'s drivers, unchanged): three
orders paid, printed, shipped and refunded (one approved from the CLI, one below the
threshold, one left to expire), a declined card dunned and cancelled, a large order held
and cancelled (approved from the CLI), the second merchant's order and its forged
webhook, two Printful holds (one fixed, one escalated and cancelled from the CLI) and
two WISMO emails (one answered, one reviewed and edited from the CLI). Each case knows
the outcome it must reach. The closeout runs once, after the last round
(:mod:`autobiz.soak.runner`).
"""

from __future__ import annotations

import asyncio
import time

from autobiz.demo.business_day import BusinessDay, Case
from autobiz.demo.care_cases import care_cases
from autobiz.demo.exception_cases import exception_cases
from kernel.codes import ErrorCode


class SoakDay(BusinessDay):
    """The demo's day, counting the operator's commands (CLI subprocesses) it runs."""

    commands: int = 0

    async def _autobiz(self, *args: str) -> tuple[bool, bytes, bytes]:
        self.commands += 1
        return await super()._autobiz(*args)


async def play_round(day: SoakDay, number: int) -> list[Case]:
    """Every case of one round, concurrently; the cases it added to ``day.cases``."""
    first_index = len(day.cases)
    began = time.monotonic()
    tag = f"[round {number}]"

    def case(name: str, workflow_type: str, expected: str) -> Case:
        return day._case(f"{tag} {name}", workflow_type, expected)

    first = case("order #1: paid, printed, shipped", "OrderFulfill", "completed")
    others = day._second_merchant(first)
    second = case("order #2: paid, printed, shipped", "OrderFulfill", "completed")
    third = case("order #3: paid, printed, shipped", "OrderFulfill", "completed")
    await asyncio.gather(
        day._refund_after(
            day._fulfilled_order(first, "80.00"),
            "60.00",
            case("refund 60.00 on order #1: approved from the CLI", "Refund", "refunded"),
            approve_as="ana",
        ),
        day._refund_after(
            day._fulfilled_order(second, "25.00"),
            "10.00",
            case("refund 10.00 on order #2 (below threshold)", "Refund", "refunded"),
        ),
        day._refund_after(
            day._fulfilled_order(third, "55.00"),
            "55.00",
            case(
                "refund 55.00 on order #3: nobody answers, fails closed",
                "Refund",
                f"failed:{ErrorCode.APPROVAL_EXPIRED}",
            ),
        ),
        day._payment_failure(
            case("order #4: card declined, dunning, cancelled", "PaymentFailure", "cancelled")
        ),
        day._cancellation(
            case("order #5 (650.00, held for review): stopped", "OrderFulfill", "cancelled"),
            cancel := case(
                "order #5: customer cancels, voided (approved)", "OrderCancellation", "cancelled"
            ),
        ),
        others,
        exception_cases(day),
        care_cases(day),
    )
    cases = day.cases[first_index:]
    # The operator's requests (refunds, the customer's cancellation) are events too.
    for c in (*(c for c in cases if c.workflow_type == "Refund"), cancel):
        if c.workflow_id is not None:
            c.facts["operator_request"] = True
    for c in cases:  # the drivers outside this module name their cases themselves
        if not c.name.startswith("[round "):
            c.name = f"{tag} {c.name}"
        c.facts.setdefault("round_seconds", round(time.monotonic() - began, 1))
    return cases
