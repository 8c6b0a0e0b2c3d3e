"""The Grafana dashboards of dashboards/*.json, written from code with grafana-foundation-sdk.

    python dashboards/build.py           # (re)write every dashboard
    python dashboards/build.py --check   # exit 1 if a committed file differs

Every panel queries the data source chosen in the ``datasource`` variable, which defaults
to the provisioned Prometheus (uid ``prometheus``, infra/grafana/provisioning/). Metric
names are docs/metrics.md's; ``autobiz:*`` series are the recording rules of
infra/prometheus/rules/autobiz.rules.yml. tests/hygiene/test_dashboards.py parses every
query and checks the names it uses.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as gm
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableOption

HERE = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
DEFAULT_DATASOURCE_UID = "prometheus"
RATE = "$__rate_interval"
T = 'tenant=~"$tenant"'


@dataclass
class Query:
    expr: str
    legend: str = ""


@dataclass
class Panel:
    title: str
    queries: list[Query]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    thresholds: list[float] = field(default_factory=list)


@dataclass
class Board:
    file: str
    uid: str
    title: str
    description: str
    rows: dict[str, list[Panel]]
    tenant_metric: str | None = None  # the metric whose tenant label fills $tenant
    tags: list[str] = field(default_factory=list)


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def _panel(spec: Panel) -> timeseries.Panel | stat.Panel:
    made: timeseries.Panel | stat.Panel = (
        stat.Panel() if spec.kind == "stat" else timeseries.Panel().min(0)
    )
    made = made.title(spec.title).datasource(DATASOURCE).unit(spec.unit).span(spec.width)
    made = made.height(4 if spec.kind == "stat" else 8)
    if spec.description:
        made = made.description(spec.description)
    if spec.thresholds:
        steps = [gm.Threshold(value=None, color="green")]
        steps += [
            gm.Threshold(value=v, color=c)
            for c, v in zip(["orange", "red"], spec.thresholds, strict=False)
        ]
        made = made.thresholds(gd.ThresholdsConfig().mode(gm.ThresholdsMode.ABSOLUTE).steps(steps))
    for i, query in enumerate(spec.queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + i))
        if query.legend:
            target = target.legend_format(query.legend)
        if spec.kind == "stat":
            target = target.instant()
        made = made.with_target(target.datasource(DATASOURCE))
    return made


def render(board: Board) -> str:
    """The dashboard's JSON, as committed."""
    built = (
        gd.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["autobiz", *board.tags])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()
        .with_variable(
            gd.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(VariableOption(text="Prometheus", value=DEFAULT_DATASOURCE_UID))
        )
    )
    if board.tenant_metric:
        built = built.with_variable(
            gd.QueryVariable("tenant")
            .label("Tenant")
            .datasource(DATASOURCE)
            .query(f"label_values({board.tenant_metric}, tenant)")
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(text="All", value="$__all"))
            .refresh(gm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    for row, panels in board.rows.items():
        built = built.with_row(gd.Row(row))
        for spec in panels:
            built = built.with_panel(_panel(spec))
    return json.dumps(built.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def p95(metric: str, by: str, selector: str = "", window: str = RATE) -> str:
    return (
        f"histogram_quantile(0.95, sum by (le, {by}) "
        f"(rate({metric}_bucket{{{selector}}}[{window}])))"
    )


GATES = Board(
    file="gate-pass-rates.json",
    uid="autobiz-gates",
    title="AutoBiz · Gate pass rates",
    description="The kernel's gate: decisions by outcome, pass rates with their 95 % "
    "lower confidence bound, denials by check, terminations, tool calls. Runbook RB-06.",
    tenant_metric="autobiz_gate_decisions_total",
    rows={
        "Pass rate": [
            Panel(
                "Pass rate per tenant (last hour)",
                [
                    q(
                        f"""sum by (tenant) (increase(autobiz_gate_decisions_total{{{T},
                        outcome="allowed"}}[1h]))
                        / sum by (tenant) (increase(autobiz_gate_decisions_total{{{T}}}[1h]))""",
                        "{{tenant}}",
                    )
                ],
                unit="percentunit",
                description="allowed / all decisions. AutobizGatePassRateDrop fires on a "
                "drop of more than 5 points against the day before.",
            ),
            Panel(
                "Pass rate, 95 % lower bound (Wilson), per tool",
                [q(f"autobiz:gate_pass_lcb95:1h{{{T}}}", "{{tenant}} {{tool}}")],
                unit="percentunit",
                description="Recording rule autobiz:gate_pass_lcb95:1h: low when there "
                "are few decisions, so a small sample does not look perfect.",
            ),
        ],
        "Decisions": [
            Panel(
                "Decisions by outcome",
                [
                    q(
                        f"sum by (outcome) (rate(autobiz_gate_decisions_total{{{T}}}[{RATE}]))",
                        "{{outcome}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Denials by check and tool",
                [
                    q(
                        f"""sum by (tool, outcome) (rate(autobiz_gate_decisions_total{{{T},
                        outcome=~"denied_.*"}}[{RATE}]))""",
                        "{{tool}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Run terminations by bound (last hour)",
                [
                    q(
                        f"sum by (reason) (increase(autobiz_run_terminations_total{{{T}}}[1h]))",
                        "{{reason}}",
                    )
                ],
            ),
            Panel(
                "Approvals asked (needs_approval, last hour)",
                [
                    q(
                        f"""sum by (tool) (increase(autobiz_gate_decisions_total{{{T},
                        outcome="needs_approval"}}[1h]))""",
                        "{{tool}}",
                    )
                ],
            ),
        ],
        "Tool calls": [
            Panel(
                "Tool calls by outcome",
                [
                    q(
                        f"sum by (tool, outcome) (rate(autobiz_tool_calls_total{{{T}}}[{RATE}]))",
                        "{{tool}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Tool call latency p95",
                [q(p95("autobiz_tool_call_duration_seconds", "tool", T), "{{tool}}")],
                unit="s",
            ),
            Panel(
                "Idempotency outcomes (replayed = a hit)",
                [
                    q(
                        f"""sum by (outcome)
                        (rate(autobiz_idempotency_outcomes_total{{{T}}}[{RATE}]))""",
                        "{{outcome}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Receipts written by side effect",
                [
                    q(
                        f"""sum by (side_effect, outcome)
                        (rate(autobiz_receipts_total{{{T}}}[{RATE}]))""",
                        "{{side_effect}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
        ],
    },
)

HITL = Board(
    file="hitl-backlog.json",
    uid="autobiz-hitl",
    title="AutoBiz · HITL backlog",
    description="Pending approval requests, their age, outcomes and wait. Runbook RB-01.",
    tenant_metric="autobiz_approval_backlog",
    rows={
        "Backlog": [
            Panel(
                "Pending requests",
                [q(f"sum(max by (tenant, action) (autobiz_approval_backlog{{{T}}}))")],
                kind="stat",
                width=6,
                thresholds=[25, 50],
            ),
            Panel(
                "Oldest pending",
                [q(f"max(autobiz_approval_backlog_oldest_age_seconds{{{T}}})")],
                kind="stat",
                unit="s",
                width=6,
                thresholds=[600, 900],
            ),
            Panel(
                "Expired (last 24 h)",
                [
                    q(
                        f"""sum(increase(autobiz_approval_outcomes_total{{{T},
                        outcome="expired"}}[24h]))"""
                    )
                ],
                kind="stat",
                width=6,
            ),
            Panel(
                "Dropped decision signals (last 24 h)",
                [q(f"sum(increase(autobiz_approval_signals_dropped_total{{{T}}}[24h]))")],
                kind="stat",
                width=6,
            ),
            Panel(
                "Pending by tenant and action",
                [
                    q(
                        f"max by (tenant, action) (autobiz_approval_backlog{{{T}}})",
                        "{{tenant}} {{action}}",
                    )
                ],
                description="Every worker reports the same rows: max, not sum. "
                "AutobizApprovalBacklogDeep fires above 50 per tenant.",
            ),
            Panel(
                "Oldest pending age by tenant and action",
                [
                    q(
                        f"""max by (tenant, action)
                        (autobiz_approval_backlog_oldest_age_seconds{{{T}}})""",
                        "{{tenant}} {{action}}",
                    )
                ],
                unit="s",
                thresholds=[600, 900],
                description="AutobizApprovalOldestPending fires above 15 minutes.",
            ),
        ],
        "Flow": [
            Panel(
                "Requests opened and closed (per hour)",
                [
                    q(
                        f"sum by (action) (increase(autobiz_approval_requests_total{{{T}}}[1h]))",
                        "opened {{action}}",
                    ),
                    q(
                        f"sum by (action) (increase(autobiz_approval_outcomes_total{{{T}}}[1h]))",
                        "closed {{action}}",
                    ),
                ],
            ),
            Panel(
                "Outcomes (per hour)",
                [
                    q(
                        f"sum by (outcome) (increase(autobiz_approval_outcomes_total{{{T}}}[1h]))",
                        "{{outcome}}",
                    )
                ],
            ),
            Panel(
                "Wait until decided, p50 and p95",
                [
                    q(
                        f"""histogram_quantile(0.5, sum by (le, action)
                        (rate(autobiz_approval_wait_seconds_bucket{{{T}}}[1h])))""",
                        "p50 {{action}}",
                    ),
                    q(p95("autobiz_approval_wait_seconds", "action", T, "1h"), "p95 {{action}}"),
                ],
                unit="s",
            ),
            Panel(
                "Reminders and escalations sent (per hour)",
                [
                    q(
                        f"sum by (kind) (increase(autobiz_approval_notices_total{{{T}}}[1h]))",
                        "{{kind}}",
                    )
                ],
            ),
        ],
    },
)

BREAKERS = Board(
    file="circuit-breakers.json",
    uid="autobiz-breakers",
    title="AutoBiz · Circuit breakers",
    description="Provider circuit breakers (shared by all workers) and the tool calls "
    "behind them. State: 0 closed, 1 half-open, 2 open, as each worker last saw it "
    "(max over workers; `autobiz breaker status` shows the breaker itself). Runbook RB-02.",
    tenant_metric="autobiz_breaker_state",
    rows={
        "State": [
            Panel(
                "Breakers open",
                [q(f"sum(max by (provider, tenant) (autobiz_breaker_state{{{T}}}) == bool 2)")],
                kind="stat",
                width=6,
                thresholds=[1, 1],
            ),
            Panel(
                "Breakers half-open",
                [q(f"sum(max by (provider, tenant) (autobiz_breaker_state{{{T}}}) == bool 1)")],
                kind="stat",
                width=6,
                thresholds=[1, 1],
            ),
            Panel(
                "State by provider and tenant (0 closed, 1 half-open, 2 open)",
                [
                    q(
                        f"max by (provider, tenant) (autobiz_breaker_state{{{T}}})",
                        "{{provider}} {{tenant}}",
                    )
                ],
                width=12,
                description="AutobizBreakerOpen fires when one is not closed for 5 minutes.",
            ),
            Panel(
                "Transitions (per hour)",
                [
                    q(
                        f"""sum by (provider, tenant, to)
                        (increase(autobiz_breaker_transitions_total{{{T}}}[1h]))""",
                        "{{provider}} {{tenant}} → {{to}}",
                    )
                ],
            ),
            Panel(
                "Calls failed fast",
                [
                    q(
                        f"""sum by (provider, tenant, state)
                        (rate(autobiz_breaker_rejections_total{{{T}}}[{RATE}]))""",
                        "{{provider}} {{tenant}} {{state}}",
                    )
                ],
                unit="ops",
            ),
        ],
        "Calls behind them": [
            Panel(
                "Tool call failure ratio by tool",
                [
                    q(
                        f"""sum by (tool)
                        (rate(autobiz_tool_calls_total{{{T},outcome="failed"}}[{RATE}]))
                        / sum by (tool) (rate(autobiz_tool_calls_total{{{T}}}[{RATE}]))""",
                        "{{tool}}",
                    )
                ],
                unit="percentunit",
            ),
            Panel(
                "Activity failures by activity type",
                [
                    q(
                        f"""sum by (activity_type)
                        (rate(temporal_activity_execution_failed_total[{RATE}]))""",
                        "{{activity_type}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Tool call latency p95",
                [q(p95("autobiz_tool_call_duration_seconds", "tool", T), "{{tool}}")],
                unit="s",
                width=24,
            ),
        ],
    },
)

RECONCILIATION = Board(
    file="reconciliation.json",
    uid="autobiz-reconciliation",
    title="AutoBiz · Reconciliation queue",
    description="Drift between our records and provider truth, its resolution, and the "
    "Reconciliation runs. Runbook RB-03.",
    tenant_metric="autobiz_reconciliation_drift_open",
    rows={
        "Queue": [
            Panel(
                "Rows to act on",
                [
                    q(
                        f"""sum(max by (tenant, kind, status)
                        (autobiz_reconciliation_drift_open{{{T}}}))"""
                    )
                ],
                kind="stat",
                width=6,
                thresholds=[1, 10],
            ),
            Panel(
                "Waiting for finance",
                [
                    q(
                        f"""sum(max by (tenant, kind)
                        (autobiz_reconciliation_drift_open{{{T},status="pending_approval"}}))"""
                    )
                ],
                kind="stat",
                width=6,
            ),
            Panel(
                "Open drift by kind and status",
                [
                    q(
                        f"max by (tenant, kind, status) (autobiz_reconciliation_drift_open{{{T}}})",
                        "{{tenant}} {{kind}} {{status}}",
                    )
                ],
                width=12,
            ),
            Panel(
                "New drift (per hour)",
                [
                    q(
                        f"""sum by (kind)
                        (increase(autobiz_reconciliation_drift_detected_total{{{T}}}[1h]))""",
                        "{{kind}}",
                    )
                ],
            ),
            Panel(
                "Resolutions (per hour)",
                [
                    q(
                        f"""sum by (kind, status)
                        (increase(autobiz_reconciliation_drift_resolved_total{{{T}}}[1h]))""",
                        "{{kind}} {{status}}",
                    )
                ],
            ),
        ],
        "Runs": [
            Panel(
                "Reconciliation runs (per hour)",
                [
                    q(
                        """sum(increase(temporal_workflow_completed_total
                        {workflow_type="Reconciliation"}[1h]))""",
                        "completed",
                    ),
                    q(
                        """sum(increase(temporal_workflow_failed_total
                        {workflow_type="Reconciliation"}[1h]))""",
                        "failed",
                    ),
                ],
            ),
            Panel(
                "Run duration p95",
                [
                    q(
                        p95(
                            "temporal_workflow_endtoend_latency_seconds",
                            "workflow_type",
                            'workflow_type=~"Reconciliation|ReconcileDrift"',
                            "1h",
                        ),
                        "{{workflow_type}}",
                    )
                ],
                unit="s",
            ),
        ],
    },
)

INVARIANTS = Board(
    file="invariant-violations.json",
    uid="autobiz-invariants",
    title="AutoBiz · Invariant violations",
    description="Incidents the InvariantMonitor opened, by invariant, and the bounds the "
    "gate enforced. Runbook RB-04.",
    tenant_metric="autobiz_invariant_violations_open",
    rows={
        "Incidents": [
            Panel(
                "Open (unacknowledged)",
                [
                    q(
                        f"""sum(max by (tenant, kind)
                        (autobiz_invariant_violations_open{{{T},status="open"}}))"""
                    )
                ],
                kind="stat",
                width=6,
                thresholds=[1, 1],
            ),
            Panel(
                "Acknowledged",
                [
                    q(
                        f"""sum(max by (tenant, kind)
                        (autobiz_invariant_violations_open{{{T},status="acknowledged"}}))"""
                    )
                ],
                kind="stat",
                width=6,
            ),
            Panel(
                "Database gauges refreshed",
                [q("time() - max(autobiz_metrics_refresh_timestamp_seconds)")],
                kind="stat",
                unit="s",
                width=6,
                thresholds=[60, 120],
                description="Seconds since the workers last refreshed the backlog, "
                "incident and drift gauges (AutobizMetricsStale above 120 s).",
            ),
            Panel(
                "Unresolved by invariant and status",
                [
                    q(
                        f"max by (tenant, kind, status) (autobiz_invariant_violations_open{{{T}}})",
                        "{{tenant}} {{kind}} {{status}}",
                    )
                ],
            ),
            Panel(
                "New incidents (per hour)",
                [
                    q(
                        f"sum by (kind) (increase(autobiz_invariant_violations_total{{{T}}}[1h]))",
                        "{{kind}}",
                    )
                ],
            ),
        ],
        "Bounds (INV-03)": [
            Panel(
                "Run terminations by bound (per hour)",
                [
                    q(
                        f"sum by (reason) (increase(autobiz_run_terminations_total{{{T}}}[1h]))",
                        "{{reason}}",
                    )
                ],
            ),
            Panel(
                "Loop and bound denials (per hour)",
                [
                    q(
                        f"""sum by (tool, outcome) (increase(autobiz_gate_decisions_total{{{T},
                        outcome=~"denied_bounds|denied_loop"}}[1h]))""",
                        "{{tool}} {{outcome}}",
                    )
                ],
            ),
        ],
    },
)

COST = Board(
    file="cost-attribution.json",
    uid="autobiz-cost",
    title="AutoBiz · Cost attribution",
    description="What runs cost (provider call prices and LLM tokens), by workflow type, "
    "tenant and tool.",
    tenant_metric="autobiz_cost_microdollars_total",
    rows={
        "Cost": [
            Panel(
                "Cost, last 24 h",
                [q(f"sum(increase(autobiz_cost_microdollars_total{{{T}}}[24h])) / 1e6")],
                kind="stat",
                unit="currencyUSD",
                width=6,
            ),
            Panel(
                "Cost per workflow type (USD per hour)",
                [
                    q(
                        f"""sum by (workflow_type)
                        (increase(autobiz_cost_microdollars_total{{{T}}}[1h])) / 1e6""",
                        "{{workflow_type}}",
                    )
                ],
                unit="currencyUSD",
                width=18,
            ),
            Panel(
                "Cost per tenant (USD per hour)",
                [
                    q(
                        f"""sum by (tenant)
                        (increase(autobiz_cost_microdollars_total{{{T}}}[1h])) / 1e6""",
                        "{{tenant}}",
                    )
                ],
                unit="currencyUSD",
            ),
            Panel(
                "Cost per tool (USD per hour)",
                [
                    q(
                        f"""sum by (tool)
                        (increase(autobiz_cost_microdollars_total{{{T}}}[1h])) / 1e6""",
                        "{{tool}}",
                    )
                ],
                unit="currencyUSD",
            ),
            Panel(
                "Cost per completed workflow (USD, last 24 h)",
                [
                    q(
                        f"""sum by (workflow_type)
                        (increase(autobiz_cost_microdollars_total{{{T}}}[24h])) / 1e6
                        / sum by (workflow_type)
                        (increase(temporal_workflow_completed_total[24h]))""",
                        "{{workflow_type}}",
                    )
                ],
                unit="currencyUSD",
                width=24,
            ),
        ],
    },
)

TEMPORAL = Board(
    file="temporal-sdk.json",
    uid="autobiz-temporal",
    title="AutoBiz · Temporal SDK (workers)",
    description="The workers as the Temporal SDK sees them: up, pollers, slots, "
    "schedule-to-start latency, workflow and activity outcomes. Runbooks RB-05, RB-07, RB-08.",
    tags=["temporal"],
    rows={
        "Workers": [
            Panel(
                "Workers up",
                [q('sum(up{job="autobiz-worker"})')],
                kind="stat",
                width=6,
            ),
            Panel(
                "Pollers by type",
                [q("sum by (poller_type) (temporal_num_pollers)", "{{poller_type}}")],
                width=6,
            ),
            Panel(
                "Workers by version",
                [q("count by (version) (autobiz_build_info)", "{{version}}")],
                width=12,
                description="Two versions at once: a rollout (AutobizDeployMixedVersions after "
                "30 minutes); a version coming back: a rollback (AutobizDeployRolledBack, RB-05).",
            ),
            Panel(
                "Task slots available",
                [
                    q(
                        "min by (instance, worker_type) (temporal_worker_task_slots_available)",
                        "{{instance}} {{worker_type}}",
                    )
                ],
                description="AutobizWorkerSlotsExhausted fires on 0 for 10 minutes.",
            ),
            Panel(
                "Task slots used",
                [
                    q(
                        "sum by (worker_type) (temporal_worker_task_slots_used)",
                        "{{worker_type}}",
                    )
                ],
            ),
        ],
        "Latency": [
            Panel(
                "Workflow task schedule-to-start p95",
                [
                    q(
                        p95(
                            "temporal_workflow_task_schedule_to_start_latency_seconds", "task_queue"
                        ),
                        "{{task_queue}}",
                    )
                ],
                unit="s",
                thresholds=[5, 10],
            ),
            Panel(
                "Activity schedule-to-start p95",
                [
                    q(
                        p95("temporal_activity_schedule_to_start_latency_seconds", "task_queue"),
                        "{{task_queue}}",
                    )
                ],
                unit="s",
                thresholds=[30, 60],
            ),
            Panel(
                "Activity execution latency p95",
                [
                    q(
                        p95("temporal_activity_execution_latency_seconds", "activity_type"),
                        "{{activity_type}}",
                    )
                ],
                unit="s",
            ),
            Panel(
                "Workflow task execution latency p95",
                [
                    q(
                        p95("temporal_workflow_task_execution_latency_seconds", "workflow_type"),
                        "{{workflow_type}}",
                    )
                ],
                unit="s",
            ),
        ],
        "Outcomes": [
            Panel(
                "Workflows completed and failed",
                [
                    q(
                        f"sum by (workflow_type) (rate(temporal_workflow_completed_total[{RATE}]))",
                        "completed {{workflow_type}}",
                    ),
                    q(
                        f"sum by (workflow_type) (rate(temporal_workflow_failed_total[{RATE}]))",
                        "failed {{workflow_type}}",
                    ),
                ],
                unit="ops",
            ),
            Panel(
                "Workflow task failures by reason",
                [
                    q(
                        f"""sum by (workflow_type, failure_reason)
                        (rate(temporal_workflow_task_execution_failed_total[{RATE}]))""",
                        "{{workflow_type}} {{failure_reason}}",
                    )
                ],
                unit="ops",
                description="NonDeterminismError after a deploy: roll back (RB-05).",
            ),
            Panel(
                "Activity failures",
                [
                    q(
                        f"""sum by (activity_type)
                        (rate(temporal_activity_execution_failed_total[{RATE}]))""",
                        "{{activity_type}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Requests to the Temporal service",
                [
                    q(
                        f"sum by (operation) (rate(temporal_request_total[{RATE}]))",
                        "{{operation}}",
                    ),
                ],
                unit="reqps",
            ),
        ],
    },
)

INGRESS = Board(
    file="ingress.json",
    uid="autobiz-ingress",
    title="AutoBiz · Ingress",
    description="Webhooks: events by source and outcome, signatures, ack latency, the "
    "ordering gate and the relay. Runbook RB-09.",
    tenant_metric="autobiz_ingress_relay_backlog",
    rows={
        "Webhooks": [
            Panel(
                "Ingress up",
                [q('sum(up{job="autobiz-ingress"})')],
                kind="stat",
                width=6,
            ),
            Panel(
                "Events by source and outcome",
                [
                    q(
                        f"sum by (source, outcome) (rate(autobiz_ingress_events_total[{RATE}]))",
                        "{{source}} {{outcome}}",
                    )
                ],
                unit="reqps",
                width=18,
            ),
            Panel(
                "Signature failures and cross-tenant refusals",
                [
                    q(
                        f"""sum by (source, reason)
                        (rate(autobiz_ingress_signature_failures_total[{RATE}]))""",
                        "failed {{source}} {{reason}}",
                    ),
                    q(
                        f"""sum by (source)
                        (rate(autobiz_ingress_signature_checks_total[{RATE}]))""",
                        "checked {{source}}",
                    ),
                    q(
                        f"""sum by (source, code)
                        (rate(autobiz_ingress_security_incidents_total[{RATE}]))""",
                        "refused {{source}} {{code}}",
                    ),
                ],
                unit="reqps",
            ),
            Panel(
                "Ack latency p95",
                [q(p95("autobiz_ingress_ack_duration_seconds", "source"), "{{source}}")],
                unit="s",
            ),
        ],
        "Relay": [
            Panel(
                "Waiting for the relay",
                [
                    q(
                        f"max by (tenant, source, status) (autobiz_ingress_relay_backlog{{{T}}})",
                        "{{tenant}} {{source}} {{status}}",
                    )
                ],
            ),
            Panel(
                "Oldest waiting event",
                [
                    q(
                        f"""max by (tenant, source, status)
                        (autobiz_ingress_relay_backlog_oldest_age_seconds{{{T}}})""",
                        "{{tenant}} {{source}} {{status}}",
                    )
                ],
                unit="s",
                thresholds=[300, 600],
            ),
            Panel(
                "Held and released by the ordering gate",
                [
                    q(
                        f"sum by (source) (rate(autobiz_ingress_held_total[{RATE}]))",
                        "held {{source}}",
                    ),
                    q(
                        f"sum by (source, reason) (rate(autobiz_ingress_released_total[{RATE}]))",
                        "released {{source}} {{reason}}",
                    ),
                ],
                unit="ops",
            ),
            Panel(
                "Hand-offs to workflows",
                [
                    q(
                        f"sum by (source, outcome) (rate(autobiz_ingress_handoffs_total[{RATE}]))",
                        "{{source}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
        ],
    },
)

BOARDS = [GATES, HITL, BREAKERS, RECONCILIATION, INVARIANTS, COST, TEMPORAL, INGRESS]


def main(argv: list[str], write: Callable[[Path, str], None] | None = None) -> int:
    stale = []
    for board in BOARDS:
        path = HERE / board.file
        text = render(board)
        if "--check" in argv:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(board.file)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)} (run python dashboards/build.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
