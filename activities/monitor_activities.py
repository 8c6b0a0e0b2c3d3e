"""What the InvariantMonitor reads and writes: one read per check group, and the
``incidents`` rows (plumbing, our own database through ``Database.tenant``, so RLS
scopes every statement to the monitored tenant).

* ``autobiz.monitor_ledger``: succeeded idempotency records of side-effect tools with the
  receipt under their key; receipts of tools their flow's policy does not grant;
  FINANCIAL receipts with whether the tenant's HITL rule required an approval (evaluated
  on what the receipt records) and the approvals of their run.
* ``autobiz.monitor_runs``: finished runs (terminal order projections) with their trace.
* ``autobiz.monitor_tenancy``: rows naming a workflow id whose tenant part is not theirs.
* ``autobiz.monitor_flows``: approvals pending past expiry, projections idle too long.
* ``autobiz.monitor_record``: upsert the findings; one live incident per (kind, entity).

:func:`fetch_incidents` and :func:`move_incident` serve ``autobiz incidents``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb
from temporalio import activity

from autobiz.db.database import Database
from autobiz.errors import AutobizError
from kernel.codes import ErrorCode
from kernel.config import BusinessConfig
from kernel.contracts import HitlMode, SideEffect, split_ref
from kernel.cost import MICROS_PER_USD
from kernel.hitl_lang import ConditionEvalError, ConditionSyntaxError, holds
from kernel.policy import RunPolicy
from kernel.redaction import redact_value
from kernel.tools import REGISTRY
from workflows.ids import FLOWS
from workflows.monitor.models import (
    MONITOR_FLOWS,
    MONITOR_LEDGER,
    MONITOR_RECORD,
    MONITOR_RUNS,
    MONITOR_TENANCY,
    FactsRequest,
    FinancialReceipt,
    FindingBatch,
    FlowFacts,
    IncidentRow,
    IncidentRows,
    IncidentStatus,
    LedgerFacts,
    OrderFlow,
    PendingApproval,
    Reference,
    RunFact,
    RunFacts,
    SideEffectKey,
    TenancyFacts,
    UngrantedReceipt,
)

INCIDENT_COLUMNS = (
    "incident_id, kind, check_name, entity_ref, status, summary, diagnosis, first_seen, "
    "last_seen, occurrences, first_run_id, last_run_id, acknowledged_by, acknowledged_at, "
    "resolved_by, resolved_at, resolution"
)
# Which moves an operator may make (``autobiz incidents ack|resolve``).
TRANSITIONS: dict[str, tuple[IncidentStatus, ...]] = {
    "acknowledged": ("open",),
    "resolved": ("open", "acknowledged"),
}
_FLOW_KEYS = {f.prefix: f.key for f in FLOWS}

# Rows of this tenant that name a workflow by id, and the id's tenant part is another.
_FOREIGN_REFERENCES = """
SELECT 'receipts' AS tbl, receipt_id::text AS row_ref, workflow_id FROM receipts
 WHERE tenant_id = %(t)s AND split_part(workflow_id, ':', 2) NOT IN (%(t)s, '')
UNION ALL
SELECT 'hitl_requests', request_id, workflow_id FROM hitl_requests
 WHERE tenant_id = %(t)s AND split_part(workflow_id, ':', 2) NOT IN (%(t)s, '')
UNION ALL
SELECT DISTINCT 'traces', workflow_id || '/' || COALESCE(run_id, ''), workflow_id FROM traces
 WHERE tenant_id = %(t)s AND split_part(workflow_id, ':', 2) NOT IN (%(t)s, '')
UNION ALL
SELECT 'email_outbox', internal_key, workflow_id FROM email_outbox
 WHERE tenant_id = %(t)s AND split_part(workflow_id, ':', 2) NOT IN (%(t)s, '')
UNION ALL
SELECT 'reconciliation', drift_id::text, run_id FROM reconciliation
 WHERE tenant_id = %(t)s AND split_part(run_id, ':', 2) NOT IN (%(t)s, '')
