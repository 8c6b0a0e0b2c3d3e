"""``kernel_call``: the one way a workflow reaches a tool.

It runs the gate, records the decision in the run's trace, schedules the contract's
activity (by its registered name, with the contract's timeout and retry policy, and
the idempotency keys computed here, in the workflow), records the result and its cost,
and returns the typed output. Refusals raise a non-retryable ``ApplicationError`` whose
``type`` is the gate code (``TOOL_UNKNOWN``, ``SCHEMA_INVALID``, ``PERMISSION_DENIED``,
``APPROVAL_REQUIRED``, ``APPROVAL_INVALID``, ``RUN_TERMINATED``).

Workflow modules import this module inside ``workflow.unsafe.imports_passed_through()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from kernel.codes import ErrorCode
from kernel.contracts import (
    CallContext,
    ProjectionWrite,
    RetrySpec,
    SideEffect,
    ToolContract,
    ToolModel,
)
from kernel.gate import Gate, GateDecision, ToolRequest, admit
from kernel.idempotency import IdempotencyKeys, request_hash
from kernel.metrics import record_cost, record_gate, record_tool_call
from kernel.policy import RunPolicy
from kernel.redaction import allowlisted, redact_text
from kernel.registry import ToolRegistry
from kernel.state import Approval, RunState, TraceEntry
from kernel.tools import REGISTRY

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
T = TypeVar("T")

PERSIST_TRACE_ACTIVITY = "kernel.persist_trace"
# The same, with the run's last projection row: a name of its own, so a worker of a
# release before the ride (whose TraceBatch would drop the row without a word) never
# takes it; it fails the attempt as not registered and a current worker's retry does.
PERSIST_TRACE_WITH_ROW_ACTIVITY = "kernel.persist_trace_with_row"
# Plumbing activities (our own database only, never a provider): approval rows, the
# order projection, the tenant's policy. They are not tools, so they have no contract;
# ``internal_activity`` is the one way a workflow schedules them.
INTERNAL_PREFIXES = ("kernel.", "autobiz.")


class TraceBatch(BaseModel):
    """What ``persist_trace`` sends to the ``kernel.persist_trace`` activity."""

    tenant_id: str
    workflow_id: str
    run_id: str
    cost_micros: int
    entries: list[TraceEntry]
    # The run's last projection row, written in the trace's transaction (None: none).
    projection: ProjectionWrite | None = None


def retry_policy(spec: RetrySpec, *, scale: float = 1.0) -> RetryPolicy:
    """The contract's retry policy; ``scale`` shortens its waits (never their number)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=spec.initial_interval_s * scale),
        backoff_coefficient=spec.backoff,
        maximum_interval=timedelta(seconds=spec.max_interval_s * scale),
        maximum_attempts=spec.max_attempts,
        non_retryable_error_types=list(spec.non_retryable),
    )


def start_run(policy: RunPolicy, *, principal: str) -> RunState:
    """Create the kernel state at the top of a workflow run."""
    return RunState.start(
        policy=policy,
        workflow_id=workflow.info().workflow_id,
        principal=principal,
        now=workflow.now(),
    )


def refusal(decision: GateDecision) -> ApplicationError:
    assert decision.code is not None
    return ApplicationError(
        redact_text(decision.message),
        {"code": decision.code.value, **decision.detail},
        type=decision.code.value,
        non_retryable=True,
    )


def preview(
    state: RunState,
    tool: ToolContract[Any, Any] | str,
    version_or_input: str | BaseModel | Mapping[str, Any],
    input: BaseModel | Mapping[str, Any] | None = None,
    /,
    *,
    step: str,
    registry: ToolRegistry | None = None,
) -> GateDecision:
    """Run the gate without recording or calling: tells a workflow whether it must get
    an approval first (``decision.hitl``) and which key the approval should bind to.
    The tool is named as for :func:`kernel_call`."""
    name, version, input, _ = _resolve(tool, version_or_input, input, None)
    request = ToolRequest(tool=name, version=version, input=input, step=step)
    return Gate(registry or REGISTRY).check(state, request, workflow.now())


@overload
async def kernel_call(
    state: RunState,
    tool: ToolContract[InT, OutT],
    input: InT,
    /,
    *,
    step: str,
    approval: Approval | None = None,
    registry: ToolRegistry | None = None,
    absent_ok: bool = False,
    local: bool = False,
) -> OutT: ...


@overload
async def kernel_call(
    state: RunState,
    tool: str,
    version: str,
    input: BaseModel | Mapping[str, Any],
    /,
    *,
    step: str,
    expect: type[OutT],
    approval: Approval | None = None,
    registry: ToolRegistry | None = None,
    absent_ok: bool = False,
    local: bool = False,
) -> OutT: ...


@overload
async def kernel_call(
    state: RunState,
    tool: str,
    version: str,
    input: BaseModel | Mapping[str, Any],
    /,
    *,
    step: str,
    expect: None = None,
    approval: Approval | None = None,
    registry: ToolRegistry | None = None,
    absent_ok: bool = False,
    local: bool = False,
) -> BaseModel: ...


