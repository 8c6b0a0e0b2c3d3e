"""A deliberately non-deterministic change to OrderFulfill, for the replay suite's
self-test. In its own module: the workflow sandbox re-imports a workflow's module, and a
test module (pytest and all) does not belong in there."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.ids import ORDER_FULFILL
    from workflows.orders.models import OrderFulfillInput, OrderFulfillResult
    from workflows.orders.order_fulfill import OrderFulfill


@workflow.defn(name=ORDER_FULFILL.type)
class OrderFulfillWithExtraTimer(OrderFulfill):
    """OrderFulfill with one change: a timer before the flow starts. Replaying a history
    recorded by the real class must fail on its first workflow task."""

    @workflow.run
    async def run(self, input: OrderFulfillInput) -> OrderFulfillResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)
