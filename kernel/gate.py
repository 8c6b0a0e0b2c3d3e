"""The gate every tool call passes, in DESIGN §3 order, before it is scheduled.

registry → schema → permission → bounds → loop detection → HITL → idempotency keys.

Pure and deterministic (no Temporal, no I/O, time comes in as ``now``): ``check``
decides without touching the state; ``admit`` records the decision in the run state
(counters, call history, trace, termination).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from kernel.codes import ErrorCode
from kernel.contracts import HitlMode, SideEffect, ToolContract
from kernel.errors import TerminationReason
from kernel.hitl_lang import ConditionEvalError, ConditionSyntaxError, holds
from kernel.idempotency import IdempotencyKeys, canonical_json, keys_for, sha256_hex
from kernel.policy import HitlRule
from kernel.redaction import redact_text
from kernel.registry import ToolRegistry
from kernel.state import Approval, RunState, Termination, TraceKind

AnyContract = ToolContract[Any, Any]


@dataclass(frozen=True)
class ToolRequest:
    tool: str
    version: str
    input: BaseModel | Mapping[str, Any]
    step: str
    approval: Approval | None = None

    @property
    def ref(self) -> str:
        return f"{self.tool}@{self.version}"


@dataclass(frozen=True)
class HitlRequirement:
    required: bool
    reason: str
    rule: HitlRule | None = None

    @property
    def approver_roles(self) -> tuple[str, ...]:
        return () if self.rule is None else self.rule.approver_roles


# The codes the gate refuses a call with (docs/kernel.md#gate-order).
GATE_CODES = frozenset(
    {
        ErrorCode.TOOL_UNKNOWN,
        ErrorCode.SCHEMA_INVALID,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.APPROVAL_REQUIRED,
        ErrorCode.APPROVAL_INVALID,
        ErrorCode.RUN_TERMINATED,
    }
)


@dataclass(frozen=True)
class GateDecision:
    request: ToolRequest
    allowed: bool
    code: ErrorCode | None = None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    contract: AnyContract | None = None
    input: BaseModel | None = None
    input_json: dict[str, Any] | None = None
    fingerprint: str | None = None
    termination: Termination | None = None
    hitl: HitlRequirement | None = None
    keys: IdempotencyKeys | None = None


def fingerprint(tool_ref: str, input_json: Mapping[str, Any]) -> str:
    """``tool@v#hash``: identical tool and input give identical fingerprints."""
    return f"{tool_ref}#{sha256_hex(canonical_json(dict(input_json)))[:16]}"


def _tool_of(fp: str) -> str:
    return fp.partition("#")[0]


def detect_loop(
    history: list[str], threshold: int, max_pattern: int, allowlist: tuple[str, ...]
) -> tuple[list[str], int] | None:
    """The repeating pattern at the end of ``history`` and its repeat count, if any."""
    allowed = set(allowlist)
    for size in range(1, max_pattern + 1):
        need = size * threshold
        if len(history) < need:
            break
        tail = history[-need:]
        block = tail[-size:]
        if all(tail[i] == block[i % size] for i in range(need)):
            tools = {_tool_of(fp) for fp in block}
            if all(t in allowed or t.partition("@")[0] in allowed for t in tools):
                continue
            return block, threshold
    return None


@dataclass(frozen=True)
class _ValidCall:
    """A call that passed registry, schema and permission: what every later decision
    (terminated, approval refused, allowed) carries."""

    request: ToolRequest
    contract: AnyContract
    input: BaseModel
    input_json: dict[str, Any]
    fingerprint: str

    def decide(
        self,
        allowed: bool,
        message: str,
        *,
        code: ErrorCode | None = None,
        detail: dict[str, Any] | None = None,
        termination: Termination | None = None,
        hitl: HitlRequirement | None = None,
        keys: IdempotencyKeys | None = None,
    ) -> GateDecision:
        return GateDecision(
            request=self.request,
            allowed=allowed,
            code=code,
            message=message,
            detail={} if detail is None else detail,
            contract=self.contract,
            input=self.input,
            input_json=self.input_json,
            fingerprint=self.fingerprint,
            termination=termination,
            hitl=hitl,
            keys=keys,
        )