async def kernel_call(
    state: RunState,
    tool: ToolContract[Any, Any] | str,
    version_or_input: str | BaseModel | Mapping[str, Any],
    input: BaseModel | Mapping[str, Any] | None = None,
    /,
    *,
    step: str,
    expect: type[BaseModel] | None = None,
    approval: Approval | None = None,
    registry: ToolRegistry | None = None,
    absent_ok: bool = False,
    local: bool = False,
) -> BaseModel:
    """Call ``tool@version`` through the gate; return its output model.

    A read with a ``not_found_grace`` retries a not-found as "not there yet" for that
    many attempts; ``absent_ok=True`` (the caller treats absence as an answer, e.g. a
    reconciliation sweep) and lookups (``input.may_be_absent``) take the not-found at
    once.

    ``kernel_call(run, STRIPE_CAPTURE_PAYMENT, CapturePaymentInput(...), step=...)`` names
    the tool by its contract and returns the contract's output type; the older form names
    it ``"stripe.capture_payment", "1"`` and takes ``expect=``.

    ``local=True`` runs the activity as a local activity, inside the workflow task (a
    marker instead of an activity task and a workflow task of its own). Only for a tool
    that reaches no provider and changes nothing (an internal read, e.g. ``risk.assess``),
    and only where nothing else of the run schedules work beside it: local-activity
    results reach the workflow in completion order first and in sequence order on replay."""
    name, version, input, expect = _resolve(tool, version_or_input, input, expect)
    request = ToolRequest(tool=name, version=version, input=input, step=step, approval=approval)
    now = workflow.now()
    call = _admitted(state, request, registry, now)
    if local and not _may_run_locally(call.contract):
        raise TypeError(f"{call.contract.ref} reaches a provider or writes: not local")
    context = _call_context(state, call, absent_ok)
    _record_started(state, call, now)
    result = await _execute(state, call, context, now, local=local)
    _record_succeeded(state, call, result)
    if expect is not None and not isinstance(result, expect):
        ref = call.contract.ref
        raise TypeError(f"{ref} returned {type(result).__name__}, not {expect.__name__}")
    return result


@dataclass(frozen=True)
class _AllowedCall:
    """What the gate let through: the contract, the validated input and its keys."""

    contract: ToolContract[Any, Any]
    input: BaseModel
    input_json: dict[str, Any]
    keys: IdempotencyKeys
    step: str


def _admitted(
    state: RunState, request: ToolRequest, registry: ToolRegistry | None, now: datetime
) -> _AllowedCall:
    """Run the gate and record its decision; a refusal raises (see :func:`refusal`)."""
    decision = Gate(registry or REGISTRY).check(state, request, now)
    admit(state, decision, now)
    record_gate(state, decision)
    if not decision.allowed:
        raise refusal(decision)
    contract, keys, input_json = decision.contract, decision.keys, decision.input_json
    assert contract is not None and keys is not None and input_json is not None
    assert decision.input is not None
    return _AllowedCall(contract, decision.input, input_json, keys, request.step)


def _call_context(state: RunState, call: _AllowedCall, absent_ok: bool) -> CallContext:
    """The activity's first argument: who calls, and the keys computed here."""
    info = workflow.info()
    contract = call.contract
    return CallContext(
        tenant_id=state.tenant_id,
        workflow_id=info.workflow_id,
        run_id=info.run_id,
        workflow_type=state.policy.workflow_type,
        principal=state.principal,
        step=call.step,
        tool=contract.name,
        version=contract.version,
        side_effect=contract.side_effect,
        provider=contract.provider,
        internal_key=call.keys.internal,
        external_key=call.keys.external,
        request_hash=request_hash(contract.ref, call.input_json),
        not_found_grace=_not_found_grace(contract.not_found_grace, call.input, absent_ok),
        projection=state.take_riding(),
    )


def _record_started(state: RunState, call: _AllowedCall, now: datetime) -> None:
    contract = call.contract
    state.record(
        now,
        "tool_started",
        "scheduled",
        tool=contract.ref,
        step=call.step,
        detail={
            "internal_key": call.keys.internal,
            "external_key": call.keys.external,
            "side_effect": contract.side_effect.value,
            "input": allowlisted(call.input_json, contract.trace_fields),
        },
    )


def _may_run_locally(contract: ToolContract[Any, Any]) -> bool:
    return contract.provider == "internal" and contract.side_effect is SideEffect.READ


async def _execute(
    state: RunState, call: _AllowedCall, context: CallContext, started: datetime, *, local: bool
) -> BaseModel:
    """Schedule the contract's activity with its timeout and retry policy; a failure is
    traced and counted, then raised on."""
    contract = call.contract
    schedule = workflow.execute_local_activity if local else workflow.execute_activity
    try:
        result: BaseModel = await schedule(
            contract.activity_name,
            args=[context, call.input],
            result_type=contract.output_model,
            start_to_close_timeout=contract.timeout,
            retry_policy=retry_policy(contract.retry, scale=state.policy.retries.interval_scale),
        )
    except ActivityError as exc:
        cause = exc.cause
        state.record(
            workflow.now(),
            "tool_failed",
            "error",
            tool=contract.ref,
            step=call.step,
            detail={
                "error_type": getattr(cause, "type", None) or type(cause).__name__,
                "message": str(cause) if cause is not None else str(exc),
            },
        )
        record_tool_call(state, contract.ref, "failed", workflow.now() - started)
        raise
    record_tool_call(state, contract.ref, "succeeded", workflow.now() - started)
    return result