UNION ALL
SELECT 'order_state', order_id, data->>'workflow_id' FROM order_state
 WHERE tenant_id = %(t)s AND split_part(data->>'workflow_id', ':', 2) NOT IN (%(t)s, '')
LIMIT %(limit)s
"""

_FINISHED_RUNS = """
SELECT o.order_id, o.state, o.updated_at, o.data->>'workflow_id' AS workflow_id,
       (SELECT count(*) FROM traces t WHERE t.tenant_id = o.tenant_id
           AND t.workflow_id = o.data->>'workflow_id') AS trace_rows,
       (SELECT COALESCE(sum(cost_usd), 0) FROM traces t WHERE t.tenant_id = o.tenant_id
           AND t.workflow_id = o.data->>'workflow_id') AS cost_usd,
       (SELECT count(*) FROM receipts r WHERE r.tenant_id = o.tenant_id
           AND r.workflow_id = o.data->>'workflow_id') AS receipts,
       (SELECT count(*) FROM traces t WHERE t.tenant_id = o.tenant_id
           AND t.workflow_id = o.data->>'workflow_id' AND t.kind = 'tool_started')
           AS tool_calls,
       (SELECT COALESCE(array_agg(DISTINCT split_part(t.tool, '.', 1)), '{}')
          FROM traces t WHERE t.tenant_id = o.tenant_id
           AND t.workflow_id = o.data->>'workflow_id' AND t.kind = 'tool_succeeded'
           AND t.tool IS NOT NULL) AS providers
  FROM order_state o
 WHERE o.tenant_id = %(t)s AND o.state = ANY(%(terminal)s)
   AND o.data ? 'workflow_id' AND o.updated_at < %(before)s
 ORDER BY o.updated_at DESC LIMIT %(limit)s
