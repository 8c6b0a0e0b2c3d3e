"""`autobiz order start|status`, `autobiz refund request`, `autobiz cancel request`.

Each flow is started by its business key through ``starters.flows``: a second start for
the same key attaches to the running workflow, a key whose last run completed is refused
(``ORDER_FLOW_CLOSED`` / ``REQUEST_CLOSED``) — a duplicate trigger never makes a second
run — and a key whose last run failed or was terminated starts its next run (the
side effects the failed run completed are replayed, not redone: ``autobiz.business_keys``).
The steps every start command shares are :mod:`autobiz.cli.flow_start`'s.
Human output by default, ``--json`` for scripts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from autobiz.cli.flow_runtime import (
    JSON_OPT,
    TENANT_OPT,
    business_config,
    database,
    dump,
    failure_of,
    format_money,
    iso,
    parse_amount,
    parse_currency,
    run,
    temporal_client,
    temporal_errors,
    tenant_of,
    within,
)
from autobiz.cli.flow_start import (
    FlowStart,
    describe,
    finish,
    outcome,
    previous_run,
    run_number,
    start,
    started_line,
    wait_for,
)
from autobiz.cli.output import console, emit_json
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from temporalio.client import WorkflowExecutionDescription, WorkflowHandle

    from autobiz.db.database import Database
    from kernel.config import BusinessConfig
    from kernel.refunds import PaymentStanding

order_app = typer.Typer(help="OrderFulfill (WF01): start an order's flow, see where it is.")
refund_app = typer.Typer(help="Refund (WF03): ask for a refund of a captured payment.")
cancel_app = typer.Typer(help="OrderCancellation (WF04): cancel an order.")

_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}$")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PI_RE = re.compile(r"^pi_[A-Za-z0-9_]{1,250}$")
NOTE_MAX = 500

WAIT_OPT = typer.Option(False, "--wait", help="Wait for the flow to finish; print its result.")
PI_HELP = "Stripe PaymentIntent (pi_…)."
APPROVAL_HINT = "an approval may be needed: `autobiz approvals list`"
APPROVAL_FOLLOW = "if it needs an approval it waits for one: see `autobiz approvals list`"
# Temporal statuses after which the key's next start makes a new run.
ENDED_UNFINISHED = ("FAILED", "TERMINATED", "CANCELED", "TIMED_OUT")


def _order_id(value: str) -> str:
    if not _ORDER_ID_RE.match(value):
        raise AutobizError(
            f"order id {value!r} is not a Shopify order id",
            code=ErrorCode.ORDER_ID_INVALID,
            hint="use the order's numeric id (e.g. 1001) or its gid://shopify/Order/… id",
        )
    return value


def _payment_intent(value: str | None) -> str | None:
    if value is not None and not _PI_RE.match(value):
        raise AutobizError(
            f"{value!r} is not a Stripe PaymentIntent id",
            code=ErrorCode.PAYMENT_INTENT_INVALID,
            hint="PaymentIntent ids start with pi_",
        )
    return value


def _given(tenant: str | None, order_id: str, payment_intent: str | None) -> tuple[Settings, str]:
    """The options every order command takes, checked first: the settings and the tenant."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _order_id(order_id)
    _payment_intent(payment_intent)
    return settings, tenant_id


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


# --- order ---------------------------------------------------------------------------


def _order_flow(order_id: str) -> FlowStart:
    return FlowStart(
        kind="order flow",
        closed_code=ErrorCode.ORDER_FLOW_CLOSED,
        closed_kind=f"order {order_id}",
        closed_hint=f"see `autobiz order status {order_id}`; use `autobiz refund request` "
        "or `autobiz cancel request` to undo it",
        wait_hint=f"follow it with `autobiz order status {order_id}`",
    )


