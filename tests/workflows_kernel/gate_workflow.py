"""A small workflow that calls test tools through ``kernel_call`` (and nothing else)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from kernel.call import kernel_call, persist_trace, start_run
    from kernel.policy import RunPolicy
    from kernel.state import RunState, RunSummary
    from tests.workflows_kernel.toolbox import TEST_REGISTRY


class Call(BaseModel):
    tool: str
    version: str = "1"
    input: dict[str, Any]
    step: str
    sleep_s: float = 0
    local: bool = False


class GateTestInput(BaseModel):
    policy: RunPolicy
    calls: list[Call]
    state_changes: int = 0
    persist: bool = False


class GateTestResult(BaseModel):
    outcomes: list[str] = Field(default_factory=list)
    summary: RunSummary


@workflow.defn
class GateTestWorkflow:
    def __init__(self) -> None:
        self._state: RunState | None = None

    @workflow.run
    async def run(self, input: GateTestInput) -> GateTestResult:
        self._state = state = start_run(input.policy, principal="test:operator")
        for i in range(input.state_changes):
            state.state_change(workflow.now(), f"s{i}", f"s{i + 1}")
        outcomes: list[str] = []
        for call in input.calls:
            if call.sleep_s:
                await workflow.sleep(timedelta(seconds=call.sleep_s))
            try:
                await kernel_call(
                    state,
                    call.tool,
                    call.version,
                    call.input,
                    step=call.step,
                    registry=TEST_REGISTRY,
                    local=call.local,
                )
                outcomes.append("ok")
            except TypeError:  # a write or a provider asked for locally
                outcomes.append("NOT_LOCAL")
            except ApplicationError as exc:
                outcomes.append(exc.type or "ApplicationError")
            except ActivityError:
                outcomes.append("ACTIVITY_FAILED")
        if input.persist:
            await persist_trace(state)
        return GateTestResult(outcomes=outcomes, summary=state.summary())

    @workflow.query
    def kernel_trace(self) -> RunSummary:
        assert self._state is not None
        return self._state.summary()