class Gate:
    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry

    def check(self, state: RunState, request: ToolRequest, now: datetime) -> GateDecision:
        """Decide one call; the first step that refuses it decides."""
        if state.termination is not None:
            return _deny(
                request,
                ErrorCode.RUN_TERMINATED,
                f"run already terminated ({state.termination.reason})",
                {"reason": state.termination.reason.value},
            )
        # 1. Registry
        contract = self.registry.find(request.tool, request.version)
        if contract is None:
            return _deny(
                request,
                ErrorCode.TOOL_UNKNOWN,
                f"no tool {request.ref} in the registry",
                {"tool": request.ref},
            )
        # 2. Schema
        validated = _validated_input(request, contract)
        if isinstance(validated, GateDecision):
            return validated
        input_json: dict[str, Any] = validated.model_dump(mode="json")
        # 3. Permission
        denied = _permission_denied(state, request, contract)
        if denied is not None:
            return denied
        call = _ValidCall(
            request, contract, validated, input_json, fingerprint(contract.ref, input_json)
        )
        # 4. Bounds, 5. loop detection
        termination = _bound_exceeded(state, contract, input_json, now)
        if termination is None:
            termination = _loop_detected(state, call, now)
        if termination is not None:
            return _terminated(call, termination)
        # 6. HITL, 7. idempotency keys
        return self._approved(state, call)

    def _approved(self, state: RunState, call: _ValidCall) -> GateDecision:
        """Steps 6 and 7: the HITL requirement, the call's idempotency keys (they travel
        with the call, and an approval binds to the internal one), and the approval."""
        contract = call.contract
        hitl = self.hitl_requirement(state, contract, call.input_json)
        keys = keys_for(
            tenant=state.policy.tenant_id,
            workflow_id=state.workflow_id,
            step=call.request.step,
            tool=contract.ref,
            input=call.input_json,
        )
        problem = _approval_problem(call.request.approval, hitl, keys) if hitl.required else None
        if problem is None:
            return call.decide(True, "allowed", hitl=hitl, keys=keys)
        code, message = problem
        detail = {
            "tool": contract.ref,
            "reason": hitl.reason,
            "role": list(hitl.approver_roles),
            "internal_key": keys.internal,
        }
        return call.decide(False, message, code=code, detail=detail, hitl=hitl, keys=keys)

    @staticmethod
    def hitl_requirement(
        state: RunState, contract: AnyContract, input_json: dict[str, Any]
    ) -> HitlRequirement:
        rule = state.policy.hitl_rule(contract.ref)
        financial = contract.side_effect is SideEffect.FINANCIAL
        if rule is None:
            mode = contract.default_hitl
            if mode is HitlMode.ALWAYS or financial:
                return HitlRequirement(True, "contract default: always")
            return HitlRequirement(False, "no rule")
        if rule.mode is HitlMode.ALWAYS:
            return HitlRequirement(True, "always", rule)
        if rule.mode in (HitlMode.NEVER, HitlMode.AUTO_APPROVE):
            # The compiler refuses these for FINANCIAL tools; at runtime, fail safe.
            if financial:
                return HitlRequirement(True, f"{rule.mode.value} refused for FINANCIAL", rule)
            return HitlRequirement(False, rule.mode.value.lower(), rule)
        context = {
            "input": input_json,
            "tool": {
                "name": contract.name,
                "version": contract.version,
                "side_effect": contract.side_effect.value,
            },
            "tenant": state.policy.tenant_id,
            "workflow": {"type": state.policy.workflow_type, "id": state.workflow_id},
        }
        try:
            if holds(rule.when or "", context):
                return HitlRequirement(True, f"when {rule.when}", rule)
            return HitlRequirement(False, f"not ({rule.when})", rule)
        except (ConditionSyntaxError, ConditionEvalError) as exc:
            return HitlRequirement(True, f"condition error, approval required: {exc}", rule)