def _record_succeeded(state: RunState, call: _AllowedCall, result: BaseModel) -> None:
    """Trace the output and charge the run for the call (and an LLM's tokens)."""
    contract = call.contract
    cost = state.policy.prices.call_cost(contract.provider)
    detail: dict[str, Any] = {
        "output": allowlisted(result.model_dump(mode="json"), contract.trace_fields)
    }
    token_cost, token_detail = _token_use(state, result)
    cost += token_cost
    detail.update(token_detail)
    state.cost_micros += cost
    detail["cost_micros"] = cost
    state.record(
        workflow.now(),
        "tool_succeeded",
        "ok",
        tool=contract.ref,
        step=call.step,
        detail=detail,
        cost_micros=cost,
    )
    record_cost(state, contract.ref, cost)


def _token_use(state: RunState, result: BaseModel) -> tuple[int, dict[str, Any]]:
    """An LLM result's token cost and trace fields; its tokens count against the run."""
    in_tokens = getattr(result, "input_tokens", None)
    out_tokens = getattr(result, "output_tokens", None)
    if not (isinstance(in_tokens, int) and isinstance(out_tokens, int)):
        return 0, {}
    model = str(getattr(result, "model", ""))
    state.tokens += in_tokens + out_tokens
    cost = state.policy.prices.token_cost(model, in_tokens, out_tokens)
    return cost, {"model": model, "input_tokens": in_tokens, "output_tokens": out_tokens}


def _resolve(
    tool: ToolContract[Any, Any] | str,
    version_or_input: str | BaseModel | Mapping[str, Any],
    input: BaseModel | Mapping[str, Any] | None,
    expect: type[BaseModel] | None,
) -> tuple[str, str, BaseModel | Mapping[str, Any], type[BaseModel] | None]:
    """(name, version, input, expected output) from either form of a call."""
    if isinstance(tool, ToolContract):
        if input is not None or isinstance(version_or_input, str):
            raise TypeError(f"{tool.ref}: pass the contract and the input, not a version")
        return tool.name, tool.version, version_or_input, tool.output_model
    if not isinstance(version_or_input, str) or input is None:
        raise TypeError(f"{tool}: a tool named by string needs its version and an input")
    return tool, version_or_input, input, expect


def _not_found_grace(grace: int, input: BaseModel | None, absent_ok: bool) -> int:
    if absent_ok or (isinstance(input, ToolModel) and input.may_be_absent):
        return 0
    return grace


async def persist_trace(
    state: RunState, *, limit: timedelta = timedelta(seconds=30), local: bool = False
) -> int:
    """Persist the trace entries recorded since the last call (idempotent per seq), with
    the projection row waiting to ride (``RunState.carry``), if any. ``local``: as a
    local activity, inside the workflow task that ends the run (a marker instead of an
    activity task and a workflow task of its own); only for a run's last persist, where
    nothing else of the run is in flight beside it."""
    entries = state.unpersisted()
    if not entries and state.riding is None:
        return 0
    batch = TraceBatch(
        tenant_id=state.tenant_id,
        workflow_id=state.workflow_id,
        run_id=workflow.info().run_id,
        cost_micros=state.cost_micros,
        entries=entries,
        projection=state.take_riding(),
    )
    name = PERSIST_TRACE_ACTIVITY if batch.projection is None else PERSIST_TRACE_WITH_ROW_ACTIVITY
    retry = RetryPolicy(maximum_interval=timedelta(seconds=30))
    written: int
    if local:
        written = await workflow.execute_local_activity(
            name, batch, result_type=int, start_to_close_timeout=limit, retry_policy=retry
        )
    else:
        written = await workflow.execute_activity(
            name, batch, result_type=int, start_to_close_timeout=limit, retry_policy=retry
        )
    if entries:
        state.persisted_seq = entries[-1].seq
    return written


async def internal_activity(
    name: str,
    arg: BaseModel,
    *,
    result_type: type[T] | None = None,
    limit: timedelta = timedelta(seconds=30),
    local: bool = False,
) -> T | None:
    """Schedule a plumbing activity (``kernel.*`` / ``autobiz.*``). A tool can never be
    reached this way: tools carry ``@version`` and go through :func:`kernel_call`.
    ``local``: as a local activity, inside the workflow task (as for ``kernel_call``:
    only where nothing else of the run schedules work beside it)."""
    if "@" in name or not name.startswith(INTERNAL_PREFIXES):
        raise ApplicationError(
            f"{name} is not an internal activity; tools go through kernel_call",
            {"code": ErrorCode.TOOL_UNKNOWN, "tool": name},
            type=ErrorCode.TOOL_UNKNOWN,
            non_retryable=True,
        )
    schedule = workflow.execute_local_activity if local else workflow.execute_activity
    result: T | None = await schedule(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=limit,
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    )
    return result