async def _start_order(
    settings: Settings,
    config: BusinessConfig,
    order_id: str,
    payment_intent: str | None,
    *,
    json_out: bool,
    wait: bool,
) -> dict[str, Any]:
    """Start (or attach to, or run again) the order's flow; say which."""
    from starters.flows import start_order
    from workflows.ids import order_workflow_id

    tenant_id, queue = config.tenant, settings.temporal.task_queue
    workflow_id = order_workflow_id(tenant_id, order_id)
    flow = _order_flow(order_id)
    client = await temporal_client(settings)
    with temporal_errors(f"reading {workflow_id}"):
        previous = await previous_run(client, workflow_id)

    def starter() -> Awaitable[WorkflowHandle[Any, Any]]:
        return start_order(
            client, config, order_id=order_id, task_queue=queue, payment_intent=payment_intent
        )

    handle, started = await start(client, workflow_id, starter, flow)
    rerun = previous if started else None
    out = outcome(workflow_id, handle, tenant_id, order_id, started, task_queue=queue)
    out["previous_run"] = rerun
    out["run_number"] = run_number(rerun) if started else None
    if not json_out:
        console.print(started_line(flow.kind, workflow_id, started, rerun), highlight=False)
    return await wait_for(out, handle, flow, wait=wait, json_out=json_out)


def _order_done(order_id: str) -> Callable[[dict[str, Any]], str]:
    def line(result: dict[str, Any]) -> str:
        return (
            f"order {order_id}: [bold]{result['state']}[/], captured "
            f"{format_money(result['captured_minor'], result['currency'])}, tracking "
            f"{result['tracking_number'] or '-'}"
        )

    return line


@order_app.command("start")
def order_start(
    order_id: str = typer.Argument(..., help="Shopify order id (e.g. 1001)."),
    payment_intent: str | None = typer.Option(
        None, "--payment-intent", help=PI_HELP + " Default: the order's own payment."
    ),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
    wait: bool = WAIT_OPT,
) -> None:
    """Start OrderFulfill for an order: a running flow for it is attached to; one that
    failed or was terminated gets its next run; a completed one is refused."""
    settings, tenant_id = _given(tenant, order_id, payment_intent)
    config = business_config(settings, tenant_id)
    out = run(
        _start_order(settings, config, order_id, payment_intent, json_out=json_out, wait=wait)
    )
    follow = _order_flow(order_id).wait_hint
    finish(out, json_out=json_out, wait=wait, result_line=_order_done(order_id), follow=follow)


def _status_view(
    desc: WorkflowExecutionDescription, workflow_id: str, tenant_id: str, order_id: str
) -> dict[str, Any]:
    """What Temporal knows of the order's latest run, before its live state or result."""
    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE

    return {
        "workflow_id": workflow_id,
        "run_id": desc.run_id,
        "tenant_id": tenant_id,
        "order_id": order_id,
        "status": desc.status.name if desc.status is not None else "UNKNOWN",
        "flow_state": desc.typed_search_attributes.get(FLOW_STATE),
        "approval_pending": desc.typed_search_attributes.get(APPROVAL_PENDING),
        "started_at": iso(desc.start_time),
        "closed_at": iso(desc.close_time),
        "live": None,
        "result": None,
        "failure": None,
        "warning": None,
    }


async def _live_or_result(
    out: dict[str, Any], handle: WorkflowHandle[Any, Any], running: bool
) -> None:
    """A running flow answers its ``status`` query; a closed one has a result or failure."""
    from temporalio.client import WorkflowFailureError

    from workflows.common.handlers import FlowHandlers

    if running:
        try:
            live = await within(
                handle.query(FlowHandlers.status), f"querying {handle.id}", seconds=10
            )
            out["live"] = dump(live)
        except AutobizError as exc:  # no worker: what Temporal knows is still worth showing
            out["warning"] = f"{exc.message} ({exc.hint})"
        return
    try:
        out["result"] = dump(await handle.result(follow_runs=False))
    except WorkflowFailureError as exc:
        kind, message = failure_of(exc)
        out["failure"] = {"type": kind, "message": message}