def _deny(
    request: ToolRequest,
    code: ErrorCode,
    message: str,
    detail: dict[str, Any],
    contract: AnyContract | None = None,
) -> GateDecision:
    return GateDecision(
        request=request,
        allowed=False,
        code=code,
        message=message,
        detail=detail,
        contract=contract,
    )


def _validated_input(request: ToolRequest, contract: AnyContract) -> BaseModel | GateDecision:
    """Step 2: the input as the contract's model, or the SCHEMA_INVALID refusal. Unknown
    fields are rejected by the models' ``extra="forbid"``."""
    raw = request.input
    if isinstance(raw, BaseModel):
        if not isinstance(raw, contract.input_model):
            return _deny(
                request,
                ErrorCode.SCHEMA_INVALID,
                f"input is a {type(raw).__name__}, {contract.ref} takes "
                f"{contract.input_model.__name__}",
                {"tool": contract.ref, "errors": [{"type": "model_type"}]},
                contract=contract,
            )
        raw = raw.model_dump(mode="json")
    try:
        validated: BaseModel = contract.input_model.model_validate(dict(raw))
    except ValidationError as exc:
        errors = _schema_errors(exc)
        return _deny(
            request,
            ErrorCode.SCHEMA_INVALID,
            f"input for {contract.ref} is invalid: "
            + "; ".join(f"{e['loc'] or '<root>'}: {e['type']}" for e in errors),
            {"tool": contract.ref, "errors": errors},
            contract=contract,
        )
    return validated


