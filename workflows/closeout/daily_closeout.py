"""DailyCloseout (WF07): one tenant-local day closed from provider truth — the day's
numbers in ``daily_metrics``, our receipts compared with that truth (financial drift to
an approval), a CSV report stored and linked in an email to ops.

**Runs.** Workflow type ``DailyCloseout``. One day: id ``closeout:{tenant}:{YYYY-MM-DD}``
(``autobiz closeout run [--date]``; re-running a closed day runs it again, idempotently).
The schedule's run: the tenant's Temporal Schedule ``closeout-schedule:{tenant}`` at
``closeout.at`` in ``closeout.timezone`` (BusinessConfig) starts a run with no day
(id ``closeout:{tenant}:scheduled-{time}``); it closes the last local day that has ended
and each of the ``catchup_days`` before it that has no report yet — a missed day (worker
or server down) is caught up — each as a child run under that day's own id (oldest first;
a day already running is left to its run; a day whose run fails is noted and left for the
next scheduled run, which finds it without a report). The policy is the tenant's
``daily_closeout`` workflow config, loaded by the worker.

**One day** (the UTC window ``[local midnight, next local midnight)``, DST-correct,
computed in an activity from the time-zone database):

1. reads provider truth (READ tools through ``kernel_call``): the day's Shopify orders
   (``shopify.search_orders``, by ``created_at``), Stripe's balance transactions
   (``stripe.list_balance_transactions``: captures, refunds, fees, net) and refunds
   (``stripe.list_refunds``, to know whose payment each refund is), and the Printful
   costs of the day's orders (``printful.get_order_costs`` by our external ids);
2. reads our receipts for the window (captures, refunds, the payments behind the refunds);
3. computes the totals and the drift (pure, ``metrics``) and records drift as
   ``reconciliation`` rows — ``refund_outside`` (a refund made in Stripe that no receipt
   of ours accounts for; the same row reconciliation would raise, so nobody is asked
   twice) and ``closeout_mismatch`` (a day's captured/refunded total differs) — each open
   financial row in a ``ReconcileDrift`` child (id ``reconcile-drift:{tenant}:{drift}``,
   parent-close ABANDON): finance approves or denies there, and the closeout does not
   wait for it;
4. writes the day's ``daily_metrics`` rows and its ``closeout_reports`` row (CSV, sha256)
   in one transaction: a re-run over the same truth writes the same rows and bytes;
5. signs an expiring link to the CSV (served by the ingress) and emails ops
   (``sendgrid.send_email``, template ``daily_report``).

**Ends** ``completed``; ``failed`` when a read or a write fails after Temporal's retries;
``cancelled`` when cancelled from the Temporal side (rows written stay; children go on).

Deterministic: I/O only through ``kernel_call``, ``internal_activity`` and children.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from kernel import tools
    from kernel.call import internal_activity, kernel_call
    from kernel.tools.printful import OrderCostsInput, OrderCostsOutput, PrintfulOrderCosts
    from kernel.tools.shopify import SearchOrdersInput, SearchOrdersOutput
    from kernel.tools.stripe import (
        ListBalanceTransactionsInput,
        ListBalanceTransactionsOutput,
        ListRefundsInput,
        ListRefundsOutput,
    )
    from workflows.closeout.metrics import (
        day_totals,
        metric_rows,
        receipt_drifts,
        report_csv,
        summary,
    )
    from workflows.closeout.models import (
        CLOSEOUT_LEDGER,
        CLOSEOUT_LINK,
        CLOSEOUT_PLAN,
        CLOSEOUT_WRITE,
        CloseoutInput,
        CloseoutResult,
        CloseoutWrite,
        CloseoutWritten,
        ClosePlan,
        CurrencyTotals,
        DayClosed,
        DayWindow,
        LedgerDay,
        LedgerRequest,
        LinkRequest,
        MetricRow,
        PlanRequest,
        ReportLink,
    )
    from workflows.common.flow import email_ops
    from workflows.common.lifecycle import Flow
    from workflows.common.models import LOAD_FLOW_CONTEXT, FlowContext, FlowContextRequest
    from workflows.ids import (
        DAILY_CLOSEOUT,
        RECONCILE_DRIFT,
        closeout_workflow_id,
        printful_external_id,
    )
    from workflows.reconciliation.models import (
        DriftRow,
    )
    from workflows.reconciliation.reconcile_drift import request_repair
    from workflows.reconciliation.shared import DB_TIMEOUT, failure_text, mark_started, record

BALANCE_MAX = 5000
REFUNDS_MAX = 1000
COSTS_BATCH = 250


@dataclass
class Ledger:
    """What the run has read and written: the result and the ``status`` query's detail."""

    window: DayWindow | None = None
    orders: int = 0
    transactions: int = 0
    totals: tuple[CurrencyTotals, ...] = ()
    metrics: tuple[MetricRow, ...] = ()
    drift_rows: list[DriftRow] = field(default_factory=list)
    repairs: dict[str, str] = field(default_factory=dict)
    written: CloseoutWritten | None = None
    link: ReportLink | None = None
    truncated: bool = False
    planned: tuple[str, ...] = ()  # a scheduled run: the days it closes
    closed: list[DayClosed] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # days whose run failed (caught up next)

    def shown(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        if self.window is not None:
            shown.update(
                day=self.window.day.isoformat(),
                window_start=self.window.start.isoformat(),
                window_end=self.window.end.isoformat(),
                orders=self.orders,
                transactions=self.transactions,
            )
        if self.written is not None:
            shown.update(csv_sha256=self.written.csv_sha256, drifts=len(self.drift_rows))
        if self.planned:
            shown.update(days=list(self.planned), closed=len(self.closed), failed=self.failed)
        return shown


@workflow.defn(name=DAILY_CLOSEOUT.type)
class DailyCloseout(Flow):
    def __init__(self) -> None:
        super().__init__()
        self._facts = Ledger()

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CloseoutInput) -> CloseoutResult:
        mark_started(input.tenant_id, self._state)
        context = await self._begin(DAILY_CLOSEOUT, input)
        try:
            await self._move("planning")
            plan = await self._plan(input)
            if input.day is None:
                await self._close_days(input, plan)
            else:
                await self._close_day(input, context, plan.days[0])
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (ActivityError, ApplicationError, ChildWorkflowError) as exc:
            await self._failed(exc)
            raise
        await self._end("completed")
        return self._result(input)

    async def _plan(self, input: CloseoutInput) -> ClosePlan:
        plan = await internal_activity(
            CLOSEOUT_PLAN,
            PlanRequest(
                tenant_id=input.tenant_id,
                timezone=input.timezone,
                now=workflow.now(),
                day=input.day,
                catchup_days=0 if input.day is not None else input.catchup_days,
            ),
            result_type=ClosePlan,
            limit=DB_TIMEOUT,
        )
        assert plan is not None and plan.days
        return plan

    # -- a scheduled run: each day its own child ----------------------------------------

    async def _close_days(self, input: CloseoutInput, plan: ClosePlan) -> None:
        """Close the planned days oldest first, each under its own id (a missed day is
        caught up under the id a run of its own would have had)."""
        facts = self._facts
        facts.planned = tuple(d.day.isoformat() for d in plan.days)
        self._kernel.decision(
            workflow.now(),
            "days_planned",
            {"days": list(facts.planned), "already_closed": len(plan.already_closed)},
        )
        await self._move("closing_days")
        info = workflow.info()
        for window in plan.days:
            child_id = closeout_workflow_id(input.tenant_id, window.day.isoformat())
            try:
                done = await workflow.execute_child_workflow(
                    DailyCloseout.run,
                    input.model_copy(update={"day": window.day, "catchup_days": 0}),
                    id=child_id,
                    task_queue=info.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                self._kernel.decision(workflow.now(), "day_running", {"workflow_id": child_id})
                continue
            except ChildWorkflowError as exc:
                # One day that cannot be closed must not keep the others open: it has no
                # report, so the next scheduled run catches it up (the status shows it).
                self._kernel.decision(
                    workflow.now(),
                    "day_failed",
                    {"workflow_id": child_id, "error": failure_text(exc)[:300]},
                )
                facts.failed.append(window.day.isoformat())
                continue
            facts.closed.append(
                DayClosed(
                    day=window.day,
                    workflow_id=child_id,
                    csv_sha256=done.csv_sha256,
                    drifts=len(done.drifts),
                    truncated=done.truncated,
                )
            )

    # -- one day ------------------------------------------------------------------------

    async def _close_day(
        self, input: CloseoutInput, context: FlowContext, window: DayWindow
    ) -> None:
        facts = self._facts
        facts.window = window
        await self._move("reading")
        orders = await self._orders(input, window)
        balance = await self._balance(window)
        refunds = await self._refunds(window)
        keys = {
            o.order_id: printful_external_id(input.tenant_id, o.order_id) for o in orders.orders
        }
        costs = await self._costs(sorted(set(keys.values())))
        ledger = await self._ledger(input, window, refunds)
        totals = day_totals(orders, balance, costs)
        drifts = receipt_drifts(window, totals, ledger, refunds, input.tolerance_minor)
        facts.orders, facts.transactions = len(orders.orders), len(balance.transactions)
        facts.totals, facts.metrics = totals, metric_rows(totals)
        self._kernel.decision(
            workflow.now(),
            "day_totals",
            {
                "day": window.day.isoformat(),
                "currencies": [t.currency for t in totals],
                "drifts": len(drifts),
                "kinds": sorted({d.kind for d in drifts}),
            },
        )
        await self._move("recording")
        rows = await record(input.tenant_id, drifts) if drifts else ()
        await self._handle(input, rows)
        csv_text = report_csv(window, input.timezone, totals, orders, costs, drifts, keys)
        facts.written = await self._write(input, window, csv_text, len(rows))
        facts.link = await self._link(input, window)
        await self._move("reporting")
        await self._notify_ops(context, window)

    async def _orders(self, input: CloseoutInput, window: DayWindow) -> SearchOrdersOutput:
        orders = await kernel_call(
            self._kernel,
            tools.shopify.SEARCH_ORDERS,
            SearchOrdersInput(
                created_from=window.start, created_to=window.end, first=input.max_orders
            ),
            step="orders",
        )
        if orders.count >= input.max_orders:
            self._facts.truncated = True
            self._kernel.decision(
                workflow.now(), "orders_truncated", {"max_orders": input.max_orders}
            )
        return orders

    async def _balance(self, window: DayWindow) -> ListBalanceTransactionsOutput:
        balance = await kernel_call(
            self._kernel,
            tools.stripe.LIST_BALANCE_TRANSACTIONS,
            ListBalanceTransactionsInput(
                created_gte=int(window.start.timestamp()),
                created_lt=int(window.end.timestamp()),
                max_results=BALANCE_MAX,
            ),
            step="balance",
        )
        if balance.truncated:
            self._facts.truncated = True
            self._kernel.decision(workflow.now(), "balance_truncated", {"max": BALANCE_MAX})
        return balance

    async def _refunds(self, window: DayWindow) -> ListRefundsOutput:
        refunds = await kernel_call(
            self._kernel,
            tools.stripe.LIST_REFUNDS,
            ListRefundsInput(
                created_gte=int(window.start.timestamp()),
                created_lte=int(window.end.timestamp()) - 1,
                max_results=REFUNDS_MAX,
            ),
            step="refunds",
        )
        if refunds.truncated:
            self._facts.truncated = True
        return refunds

    async def _costs(self, external_ids: list[str]) -> OrderCostsOutput:
        found: list[PrintfulOrderCosts] = []
        missing: list[str] = []
        for i in range(0, len(external_ids), COSTS_BATCH):
            batch = external_ids[i : i + COSTS_BATCH]
            costs = await kernel_call(
                self._kernel,
                tools.printful.GET_ORDER_COSTS,
                OrderCostsInput(external_ids=batch),
                step=f"costs:{i // COSTS_BATCH}",
            )
            found.extend(costs.orders)
            missing.extend(costs.missing)
        return OrderCostsOutput(orders=found, missing=missing)

    async def _ledger(
        self, input: CloseoutInput, window: DayWindow, refunds: ListRefundsOutput
    ) -> LedgerDay:
        intents = sorted({r.payment_intent_id for r in refunds.refunds if r.payment_intent_id})
        ledger = await internal_activity(
            CLOSEOUT_LEDGER,
            LedgerRequest(
                tenant_id=input.tenant_id,
                window_start=window.start,
                window_end=window.end,
                payment_intents=tuple(intents),
            ),
            result_type=LedgerDay,
            limit=DB_TIMEOUT,
        )
        assert ledger is not None
        return ledger

    # -- drift: the reconciliation's rows and repair flow -------------------------------

    async def _handle(self, input: CloseoutInput, rows: tuple[DriftRow, ...]) -> None:
        """Each open financial row to its approval workflow (one already waiting is left),
        under the reconciliation's policy as every drift repair is (its tools, its HITL
        rules, its approvers): the closeout finds drift, it does not repair it."""
        context: FlowContext | None = None
        for row in rows:
            if context is None and row.financial and row.status in ("open", "pending_approval"):
                context = await internal_activity(
                    LOAD_FLOW_CONTEXT,
                    FlowContextRequest(
                        tenant_id=input.tenant_id, workflow_type=RECONCILE_DRIFT.key
                    ),
                    result_type=FlowContext,
                )
                assert context is not None
            if context is not None and row.financial and row.status in ("open", "pending_approval"):
                row, child = await request_repair(
                    input, context, row, found_by=workflow.info().workflow_id
                )
                if child is not None:
                    self._facts.repairs[str(row.drift_id)] = child
            self._facts.drift_rows.append(row)

    # -- writing and telling ------------------------------------------------------------

    async def _write(
        self, input: CloseoutInput, window: DayWindow, csv_text: str, drift_count: int
    ) -> CloseoutWritten:
        facts = self._facts
        written = await internal_activity(
            CLOSEOUT_WRITE,
            CloseoutWrite(
                tenant_id=input.tenant_id,
                day=window.day,
                timezone=input.timezone,
                window_start=window.start,
                window_end=window.end,
                run_id=workflow.info().workflow_id,
                metrics=facts.metrics,
                csv=csv_text,
                summary=summary(facts.totals),
                drift_count=drift_count,
            ),
            result_type=CloseoutWritten,
            limit=DB_TIMEOUT,
        )
        assert written is not None
        return written

    async def _link(self, input: CloseoutInput, window: DayWindow) -> ReportLink:
        link = await internal_activity(
            CLOSEOUT_LINK,
            LinkRequest(tenant_id=input.tenant_id, day=window.day, ttl=input.link_ttl),
            result_type=ReportLink,
            limit=timedelta(seconds=10),
        )
        assert link is not None
        return link

    async def _notify_ops(self, context: FlowContext, window: DayWindow) -> None:
        """The day's figures and the report's link to ops; a failed email is noted, the
        rows and the report stay (they are the record)."""
        facts = self._facts
        if not context.ops_email or facts.link is None:
            return
        figures = "; ".join(
            f"{t.currency}: {t.orders} orders, net {s['net']}, fees {s['stripe_fees']}, "
            f"costs {s['fulfillment_costs']}, margin {s['margin']}"
            for t, s in ((t, summary((t,))[t.currency]) for t in facts.totals)
        )
        failed = await email_ops(
            self._kernel,
            to=context.ops_email,
            template="daily_report",
            subject=f"Daily closeout {window.day.isoformat()}",
            step="report_email",
            variables={
                "day": window.day.isoformat(),
                "figures": figures or "no sales",
                "drifts": str(len(facts.drift_rows)),
                "report_url": facts.link.url,
                "expires_at": facts.link.expires_at.isoformat(timespec="seconds"),
                "command": f"autobiz closeout report --from {window.day} --to {window.day}",
            },
        )
        if failed is not None:
            self._kernel.decision(workflow.now(), "report_email_failed", {"error": failed})

    # -- how the flow ends otherwise --------------------------------------------------

    async def _failed(self, exc: ActivityError | ApplicationError | ChildWorkflowError) -> None:
        if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
            return await self._end_cancelled()
        self._error = failure_text(exc)
        await self._end("failed")

    # -- platform hooks ---------------------------------------------------------------

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown()

    def _result(self, input: CloseoutInput) -> CloseoutResult:
        f = self._facts
        return CloseoutResult(
            workflow_id=workflow.info().workflow_id,
            tenant_id=input.tenant_id,
            day=f.window.day if f.window else None,
            window_start=f.window.start if f.window else None,
            window_end=f.window.end if f.window else None,
            totals=f.totals,
            metrics=f.metrics,
            csv_sha256=f.written.csv_sha256 if f.written else None,
            report_url=f.link.url if f.link else None,
            report_expires_at=f.link.expires_at if f.link else None,
            runs=f.written.runs if f.written else 0,
            drifts=tuple(r.drift_id for r in f.drift_rows),
            repairs=dict(f.repairs),
            truncated=f.truncated,
            closed=tuple(f.closed),
            failed_days=tuple(f.failed),
            cost_micros=self._kernel.cost_micros,
        )