async def _order_status(settings: Settings, tenant_id: str, order_id: str) -> dict[str, Any]:
    from temporalio.client import WorkflowExecutionStatus

    from workflows.ids import order_workflow_id
    from workflows.orders.models import OrderFulfillResult

    workflow_id = order_workflow_id(tenant_id, order_id)
    client = await temporal_client(settings)
    with temporal_errors(f"reading {workflow_id}"):
        desc = await describe(client, workflow_id)
        if desc is None:
            raise AutobizError(
                f"no flow for order {order_id} of tenant {tenant_id} ({workflow_id})",
                code=ErrorCode.FLOW_NOT_FOUND,
                hint=f"start one with `autobiz order start {order_id}`",
            )
        out = _status_view(desc, workflow_id, tenant_id, order_id)
        handle = client.get_workflow_handle(
            workflow_id, run_id=desc.run_id, result_type=OrderFulfillResult
        )
        await _live_or_result(out, handle, desc.status == WorkflowExecutionStatus.RUNNING)
    return out


_SHOWN_AMOUNTS = ("captured_minor", "printful_order_id", "tracking_number", "fulfillment_id")


def _progress_rows(source: dict[str, Any], detail: dict[str, Any]) -> list[tuple[str, str]]:
    """What the flow has done so far: the capture, the Printful order, the shipment."""
    rows = []
    for key in _SHOWN_AMOUNTS:
        value = source.get(key, detail.get(key))
        if value not in (None, 0, ""):
            shown = (
                format_money(value, source.get("currency") or detail.get("currency"))
                if key == "captured_minor"
                else str(value)
            )
            rows.append((key.removesuffix("_minor"), shown))
    return rows


def _approval_row(approval: dict[str, Any]) -> tuple[str, str]:
    if approval["status"] == "pending":
        roles = ", ".join(approval["roles"]) or "*"
        how = f"pending (roles: {roles}; expires {approval['expires_at']})"
    else:
        how = f"{approval['status']} by {approval['decided_by'] or '-'}"
    return ("approval", f"{approval['request_id']} {how}")


def _exception_row(exc: dict[str, Any]) -> tuple[str, str]:
    """A Printful hold or failure (WF06): what it is, what is recommended, where it is."""
    what = f"{exc.get('topic', '?')}: {exc.get('cause') or 'triaging'}"
    if exc.get("recommended"):
        what += f" (recommended: {exc['recommended']})"
    return ("exception", f"{what}; {exc.get('state', '?')}; {exc.get('workflow_id', '-')}")


def _status_rows(out: dict[str, Any], order_id: str) -> list[tuple[str, str]]:
    """The status table: where the run is, what it did, what it waits for, what failed."""
    live, result, failure = out["live"], out["result"], out["failure"]
    source = live or result or {}
    state = source.get("state") or out["flow_state"] or "-"
    detail = dict(live.get("detail") or {}) if live else {}
    rows = [
        ("order", str(detail.get("order_name") or order_id)),
        ("workflow", out["workflow_id"]),
        ("run", out["run_id"] or "-"),
        ("workflow (Temporal)", out["status"]),
        ("order state", state),
        ("started", out["started_at"] or "-"),
    ]
    if out["closed_at"]:
        rows.append(("closed", out["closed_at"]))
    rows += _progress_rows(source, detail)
    approval = (live or {}).get("approval")
    if approval:
        rows.append(_approval_row(approval))
    if detail.get("exception"):
        rows.append(_exception_row(detail["exception"]))
    if live and live.get("error"):
        rows.append(("error", live["error"]))
    if failure:
        rows.append(("failure", f"{failure['type']}: {failure['message']}"))
    cost = source.get("cost_micros")
    if cost:
        rows.append(("cost", f"${cost / 1_000_000:.6f}"))
    return rows