def _schema_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Where and why, never the offending value (it may be personal data)."""
    return [
        {
            "loc": ".".join(str(p) for p in err["loc"]),
            "type": err["type"],
            "msg": redact_text(err["msg"]),
        }
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _permission_denied(
    state: RunState, request: ToolRequest, contract: AnyContract
) -> GateDecision | None:
    """Step 3, deny by default: the tool must be enabled for the workflow type and the
    principal must hold every scope it needs."""
    policy = state.policy
    missing = sorted(contract.scopes - policy.scopes)
    if contract.ref in policy.tools and not missing:
        return None
    why = (
        f"missing scopes {', '.join(missing)}"
        if contract.ref in policy.tools
        else f"tool not enabled for workflow type {policy.workflow_type}"
    )
    return _deny(
        request,
        ErrorCode.PERMISSION_DENIED,
        f"{state.principal} may not call {contract.ref} for tenant {policy.tenant_id}: {why}",
        {
            "principal": state.principal,
            "tenant": policy.tenant_id,
            "tool": contract.ref,
            "action": contract.side_effect.value,
            "missing_scopes": missing,
            "reason": why,
        },
        contract=contract,
    )


def _bound_exceeded(
    state: RunState, contract: AnyContract, input_json: dict[str, Any], now: datetime
) -> Termination | None:
    """Step 4: the first run bound this call would cross (steps, tool calls, wall time,
    tokens, cost)."""
    b = state.policy.bounds

    def stop(reason: TerminationReason, limit: object, observed: object) -> Termination:
        return Termination(
            reason=reason, limit=str(limit), observed=str(observed), at=now, tool=contract.ref
        )

    if state.steps + 1 > b.max_steps:
        return stop(TerminationReason.MAX_STEPS, b.max_steps, state.steps + 1)
    if state.tool_calls + 1 > b.max_tool_calls:
        return stop(TerminationReason.MAX_TOOL_CALLS, b.max_tool_calls, state.tool_calls + 1)
    elapsed = now - state.started_at
    if elapsed > b.max_wall_time:
        return stop(
            TerminationReason.MAX_WALL_TIME,
            f"{b.max_wall_time.total_seconds():g}s",
            f"{elapsed.total_seconds():g}s",
        )
    requested = 0
    if contract.token_budget_field is not None:
        value = input_json.get(contract.token_budget_field)
        requested = value if isinstance(value, int) else 0
    if state.tokens + requested > b.max_tokens:
        return stop(TerminationReason.MAX_TOKENS, b.max_tokens, state.tokens + requested)
    projected = state.cost_micros + state.policy.prices.call_cost(contract.provider)
    if projected > b.max_cost_micros:
        return stop(TerminationReason.MAX_COST, f"{b.max_cost_micros}µ$", f"{projected}µ$")
    return None


def _loop_detected(state: RunState, call: _ValidCall, now: datetime) -> Termination | None:
    """Step 5: this call would end a pattern of calls repeated ``threshold`` times."""
    loop = state.policy.loop
    found = detect_loop(
        [*state.fingerprints, call.fingerprint],
        loop.threshold,
        loop.max_pattern,
        loop.retry_allowlist,
    )
    if found is None:
        return None
    pattern, repeats = found
    return Termination(
        reason=TerminationReason.LOOP_DETECTED,
        limit=f"{loop.threshold} repeats",
        observed=f"{repeats} x [{', '.join(_tool_of(p) for p in pattern)}]",
        at=now,
        tool=call.contract.ref,
    )


def _terminated(call: _ValidCall, termination: Termination) -> GateDecision:
    """The RUN_TERMINATED refusal of a call that would cross a bound or close a loop."""
    reason = termination.reason.value
    return call.decide(
        False,
        f"run terminated: {reason} (limit {termination.limit}, observed {termination.observed})",
        code=ErrorCode.RUN_TERMINATED,
        detail={
            "reason": reason,
            "bound": reason,
            "limit": termination.limit,
            "observed": termination.observed,
            "tool": call.contract.ref,
        },
        termination=termination,
    )


def _approval_problem(
    approval: Approval | None, hitl: HitlRequirement, keys: IdempotencyKeys
) -> tuple[ErrorCode, str] | None:
    """Why ``approval`` does not let a HITL-required call through, if it does not."""
    if approval is None:
        return ErrorCode.APPROVAL_REQUIRED, f"approval required ({hitl.reason})"
    if not approval.approved:
        return ErrorCode.APPROVAL_INVALID, f"request {approval.request_id} was denied"
    roles = hitl.approver_roles
    if roles and approval.role not in roles:
        return (
            ErrorCode.APPROVAL_INVALID,
            f"role {approval.role} may not approve (needs one of {', '.join(roles)})",
        )
    if approval.internal_key is not None and approval.internal_key != keys.internal:
        return ErrorCode.APPROVAL_INVALID, "approval was given for a different call"
    return None


def admit(state: RunState, decision: GateDecision, now: datetime) -> None:
    """Record the gate's decision in the run state."""
    if decision.allowed:
        _admit_allowed(state, decision, now)
    else:
        _admit_refused(state, decision, now)


def _tool_ref(decision: GateDecision) -> str:
    return decision.contract.ref if decision.contract is not None else decision.request.ref


def _admit_allowed(state: RunState, decision: GateDecision, now: datetime) -> None:
    """Count the step and the call, remember its fingerprint, trace the approval used."""
    req = decision.request
    assert decision.fingerprint is not None
    state.steps += 1
    state.tool_calls += 1
    state.fingerprints.append(decision.fingerprint)
    if decision.hitl is not None and decision.hitl.required and req.approval is not None:
        state.record(
            now,
            "approval",
            "approved",
            tool=_tool_ref(decision),
            step=req.step,
            detail={
                "approver": req.approval.approver,
                "role": req.approval.role,
                "request_id": req.approval.request_id,
                "hitl": decision.hitl.reason,
            },
        )


def _admit_refused(state: RunState, decision: GateDecision, now: datetime) -> None:
    """Count the denial by code; a crossed bound or a loop also ends the run."""
    assert decision.code is not None
    code = decision.code.value
    state.denials[code] = state.denials.get(code, 0) + 1
    kind: TraceKind = "gate_denied"
    outcome = code
    if decision.termination is not None:
        state.termination = decision.termination
        kind, outcome = "run_terminated", decision.termination.reason.value
    state.record(
        now,
        kind,
        outcome,
        tool=_tool_ref(decision),
        step=decision.request.step,
        detail={"code": code, "message": decision.message, **decision.detail},
    )
