"""The handlers every order-to-cash flow shares, as base classes (Temporal collects
signal, query and update handlers from base classes too):

* ``FlowHandlers``: the ``status`` and ``kernel_trace`` queries over the run's state;
* ``ApprovalHandlers``: those plus approvals — the ``decide`` update, its validator (a
  decision that is not valid, or whose proof does not check out, is rejected before
  anything is written to history), the fire-and-forget ``decide_signal``, and the
  argument-less ``approver_keys_changed`` signal (re-read the approver key registry).

A flow sets ``_run``, ``_state``, ``_tenant``, ``_detail``, ``_error`` (and ``_desk``) as
it goes; it overrides ``_status_detail`` to show more than ``_detail``.

Deterministic: imported by workflow modules only.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from kernel.codes import ErrorCode
    from kernel.state import RunState, RunSummary
    from workflows.common.approvals import ApprovalDesk
    from workflows.common.models import ApprovalView, Decision, DecisionResult, FlowStatus


# The approval update's name as histories and `temporal workflow update --name` know it.
# Callers use the method: ``handle.execute_update(ApprovalHandlers.decide, decision)``
# (synchronous, so its reference type-checks; it decides without awaiting anything).
DECIDE_UPDATE = "decide"


class FlowHandlers:
    def __init__(self) -> None:
        self._run: RunState | None = None
        self._state = "received"
        self._tenant = ""
        self._detail: dict[str, Any] = {}
        self._error: str | None = None

    @workflow.query
    def status(self) -> FlowStatus:
        return FlowStatus(
            workflow_id=workflow.info().workflow_id,
            tenant_id=self._tenant,
            state=self._state,
            approval=self._approval_view(),
            detail=self._status_detail(),
            cost_micros=self._run.cost_micros if self._run else 0,
            error=self._error,
        )

    @workflow.query
    def kernel_trace(self) -> RunSummary:
        assert self._run is not None
        return self._run.summary()

    def _status_detail(self) -> dict[str, Any]:
        return dict(self._detail)

    def _approval_view(self) -> ApprovalView | None:
        return None


class ApprovalHandlers(FlowHandlers):
    def __init__(self) -> None:
        super().__init__()
        self._desk: ApprovalDesk | None = None

    @workflow.update(name=DECIDE_UPDATE)
    def decide(self, decision: Decision) -> DecisionResult:
        return self._require_desk().apply(decision)

    @decide.validator
    def _validate_decide(self, decision: Decision) -> None:
        self._require_desk().validate(decision)

    @workflow.signal(name="decide_signal")
    def decide_signal(self, decision: Decision) -> None:
        if self._desk is not None:
            self._desk.signal(decision)

    @workflow.signal(name="approver_keys_changed")
    def approver_keys_changed(self) -> None:
        """A key was registered, rotated or revoked: a waiting request re-reads the
        registry. Carries nothing, so anyone may send it; it only makes the run look."""
        if self._desk is not None:
            self._desk.keys_changed()

    def _approval_view(self) -> ApprovalView | None:
        return self._desk.current if self._desk else None

    def _require_desk(self) -> ApprovalDesk:
        if self._desk is None:
            raise ApplicationError(
                "the flow is not ready for decisions", type=ErrorCode.DECISION_REJECTED
            )
        return self._desk
