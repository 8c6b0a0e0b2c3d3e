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
import json
import time

from autobiz.demo.business_day import BusinessDay, Case
from autobiz.demo.care_cases import care_cases
from autobiz.demo.exception_cases import exception_cases
from autobiz.errors import ExitCode, exit_code_for
from kernel.codes import ErrorCode


class SoakDay(BusinessDay):
    """The demo's day, counting the operator's commands (CLI subprocesses) it runs. A
    command that finds the stack unreachable (exit 4: Temporal restarting, the database
    stopped) is typed again a little later, as an operator would, for up to
    ``retry_for`` seconds."""

    commands: int = 0
    retry_for: float = 120.0

    async def _autobiz(self, *args: str) -> tuple[bool, bytes, bytes]:
        self.commands += 1
        deadline = time.monotonic() + self.retry_for
        while True:
            ok, out, err = await super()._autobiz(*args)
            if ok or not _unreachable(out, err) or time.monotonic() > deadline:
                return ok, out, err
            await asyncio.sleep(2.0)


def _unreachable(out: bytes, err: bytes) -> bool:
    """The CLI's answer says part of the stack could not be reached (exit 4's codes)."""
    text = (out + err).decode(errors="replace")
    return any(exit_code_for(code) == ExitCode.UNAVAILABLE for code in _codes(text))


def _codes(text: str) -> list[str]:
    try:
        error = json.loads(text).get("error") or {}
    except (ValueError, AttributeError):
        return [c.value for c in ErrorCode if c.value in text]
    return [str(error.get("code"))]


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
    results = await asyncio.gather(
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
        return_exceptions=True,
    )
    cases = day.cases[first_index:]
    # A driver that broke (a provider call of the soak's own timed out under chaos) is
    # the soak's failure, not AutoBiz's: its unfinished cases say so (unexpected outcomes).
    for broken in (r for r in results if isinstance(r, BaseException)):
        for c in cases:
            if c.actual is None and not c.problems:
                c.problems.append(f"the soak's driver failed: {type(broken).__name__}: {broken}")
    # The operator's requests (refunds, the customer's cancellation) are events too.
    for c in (*(c for c in cases if c.workflow_type == "Refund"), cancel):
        if c.workflow_id is not None:
            c.facts["operator_request"] = True
    for c in cases:  # the drivers outside this module name their cases themselves
        if not c.name.startswith("[round "):
            c.name = f"{tag} {c.name}"
        c.facts.setdefault("round_seconds", round(time.monotonic() - began, 1))
    return cases