def _status_notes(out: dict[str, Any], order_id: str) -> list[str]:
    """What to do next, under the table: decide a pending approval, start the next run."""
    notes = []
    approval = (out["live"] or {}).get("approval")
    if approval and approval["status"] == "pending":
        notes.append(
            f"decide with `autobiz approvals approve {approval['request_id']} --as APPROVER`"
        )
    exception = ((out["live"] or {}).get("detail") or {}).get("exception") or {}
    if exception.get("state") == "awaiting_decision" and exception.get("request_id"):
        notes.append(
            f"decide the exception with `autobiz approvals approve {exception['request_id']} "
            "--as APPROVER --choice fix|cancel_and_refund|contact_customer`"
        )
    if out["status"] in ENDED_UNFINISHED:
        notes.append(
            f"start its next run with `autobiz order start {order_id}` (what this run "
            "completed is replayed, not redone)"
        )
    if out["warning"]:
        notes.append(f"[yellow]warning:[/] {out['warning']}")
    return notes


@order_app.command("status")
def order_status(
    order_id: str = typer.Argument(..., help="Shopify order id."),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Where an order's flow is: the live ``status`` query while it runs; the closed
    status, FlowState and result (or failure) once it has finished."""
    settings, tenant_id = _given(tenant, order_id, None)
    out = run(_order_status(settings, tenant_id, order_id))
    if json_out:
        emit_json(out)
        return
    console.print(_kv_table(f"order {order_id} ({out['tenant_id']})", _status_rows(out, order_id)))
    for note in _status_notes(out, order_id):
        console.print(note, highlight=False)


# --- refund --------------------------------------------------------------------------


@dataclass(frozen=True)
class _RefundAsk:
    """A refund request as given on the command line, checked before any I/O."""

    tenant_id: str
    order_id: str
    request_id: str
    amount: str
    currency: str | None  # --currency, parsed; None: the capture's
    payment_intent: str | None  # --payment-intent; None: the one the order's flow captured
    note: str | None

    @property
    def workflow_id(self) -> str:
        from workflows.ids import refund_workflow_id

        return refund_workflow_id(self.tenant_id, self.request_id)


def _refund_ask(
    config: BusinessConfig,
    order_id: str,
    amount: str,
    currency: str | None,
    payment_intent: str | None,
    request_id: str | None,
    note: str | None,
) -> _RefundAsk:
    """Refuse bad input before any I/O; a request without an id gets a new one."""
    import uuid

    given_currency = parse_currency(currency) if currency is not None else None
    parse_amount(amount, given_currency or config.currency)
    if request_id is not None and not _REQUEST_ID_RE.match(request_id):
        raise AutobizError(
            f"request id {request_id!r} is invalid",
            code=ErrorCode.REQUEST_ID_INVALID,
            hint="1-64 letters, digits, '_', '.' or '-'",
        )
    if note is not None and len(note) > NOTE_MAX:
        raise AutobizError(
            f"the note is longer than {NOTE_MAX} characters", code=ErrorCode.INPUT_INVALID
        )
    rid = request_id or f"rr-{uuid.uuid4().hex[:16]}"
    return _RefundAsk(config.tenant, order_id, rid, amount, given_currency, payment_intent, note)


def _refund_flow(ask: _RefundAsk) -> FlowStart:
    return FlowStart(
        kind="refund",
        closed_code=ErrorCode.REQUEST_CLOSED,
        closed_kind=f"refund request {ask.request_id}",
        closed_hint="use a new --request-id for a new refund",
        wait_hint=APPROVAL_HINT,
    )


async def _captured(db: Database, ask: _RefundAsk) -> PaymentStanding:
    """Our ledger first: the order's captured payment and what is refunded of it."""
    from starters.refund_checks import ledger_standing

    standing = await ledger_standing(db, ask.tenant_id, ask.order_id)
    if standing is None:
        raise AutobizError(
            f"no capture is recorded for order {ask.order_id} of {ask.tenant_id}, so no "
            "PaymentIntent can be shown to be this order's; nothing was started",
            code=ErrorCode.PAYMENT_UNKNOWN,
            hint=f"refund an order whose flow captured its payment (`autobiz order "
            f"status {ask.order_id}`); a payment taken outside AutoBiz is refunded in "
            "Stripe and recorded by reconciliation",
        )
    return standing


def _refund_line(out: dict[str, Any], standing: PaymentStanding) -> str:
    cur, minor = out["currency"], out["amount_minor"]
    return (
        f"{format_money(minor, cur)} of {out['payment_intent_id']} for order "
        f"{out['order_id']}; request id {out['refund_request_id']} "
        f"(captured {format_money(standing.captured_minor, cur)}, refunded before "
        f"{format_money(standing.refunded_minor, cur)})"
    )


async def _request_refund(
    settings: Settings, config: BusinessConfig, ask: _RefundAsk, *, json_out: bool, wait: bool
) -> dict[str, Any]:
    """Check the request on our ledger, then start its Refund (the starter checks the
    money invariants again, on the same ledger, before it starts anything)."""
    from starters.flows import request_refund

    flow = _refund_flow(ask)
    async with database(settings) as db:
        standing = await _captured(db, ask)
        pi = ask.payment_intent or standing.payment_intent_id
        cur = ask.currency or standing.currency
        minor = parse_amount(ask.amount, cur)
        client = await temporal_client(settings)

        def starter() -> Awaitable[WorkflowHandle[Any, Any]]:
            return request_refund(
                client,
                config,
                order_id=ask.order_id,
                payment_intent_id=pi,
                amount_minor=minor,
                currency=cur,
                task_queue=settings.temporal.task_queue,
                refund_request_id=ask.request_id,
                note=ask.note,
                ledger=db,
            )

        handle, started = await start(client, ask.workflow_id, starter, flow)
    out = outcome(
        ask.workflow_id,
        handle,
        ask.tenant_id,
        ask.order_id,
        started,
        refund_request_id=ask.request_id,
        payment_intent_id=pi,
        amount_minor=minor,
        currency=cur,
        refundable_minor=standing.refundable_minor - minor,
    )
    if not json_out:
        console.print(started_line(flow.kind, ask.workflow_id, started), highlight=False)
        console.print(_refund_line(out, standing), highlight=False)
    return await wait_for(out, handle, flow, wait=wait, json_out=json_out)


def _refund_done(request_id: str) -> Callable[[dict[str, Any]], str]:
    def line(result: dict[str, Any]) -> str:
        why = f" ({result['reason']})" if result.get("reason") else ""
        return f"refund {request_id}: [bold]{result['state']}[/]{why}"

    return line


@refund_app.command("request")
def refund_request(
    order_id: str = typer.Argument(..., help="Shopify order id."),
    amount: str = typer.Option(..., "--amount", help="Amount to refund, e.g. 12.50."),
    currency: str | None = typer.Option(
        None, "--currency", help="ISO code. Default: the capture's (another one is refused)."
    ),
    payment_intent: str | None = typer.Option(
        None,
        "--payment-intent",
        help=PI_HELP + " Default: the one the order's flow captured (from its receipt); "
        "another order's is refused.",
    ),
    request_id: str | None = typer.Option(
        None,
        "--request-id",
        help="Refund request id (e.g. the ticket id); the same id never refunds twice. "
        "Default: a new one.",
    ),
    note: str | None = typer.Option(None, "--note", help="Why (kept on the request)."),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
    wait: bool = WAIT_OPT,
) -> None:
    """Request a refund of the order's captured payment; at or above the tenant's
    threshold it waits for an approver. Refused before anything starts when our ledger
    shows no capture for the order (PAYMENT_UNKNOWN), the PaymentIntent is not the
    order's (PAYMENT_NOT_FOR_ORDER), the currency is not the capture's
    (CURRENCY_MISMATCH) or the amount is above captured minus already refunded
    (REFUND_EXCEEDS_REFUNDABLE); the flow checks Stripe again before the money moves."""
    settings, tenant_id = _given(tenant, order_id, payment_intent)
    config = business_config(settings, tenant_id)
    ask = _refund_ask(config, order_id, amount, currency, payment_intent, request_id, note)
    out = run(_request_refund(settings, config, ask, json_out=json_out, wait=wait))
    done = _refund_done(ask.request_id)
    finish(
        out,
        json_out=json_out,
        wait=wait,
        result_line=done,
        follow=APPROVAL_FOLLOW,
        refused=frozenset({"denied", "rejected"}),
    )


# --- cancel --------------------------------------------------------------------------

CancellationStarter = Callable[..., Awaitable["WorkflowHandle[Any, Any]"]]


def _cancellation_starter() -> CancellationStarter:
    """``starters.flows.request_cancellation``, in a build that has the flow."""
    try:
        from starters import flows

        request_cancellation: CancellationStarter = flows.request_cancellation
    except (ImportError, AttributeError):
        raise AutobizError(
            "this build has no OrderCancellation flow", code=ErrorCode.FLOW_UNAVAILABLE
        ) from None
    return request_cancellation


def _cancel_flow(order_id: str) -> FlowStart:
    return FlowStart(
        kind="cancellation",
        closed_code=ErrorCode.REQUEST_CLOSED,
        closed_kind=f"the cancellation of order {order_id}",
        closed_hint=f"see `autobiz order status {order_id}`",
        wait_hint=APPROVAL_HINT,
    )


async def _request_cancellation(
    settings: Settings,
    config: BusinessConfig,
    request_cancellation: CancellationStarter,
    order_id: str,
    payment_intent: str | None,
    reason: str,
    *,
    json_out: bool,
    wait: bool,
) -> dict[str, Any]:
    from workflows.ids import cancellation_workflow_id

    flow = _cancel_flow(order_id)
    client = await temporal_client(settings)

    def starter() -> Awaitable[WorkflowHandle[Any, Any]]:
        return request_cancellation(
            client,
            config,
            order_id=order_id,
            task_queue=settings.temporal.task_queue,
            payment_intent_id=payment_intent,
            reason=reason,
        )

    workflow_id = cancellation_workflow_id(config.tenant, order_id)
    handle, started = await start(client, workflow_id, starter, flow)
    out = outcome(handle.id, handle, config.tenant, order_id, started, reason=reason)
    if not json_out:
        console.print(started_line(flow.kind, handle.id, started), highlight=False)
    return await wait_for(out, handle, flow, wait=wait, json_out=json_out)


def _cancel_done(result: dict[str, Any]) -> str:
    return f"cancellation: [bold]{result.get('state')}[/]"


@cancel_app.command("request")
def cancel_request(
    order_id: str = typer.Argument(..., help="Shopify order id."),
    payment_intent: str | None = typer.Option(
        None, "--payment-intent", help=PI_HELP + " Default: the order's own payment."
    ),
    reason: str = typer.Option(
        "CUSTOMER",
        "--reason",
        help="Shopify cancel reason: CUSTOMER, DECLINED, FRAUD, INVENTORY, STAFF or OTHER.",
    ),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
    wait: bool = WAIT_OPT,
) -> None:
    """Cancel an order: stop Printful if it can, void or refund the payment, cancel in
    Shopify, tell the customer (above the threshold it waits for an approver)."""
    settings, tenant_id = _given(tenant, order_id, payment_intent)
    request_cancellation = _cancellation_starter()
    config = business_config(settings, tenant_id)
    out = run(
        _request_cancellation(
            settings,
            config,
            request_cancellation,
            order_id,
            payment_intent,
            reason.upper(),
            json_out=json_out,
            wait=wait,
        )
    )
    finish(
        out,
        json_out=json_out,
        wait=wait,
        result_line=_cancel_done,
        follow=APPROVAL_FOLLOW,
        refused=frozenset({"rejected"}),
    )
