"""The invariant checks themselves: facts read from the live data in, findings out.

Each finding names the invariant it breaks and carries its diagnosis: the most likely
cause, the evidence, the other explanations considered with why the evidence rejects
them, and what to do. Which DESIGN invariant a check belongs to:

* INV-02 (permission, deny by default): ``tool_not_granted``;
* INV-05 (idempotency, one receipt per side effect): ``receipt_missing``,
  ``receipt_key_mismatch``;
* INV-07 (HITL): ``financial_without_approval``, ``approval_overdue``;
* INV-04 (trace and cost): ``run_without_trace``, ``run_without_cost``;
* INV-06 (tenant isolation; DESIGN §5 — the spec leaves INV-06 unnamed, the monitor uses
  it for "no row of one tenant references another's"): ``cross_tenant_reference``;
* INV-03 (bounds): ``bound_exceeded`` (a finished run's trace shows more tool calls or
  cost than its flow's bounds allow), ``flow_stuck`` (a state held past its SLA).

Pure and deterministic: run inside the workflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.ids import FLOWS
from workflows.monitor.models import (
    Alternative,
    Diagnosis,
    Finding,
    FlowFacts,
    LedgerFacts,
    MonitorInput,
    RunFacts,
    TenancyFacts,
)

KNOWN_PREFIXES = frozenset({f.prefix for f in FLOWS} | {f"{f.prefix}-schedule" for f in FLOWS})


def side_effect_findings(facts: LedgerFacts) -> list[Finding]:
    """INV-05: every executed side effect has exactly one receipt, under its own keys."""
    found: list[Finding] = []
    for key in facts.side_effects:
        evidence = {
            "internal_key": key.internal_key,
            "tool": key.tool_ref,
            "idempotency_status": "succeeded",
            "first_seen_at": key.first_seen_at.isoformat(),
        }
        if key.receipt_id is None:
            found.append(
                Finding(
                    kind="INV-05",
                    check="receipt_missing",
                    entity_ref=f"idempotency:{key.internal_key}",
                    summary=f"{key.tool_ref} executed (idempotency succeeded) with no receipt",
                    diagnosis=Diagnosis(
                        cause="the side effect was recorded as done but its receipt was "
                        "never written (a write outside SideEffectRunner, or a receipt "
                        "lost after the provider answered)",
                        evidence=evidence,
                        alternatives=(
                            Alternative(
                                explanation="the call is still in flight",
                                rejected_because="the idempotency record is 'succeeded', "
                                "which the runner sets only after the receipt is written",
                            ),
                            Alternative(
                                explanation="a READ tool (no receipt needed)",
                                rejected_because=f"{key.tool_ref}'s contract has a side "
                                "effect that needs a receipt",
                            ),
                        ),
                        recommended_action="look the object up at the provider by the "
                        "external key and record what was done; find the code path that "
                        "skipped the runner (RB-04)",
                    ),
                )
            )
        elif key.receipt_external_key != key.external_key:
            found.append(
                Finding(
                    kind="INV-05",
                    check="receipt_key_mismatch",
                    entity_ref=f"receipt:{key.receipt_id}",
                    summary=f"receipt {key.receipt_id} of {key.tool_ref} carries another "
                    "external key than its idempotency record",
                    diagnosis=Diagnosis(
                        cause="the provider may have been called with a key the store did "
                        "not issue, so a retry could do the work twice",
                        evidence={
                            **evidence,
                            "receipt_id": key.receipt_id,
                            "external_key": key.external_key,
                            "receipt_external_key": key.receipt_external_key,
                        },
                        alternatives=(
                            Alternative(
                                explanation="the idempotency window expired and the key "
                                "was re-issued",
                                rejected_because="keys are derived from the call's content, "
                                "so a re-issued key is the same key",
                            ),
                        ),
                        recommended_action="check the provider for a second object under "
                        "either key; refund or cancel a duplicate through its flow",
                    ),
                )
            )
    return found


def permission_findings(facts: LedgerFacts) -> list[Finding]:
    """INV-02: no side effect by a tool its flow's policy does not grant."""
    return [
        Finding(
            kind="INV-02",
            check="tool_not_granted",
            entity_ref=f"receipt:{r.receipt_id}",
            summary=f"{r.workflow_id} ran {r.tool_ref}, which {r.workflow_type} is not granted",
            diagnosis=Diagnosis(
                cause="a side effect ran outside the gate's permission check (an activity "
                "called directly, or a policy that was not the tenant's)",
                evidence={
                    "receipt_id": r.receipt_id,
                    "workflow_id": r.workflow_id,
                    "tool": r.tool_ref,
                    "workflow_type": r.workflow_type,
                },
                alternatives=(
                    Alternative(
                        explanation="the tool was granted when it ran and the config changed since",
                        rejected_because="not ruled out by the data: check the config's "
                        "history before treating it as a bypass",
                    ),
                    Alternative(
                        explanation="a READ tool (no receipt, no permission question)",
                        rejected_because="only side effects leave receipts",
                    ),
                ),
                recommended_action="compare with the config in force when it ran; if it "
                "was not granted, find the path that skipped kernel_call (RB-04)",
            ),
        )
        for r in facts.ungranted
    ]


