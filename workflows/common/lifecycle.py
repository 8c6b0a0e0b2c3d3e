"""The platform half of every flow, so a flow's ``run()`` holds only its business steps.

``Flow`` (no approvals) and ``ApprovalFlow`` (with the decide update and an
``ApprovalDesk``) give a workflow class:

* ``_begin``: the one prelude — search attributes, the worker's policy for this tenant
  and flow (``load_context``), the kernel's run state, and the approval desk;
* ``_move``: a business state change — trace, ``FlowState`` search attribute, and the
  flow's projection (``_project``, a no-op unless the flow writes one; ``rides=True``
  when a tool call follows at once, so the row can go with it);
* ``_end``: the last state, the trace persisted (in the last task, if the flow says so:
  ``_trace_in_last_task``), ``_on_end`` (e.g. answer a canceller),
  then every in-flight handler finished before ``run`` returns (DESIGN §11: never return
  while update handlers still run).

Deterministic: imported by workflow modules only.
"""

from __future__ import annotations

from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from kernel.call import persist_trace, start_run
    from kernel.state import RunState
    from workflows.common.approvals import ApprovalDesk
    from workflows.common.flow import load_context, mark_started, move
    from workflows.common.handlers import ApprovalHandlers, FlowHandlers
    from workflows.common.models import FlowContext
    from workflows.ids import FlowName


class FlowInput(Protocol):
    """What every flow's input carries (its pydantic model has these fields)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def principal(self) -> str: ...
    @property
    def context(self) -> FlowContext | None: ...


class Flow(FlowHandlers):
    async def _begin(
        self, flow: FlowName, input: FlowInput, *, order_id: str | None = None
    ) -> FlowContext:
        """Start the run: ``order_id`` given, the run is findable by order in the Web UI.
        The baseline patch (``_on_baseline``) is asked first, so a run started by this
        code records its one marker before anything else."""
        self._tenant = input.tenant_id
        baseline = self._on_baseline()
        if order_id is not None:
            mark_started(
                input.tenant_id, order_id, self._state, skip_if_given=self._lean_bookkeeping
            )
        context = await load_context(input.context, input.tenant_id, flow.key, local=baseline)
        self._run = start_run(context.policy, principal=input.principal)
        self._configure(context)
        return context

    def _configure(self, context: FlowContext) -> None:
        """What a flow sets up from its context before the first step (nothing here)."""

    def _on_baseline(self) -> bool:
        """Whether this run started on the flow's baseline patch: one id, asked first,
        that stands for all of the flow's earlier patch ids (each id costs a run a marker
        and an upsert of ``TemporalChangeVersion``). The earlier ids are then not asked,
        and the flow context loads as a local activity. A flow answers with its baseline
        id; an older run answers False and asks each earlier id where it always did.
        None here."""
        return False

    def _lean_bookkeeping(self) -> bool:
        """Whether this run keeps its bookkeeping lean: no upsert of search attributes
        its start already set, and projection rows that ride with the calls. A flow
        answers with its ``workflow.patched`` id (none here: every write its own)."""
        return False

    def _trace_in_last_task(self) -> bool:
        """Whether the run's last trace persist runs as a local activity, in the task
        that ends the run. A flow answers with its ``workflow.patched`` id (none here)."""
        return False

    @property
    def _kernel(self) -> RunState:
        """The kernel's state of this run (set by ``_begin``)."""
        assert self._run is not None, "_begin has not run"
        return self._run

    async def _move(self, new: str, *, rides: bool = False, indexed: bool = True) -> None:
        """``rides``: a tool call (or the trace persist) follows at once, so the flow's
        projection may ride with it (``OrderProjection.ride``) instead of being written
        by an activity of its own; leave it False before any wait. ``indexed=False``:
        no FlowState upsert, for a state the run leaves in the same workflow task."""
        previous = self._state
        self._state = move(self._kernel, previous, new, indexed=indexed)
        await self._project(new, previous, rides=rides)

    async def _project(self, state: str, previous: str, *, rides: bool = False) -> None:
        """Write the flow's projection after a move (none by default)."""

    async def _end(self, state: str) -> None:
        await self._move(state, rides=True)  # with the trace, if the flow lets it ride
        await persist_trace(self._kernel, local=self._trace_in_last_task())
        await self._on_end()
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _on_end(self) -> None:
        """After the trace is saved, before the run returns (nothing by default)."""

    async def _end_cancelled(self) -> None:
        """Cancelled from the Temporal side, with nothing to undo (a flow that has
        something overrides this): recorded, ended ``cancelled``; the caller re-raises."""
        self._kernel.decision(workflow.now(), "workflow_cancelled", {"stopped_in": self._state})
        await self._end("cancelled")


class ApprovalFlow(Flow, ApprovalHandlers):
    def _configure(self, context: FlowContext) -> None:
        self._desk = ApprovalDesk(self._tenant)
        self._desk.configure(context)

    @property
    def _approvals(self) -> ApprovalDesk:
        assert self._desk is not None, "_begin has not run"
        return self._desk