"""


class IncidentNotFoundError(AutobizError):
    code = ErrorCode.INCIDENT_NOT_FOUND


class IncidentTransitionError(AutobizError):
    code = ErrorCode.INCIDENT_TRANSITION_INVALID


class MonitorActivities:
    """``configs``: the worker's compiled BusinessConfigs (HITL rules, prices)."""

    def __init__(self, db: Database, configs: Mapping[str, BusinessConfig]) -> None:
        self._db = db
        self._configs = dict(configs)

    @activity.defn(name=MONITOR_LEDGER)
    async def read_ledger(self, req: FactsRequest) -> LedgerFacts:
        async with self._db.tenant(req.tenant_id) as s:
            keys = await s.fetch_all(
                "SELECT k.internal_key, k.tool AS tool_ref, k.external_key, k.first_seen_at, "
                "r.receipt_id, r.external_key AS receipt_external_key FROM idempotency_keys k "
                "LEFT JOIN receipts r ON r.tenant_id = k.tenant_id "
                " AND r.internal_key = k.internal_key "
                "WHERE k.tenant_id = %s AND k.status = 'succeeded' AND k.last_seen_at < %s "
                "AND (r.receipt_id IS NULL OR r.external_key <> k.external_key) "
                "ORDER BY k.first_seen_at LIMIT %s",
                (req.tenant_id, req.as_of - req.older_than, req.limit),
            )
            receipts = await s.fetch_all(
                "SELECT r.receipt_id, r.workflow_id, r.tool || '@' || r.tool_version AS "
                "tool_ref, r.amount_minor, r.currency, r.details, r.created_at, "
                "COALESCE((SELECT jsonb_object_agg(h.request_id, h.status) FROM hitl_requests h"
                "  WHERE h.tenant_id = r.tenant_id AND h.workflow_id = r.workflow_id), "
                "  '{}'::jsonb) AS approvals "
                "FROM receipts r WHERE r.tenant_id = %s AND r.side_effect_class = 'FINANCIAL' "
                "ORDER BY r.receipt_id DESC LIMIT %s",
                (req.tenant_id, req.limit),
            )
            recent = await s.fetch_all(
                "SELECT receipt_id, workflow_id, tool || '@' || tool_version AS tool_ref "
                "FROM receipts WHERE tenant_id = %s ORDER BY receipt_id DESC LIMIT %s",
                (req.tenant_id, req.limit),
            )
        config = self._configs.get(req.tenant_id)
        return LedgerFacts(
            side_effects=tuple(
                SideEffectKey.model_validate(k) for k in keys if _needs_receipt(k["tool_ref"])
            ),
            financial=tuple(_financial(r, config) for r in receipts),
            ungranted=tuple(u for r in recent if (u := _ungranted(r, config)) is not None),
        )

    @activity.defn(name=MONITOR_RUNS)
    async def read_runs(self, req: FactsRequest) -> RunFacts:
        async with self._db.tenant(req.tenant_id) as s:
            rows = await s.fetch_all(
                _FINISHED_RUNS,
                {
                    "t": req.tenant_id,
                    "terminal": list(req.terminal_states),
                    "before": req.as_of - req.older_than,
                    "limit": req.limit,
                },
            )
        config = self._configs.get(req.tenant_id)
        return RunFacts(runs=tuple(_run_fact(r, config) for r in rows))

    @activity.defn(name=MONITOR_TENANCY)
    async def read_tenancy(self, req: FactsRequest) -> TenancyFacts:
        async with self._db.tenant(req.tenant_id) as s:
            rows = await s.fetch_all(_FOREIGN_REFERENCES, {"t": req.tenant_id, "limit": req.limit})
        return TenancyFacts(
            references=tuple(
                Reference(table=r["tbl"], row_ref=r["row_ref"], workflow_id=r["workflow_id"])
                for r in rows
            )
        )

    @activity.defn(name=MONITOR_FLOWS)
    async def read_flows(self, req: FactsRequest) -> FlowFacts:
        async with self._db.tenant(req.tenant_id) as s:
            pending = await s.fetch_all(
                "SELECT request_id, workflow_id, action, required_role, requested_at, "
                "expires_at FROM hitl_requests WHERE tenant_id = %s AND status = 'pending' "
                "AND expires_at < %s ORDER BY expires_at LIMIT %s",
                (req.tenant_id, req.as_of, req.limit),
            )
            orders = await s.fetch_all(
                "SELECT order_id, state, updated_at, data->>'workflow_id' AS workflow_id "
                "FROM order_state WHERE tenant_id = %s AND NOT (state = ANY(%s)) "
                "AND updated_at < %s ORDER BY updated_at LIMIT %s",
                (
                    req.tenant_id,
                    list(req.terminal_states),
                    req.as_of - req.older_than,
                    req.limit,
                ),
            )
        return FlowFacts(
            pending=tuple(PendingApproval.model_validate(p) for p in pending),
            orders=tuple(OrderFlow.model_validate(o) for o in orders),
        )

    @activity.defn(name=MONITOR_RECORD)
    async def record(self, batch: FindingBatch) -> IncidentRows:
        """Open an incident per new finding; a live one found again is only bumped."""
        rows: list[IncidentRow] = []
        new_ids: list[int] = []
        async with self._db.tenant(batch.tenant_id) as s:
            for f in batch.findings:
                row = await s.fetch_one(
                    "INSERT INTO incidents (tenant_id, kind, check_name, entity_ref, summary, "
                    "diagnosis, first_run_id, last_run_id) VALUES "
                    "(%(t)s, %(kind)s, %(check)s, %(ref)s, %(summary)s, %(diagnosis)s, "
                    " %(run)s, %(run)s) "
                    "ON CONFLICT (tenant_id, kind, entity_ref) "
                    "  WHERE status IN ('open', 'acknowledged') DO UPDATE SET "
                    "last_seen = now(), last_run_id = EXCLUDED.last_run_id, "
                    "occurrences = incidents.occurrences + CASE WHEN "
                    "  incidents.last_run_id = EXCLUDED.last_run_id THEN 0 ELSE 1 END, "
                    "summary = EXCLUDED.summary, diagnosis = EXCLUDED.diagnosis "
                    f"RETURNING {INCIDENT_COLUMNS}, (xmax = 0) AS inserted",
                    {
                        "t": batch.tenant_id,
                        "kind": f.kind,
                        "check": f.check,
                        "ref": f.entity_ref[:500],
                        "summary": f.summary,
                        "diagnosis": Jsonb(redact_value(f.diagnosis.model_dump(mode="json"))),
                        "run": batch.run_id,
                    },
                )
                assert row is not None
                if row.pop("inserted"):
                    new_ids.append(int(row["incident_id"]))
                rows.append(IncidentRow.model_validate(row))
        if rows:
            activity.logger.warning(
                "invariant monitor %s: %d incident(s), %d new (%s)",
                batch.run_id,
                len(rows),
                len(new_ids),
                ", ".join(sorted({r.kind for r in rows})),
            )
        return IncidentRows(rows=tuple(rows), new_ids=tuple(new_ids))