def approval_findings(facts: LedgerFacts) -> list[Finding]:
    """INV-07: no FINANCIAL receipt without the approval its rule required."""
    found: list[Finding] = []
    for receipt in facts.financial:
        if not receipt.approval_required:
            continue
        if "approved" in receipt.approvals.values():
            continue
        found.append(
            Finding(
                kind="INV-07",
                check="financial_without_approval",
                entity_ref=f"receipt:{receipt.receipt_id}",
                summary=f"{receipt.tool_ref} moved {receipt.amount_minor} "
                f"{receipt.currency} in {receipt.workflow_id} without an approved request",
                diagnosis=Diagnosis(
                    cause="money moved without the approval the tenant's HITL rule "
                    f"requires ({receipt.requirement})",
                    evidence={
                        "receipt_id": receipt.receipt_id,
                        "workflow_id": receipt.workflow_id,
                        "tool": receipt.tool_ref,
                        "amount_minor": receipt.amount_minor,
                        "currency": receipt.currency,
                        "requirement": receipt.requirement,
                        "approvals_of_run": receipt.approvals,
                    },
                    alternatives=(
                        Alternative(
                            explanation="the approval is still pending and will follow",
                            rejected_because="the gate admits a FINANCIAL call only after "
                            "the decision; the receipt exists already",
                        ),
                        Alternative(
                            explanation="the rule did not apply to this amount",
                            rejected_because="the rule, evaluated on the amount the receipt "
                            "records, requires approval",
                        ),
                    ),
                    recommended_action="have finance review the movement; if it was not "
                    "wanted, refund it through the Refund flow (it asks for approval); "
                    "find how the gate was passed (RB-04)",
                ),
            )
        )
    return found


def run_findings(facts: RunFacts) -> list[Finding]:
    """INV-04: every finished run has a trace, and a cost when it called a priced API."""
    found: list[Finding] = []
    for run in facts.runs:
        evidence = {
            "workflow_id": run.workflow_id,
            "order_id": run.order_id,
            "state": run.state,
            "finished_at": run.updated_at.isoformat(),
            "trace_rows": run.trace_rows,
            "receipts": run.receipts,
        }
        if run.trace_rows == 0:
            found.append(
                Finding(
                    kind="INV-04",
                    check="run_without_trace",
                    entity_ref=f"run:{run.workflow_id}",
                    summary=f"{run.workflow_id} ended {run.state} with no persisted trace",
                    diagnosis=Diagnosis(
                        cause="the run ended without kernel.persist_trace (an end path that "
                        "skips Flow._end, or the trace write failed)",
                        evidence=evidence,
                        alternatives=(
                            Alternative(
                                explanation="the run is still finishing",
                                rejected_because="its projection is terminal; the trace is "
                                "persisted before the last state is projected",
                            ),
                        ),
                        recommended_action="read the history (temporal workflow show) for "
                        "the missing persist_trace and fix the end path; the history can "
                        "rebuild the trace",
                    ),
                )
            )
        elif run.priced_calls and run.cost_micros <= 0:
            found.append(
                Finding(
                    kind="INV-04",
                    check="run_without_cost",
                    entity_ref=f"run:{run.workflow_id}",
                    summary=f"{run.workflow_id} called priced APIs "
                    f"({', '.join(run.priced_calls)}) at a recorded cost of 0",
                    diagnosis=Diagnosis(
                        cause="the trace's cost was not counted (a price table missing in "
                        "the run's policy, or calls made outside kernel_call)",
                        evidence={**evidence, "priced_calls": list(run.priced_calls)},
                        alternatives=(
                            Alternative(
                                explanation="the calls were free",
                                rejected_because="the tenant's price table prices them > 0",
                            ),
                        ),
                        recommended_action="check the run's policy prices and that every "
                        "provider call went through kernel_call",
                    ),
                )
            )
    return found


def bound_findings(facts: RunFacts) -> list[Finding]:
    """INV-03: no finished run made more tool calls or spent more than its bounds."""
    found: list[Finding] = []
    for run in facts.runs:
        over: dict[str, dict[str, int]] = {}
        if run.max_tool_calls is not None and run.tool_calls > run.max_tool_calls:
            over["max_tool_calls"] = {"limit": run.max_tool_calls, "observed": run.tool_calls}
        if run.max_cost_micros is not None and run.cost_micros > run.max_cost_micros:
            over["max_cost_usd"] = {"limit": run.max_cost_micros, "observed": run.cost_micros}
        if not over:
            continue
        found.append(
            Finding(
                kind="INV-03",
                check="bound_exceeded",
                entity_ref=f"run:{run.workflow_id}",
                summary=f"{run.workflow_id} went past {', '.join(sorted(over))}",
                diagnosis=Diagnosis(
                    cause="the run was not stopped at its bound: calls scheduled outside "
                    "kernel_call, or a policy with other bounds than the tenant's",
                    evidence={"workflow_id": run.workflow_id, "state": run.state, **over},
                    alternatives=(
                        Alternative(
                            explanation="the bounds were raised or lowered since it ran",
                            rejected_because="not ruled out by the data: compare with the "
                            "config in force when it ran",
                        ),
                        Alternative(
                            explanation="a retried activity counted twice",
                            rejected_because="the trace has one tool_started per call the "
                            "gate admitted, retries are not calls",
                        ),
                    ),
                    recommended_action="read the run's trace (traces) and history; find "
                    "the calls the gate did not count (RB-04)",
                ),
            )
        )
    return found


