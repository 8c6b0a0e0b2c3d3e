"""What OrderFulfill has learnt and done so far (its result, ``status`` detail and row).

Kept out of the workflow's module, which the sandbox imports afresh for every run: a
dataclass is built by generating and compiling its methods, 0.8 ms a run here
(bench/README.md, issue 15). The module holds no state of its own; each run makes its
own ``Fulfilment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fulfilment:
    """What the flow has learnt and done so far: the result, the ``status`` query's detail
    and the order's projection are all read from here."""

    order_name: str | None = None
    total_minor: int | None = None
    currency: str | None = None
    risk: str | None = None
    captured_minor: int | None = None
    printful_order_id: int | None = None
    tracking_number: str | None = None
    fulfillment_id: str | None = None
    email_message_id: str | None = None
    stripe_events: list[str] = field(default_factory=list)
    compensated: list[str] | None = None
    cancelled_in: str | None = None
    exception: dict[str, Any] | None = None  # the latest FulfillmentException, as it stands

    SHOWN = ("order_name", "total_minor", "currency", "risk", "captured_minor")
    SHOWN_LATER = ("printful_order_id", "tracking_number", "stripe_events", "compensated")

    def shown(self) -> dict[str, Any]:
        """The detail operators see (unknown facts left out)."""
        names = (*self.SHOWN, *self.SHOWN_LATER, "cancelled_in", "exception")
        return {n: v for n in names if (v := getattr(self, n)) is not None and v != []}