# -- for ``autobiz incidents`` --------------------------------------------------------------


async def fetch_incidents(
    db: Database,
    tenant_id: str,
    *,
    statuses: Sequence[str] | None = None,
    kind: str | None = None,
    limit: int = 200,
) -> list[IncidentRow]:
    """The tenant's incidents (``statuses`` None: all), most recently seen first."""
    wanted = None if statuses is None else list(statuses)
    async with db.tenant(tenant_id) as s:
        rows = await s.fetch_all(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant_id = %s "
            "AND (%s::text[] IS NULL OR status = ANY(%s::text[])) "
            "AND (%s::text IS NULL OR kind = %s) "
            "ORDER BY last_seen DESC, incident_id DESC LIMIT %s",
            (tenant_id, wanted, wanted, kind, kind, limit),
        )
    return [IncidentRow.model_validate(r) for r in rows]


async def move_incident(
    db: Database,
    tenant_id: str,
    incident_id: int,
    status: IncidentStatus,
    *,
    actor: str,
    note: str | None = None,
) -> IncidentRow:
    """Acknowledge or resolve one incident (who and when recorded; audited)."""
    allowed = TRANSITIONS.get(status)
    if allowed is None:
        raise IncidentTransitionError(f"an incident cannot be moved to {status!r}")
    who, when = ("acknowledged_by", "acknowledged_at")
    if status == "resolved":
        who, when = ("resolved_by", "resolved_at")
    async with db.tenant(tenant_id) as s:
        row = await s.fetch_one(
            f"UPDATE incidents SET status = %s, {who} = %s, {when} = now(), "
            "resolution = COALESCE(%s, resolution) "
            "WHERE tenant_id = %s AND incident_id = %s AND status = ANY(%s) "
            f"RETURNING {INCIDENT_COLUMNS}",
            (status, actor, note, tenant_id, incident_id, list(allowed)),
        )
        if row is None:
            current = await s.fetch_val(
                "SELECT status FROM incidents WHERE tenant_id = %s AND incident_id = %s",
                (tenant_id, incident_id),
            )
        else:
            await s.execute(
                "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
                "VALUES (%s, %s, %s, 'ok', %s)",
                (
                    tenant_id,
                    actor,
                    f"incident.{status}",
                    Jsonb({"incident_id": incident_id, "note": note}),
                ),
            )
    if row is not None:
        return IncidentRow.model_validate(row)
    if current is None:
        raise IncidentNotFoundError(f"incident {incident_id} does not exist for {tenant_id}")
    raise IncidentTransitionError(
        f"incident {incident_id} is {current}; it cannot become {status} "
        f"(allowed from: {', '.join(allowed)})"
    )


# -- helpers ------------------------------------------------------------------------------


def _needs_receipt(tool_ref: str) -> bool:
    try:
        contract = REGISTRY.find(*split_ref(tool_ref))
    except ValueError:
        return False
    return contract is not None and contract.side_effect.needs_receipt


