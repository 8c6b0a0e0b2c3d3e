"""A test-only flow that asks one approval with options and a draft, and returns what the
approver decided (the desk's ``obtain(options=, draft=)``, as WISMO and the fulfilment
exception flow use it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from kernel.frozen import Frozen
    from workflows.common.flow import approval_notifier
    from workflows.common.lifecycle import ApprovalFlow
    from workflows.common.models import ApprovalView, FlowContext
    from workflows.ids import REFUND


class PickInput(Frozen):
    tenant_id: str
    principal: str = "test"
    context: FlowContext | None = None
    options: tuple[str, ...] = ()
    draft: str | None = None


@workflow.defn(name="PickTest")
class PickTest(ApprovalFlow):
    @workflow.run
    async def run(self, input: PickInput) -> ApprovalView:
        await self._begin(REFUND, input)  # any flow's policy: this one asks no tool
        view = await self._approvals.obtain(
            action="pick",
            roles=("finance",),
            expires_in=timedelta(seconds=60),
            amount_minor=None,
            currency=None,
            notify=approval_notifier(self._kernel),
            options=input.options,
            draft=input.draft,
        )
        await self._end(view.status)
        return view