def tenancy_findings(tenant_id: str, facts: TenancyFacts) -> list[Finding]:
    """INV-06: no row of this tenant names a workflow of another tenant."""
    found: list[Finding] = []
    for ref in facts.references:
        prefix, _, rest = ref.workflow_id.partition(":")
        other = rest.partition(":")[0]
        if prefix not in KNOWN_PREFIXES or not other or other == tenant_id:
            continue
        found.append(
            Finding(
                kind="INV-06",
                check="cross_tenant_reference",
                entity_ref=f"{ref.table}:{ref.row_ref}",
                summary=f"{ref.table} row {ref.row_ref} of {tenant_id} names {ref.workflow_id}"
                f" (tenant {other})",
                diagnosis=Diagnosis(
                    cause="a row was written for this tenant by (or about) another tenant's "
                    "workflow: tenant context crossed somewhere",
                    evidence={
                        "table": ref.table,
                        "row": ref.row_ref,
                        "workflow_id": ref.workflow_id,
                        "tenant_in_id": other,
                    },
                    alternatives=(
                        Alternative(
                            explanation="an id that only looks like a business key",
                            rejected_because=f"'{prefix}' is a flow's id prefix "
                            "(workflows.ids), whose second part is always the tenant",
                        ),
                    ),
                    recommended_action="treat as a security incident: find the writer "
                    "(audit_log, the workflow's history) and what of the other tenant it "
                    "could reach",
                ),
            )
        )
    return found


def flow_findings(facts: FlowFacts, input: MonitorInput, as_of: datetime) -> list[Finding]:
    """INV-07: no approval pending past its expiry; INV-03: no flow stuck past its SLA."""
    found: list[Finding] = []
    for pending in facts.pending:
        late = as_of - pending.expires_at
        if late <= input.approval_grace:
            continue
        found.append(
            Finding(
                kind="INV-07",
                check="approval_overdue",
                entity_ref=f"approval:{pending.request_id}",
                summary=f"approval {pending.request_id} ({pending.action}) still pending "
                f"{_hours(late)} after its expiry",
                diagnosis=Diagnosis(
                    cause="the workflow that asked no longer waits for it (ended, failed, "
                    "or terminated) and did not close the request",
                    evidence={
                        "request_id": pending.request_id,
                        "workflow_id": pending.workflow_id,
                        "action": pending.action,
                        "role": pending.required_role,
                        "expires_at": pending.expires_at.isoformat(),
                    },
                    alternatives=(
                        Alternative(
                            explanation="the expiry timer has not fired yet",
                            rejected_because=f"it is {_hours(late)} past expiry, beyond "
                            f"the grace of {_hours(input.approval_grace)}",
                        ),
                    ),
                    recommended_action="look at the workflow (temporal workflow describe); "
                    "a timeout fails closed, so no money moved on it; close the row",
                ),
            )
        )
    terminal = set(input.terminal_states)
    for order in facts.orders:
        if order.state in terminal:
            continue
        sla = input.stuck_after_by_state.get(order.state, input.stuck_after)
        idle = as_of - order.updated_at
        if idle <= sla:
            continue
        found.append(
            Finding(
                kind="INV-03",
                check="flow_stuck",
                entity_ref=f"order:{order.order_id}:{order.state}",
                summary=f"order {order.order_id} in {order.state} for {_hours(idle)} "
                f"(SLA {_hours(sla)})",
                diagnosis=Diagnosis(
                    cause="the flow is waiting for an event that does not come (a "
                    "webhook lost, a provider stuck) or it ended without projecting",
                    evidence={
                        "order_id": order.order_id,
                        "state": order.state,
                        "since": order.updated_at.isoformat(),
                        "sla_hours": sla.total_seconds() / 3600,
                        "workflow_id": order.workflow_id,
                    },
                    alternatives=(
                        Alternative(
                            explanation="a state that legitimately lasts this long",
                            rejected_because="the tenant's monitor config gives this state "
                            f"an SLA of {_hours(sla)}",
                        ),
                    ),
                    recommended_action="check the workflow's status and the provider; run "
                    "reconciliation; raise the state's SLA in the config if it is normal",
                ),
            )
        )
    return found


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f}h"