def _policy(config: BusinessConfig | None, workflow_id: str) -> RunPolicy | None:
    """The policy the receipt's run was under: its flow (by id prefix) in the tenant's
    current config (None: no config, or the flow is not enabled)."""
    key = _FLOW_KEYS.get(workflow_id.partition(":")[0])
    if config is None or key is None:
        return None
    try:
        return config.policy_for(key)
    except (KeyError, ValueError):
        return None


def _ungranted(row: dict[str, Any], config: BusinessConfig | None) -> UngrantedReceipt | None:
    """The receipt, when its flow's policy is known and does not grant its tool."""
    policy = _policy(config, row["workflow_id"])
    if policy is None or row["tool_ref"] in policy.tools:
        return None
    return UngrantedReceipt(
        receipt_id=int(row["receipt_id"]),
        workflow_id=row["workflow_id"],
        tool_ref=row["tool_ref"],
        workflow_type=policy.workflow_type,
    )


def approval_requirement(
    policy: RunPolicy | None, tool_ref: str, facts: dict[str, Any], workflow_id: str
) -> tuple[bool, str]:
    """Whether the HITL rule required an approval for a FINANCIAL call, judged on what its
    receipt records (``facts``: amount, currency, the receipt's details). A condition on a
    field the receipt does not record reads it as null, as the gate would."""
    rule = policy.hitl_rule(tool_ref) if policy is not None else None
    if policy is None or rule is None or rule.mode is not HitlMode.WHEN:
        mode = "contract default: always" if rule is None else rule.mode.value
        return True, mode
    name, version = split_ref(tool_ref)
    context = {
        "input": facts,
        "tool": {"name": name, "version": version, "side_effect": SideEffect.FINANCIAL.value},
        "tenant": policy.tenant_id,
        "workflow": {"type": policy.workflow_type, "id": workflow_id},
    }
    try:
        required = holds(rule.when or "", context)
    except (ConditionSyntaxError, ConditionEvalError) as exc:
        return True, f"when {rule.when} (not evaluable on the receipt: {exc}; fail safe)"
    return required, f"when {rule.when}" if required else f"not ({rule.when})"


def _financial(row: dict[str, Any], config: BusinessConfig | None) -> FinancialReceipt:
    amount = int(row["amount_minor"] or 0)
    currency = str(row["currency"] or "").strip()
    facts = {**dict(row["details"] or {}), "amount_minor": amount, "currency": currency}
    required, why = approval_requirement(
        _policy(config, row["workflow_id"]), row["tool_ref"], facts, row["workflow_id"]
    )
    return FinancialReceipt(
        receipt_id=int(row["receipt_id"]),
        workflow_id=row["workflow_id"],
        tool_ref=row["tool_ref"],
        amount_minor=amount,
        currency=currency,
        created_at=row["created_at"],
        approval_required=required,
        requirement=why,
        approvals={str(k): str(v) for k, v in dict(row["approvals"] or {}).items()},
    )


def _run_fact(row: dict[str, Any], config: BusinessConfig | None) -> RunFact:
    providers = sorted(set(row["providers"] or ()))
    priced = tuple(p for p in providers if config.prices.call_cost(p) > 0) if config else ()
    cost = Decimal(row["cost_usd"] or 0) * MICROS_PER_USD
    policy = _policy(config, row["workflow_id"])
    return RunFact(
        workflow_id=row["workflow_id"],
        order_id=row["order_id"],
        state=row["state"],
        updated_at=row["updated_at"],
        trace_rows=int(row["trace_rows"]),
        cost_micros=int(cost),
        receipts=int(row["receipts"]),
        priced_calls=priced,
        tool_calls=int(row["tool_calls"]),
        max_tool_calls=policy.bounds.max_tool_calls if policy else None,
        max_cost_micros=policy.bounds.max_cost_micros if policy else None,
    )
