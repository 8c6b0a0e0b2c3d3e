"""`autobiz order start|status`, `autobiz refund request`, `autobiz cancel request`.

Each flow is started by its business key through ``starters.flows``: a second start for
the same key attaches to the running workflow, a key whose last run completed is refused
(``ORDER_FLOW_CLOSED`` / ``REQUEST_CLOSED``) — a duplicate trigger never makes a second
run — and a key whose last run failed or was terminated starts its next run (the
side effects the failed run completed are replayed, not redone: ``autobiz.business_keys``).
Human output by default, ``--json`` for scripts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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
from autobiz.cli.output import console, emit_json
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle

order_app = typer.Typer(help="OrderFulfill (WF01): start an order's flow, see where it is.")
refund_app = typer.Typer(help="Refund (WF03): ask for a refund of a captured payment.")
cancel_app = typer.Typer(help="OrderCancellation (WF04): cancel an order.")

_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}$")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PI_RE = re.compile(r"^pi_[A-Za-z0-9_]{1,250}$")
NOTE_MAX = 500

WAIT_OPT = typer.Option(False, "--wait", help="Wait for the flow to finish; print its result.")
PI_HELP = "Stripe PaymentIntent (pi_…)."


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


@contextmanager
def _input_errors() -> Iterator[None]:
    """A model refusing the command's input (pydantic) is the user's to fix."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        raise AutobizError(f"{where}: {first.get('msg')}", code=ErrorCode.INPUT_INVALID) from None


async def _describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def _closed(kind: str, desc: WorkflowExecutionDescription | None, workflow_id: str) -> str:
    status = desc.status.name if desc is not None and desc.status is not None else "CLOSED"
    return (
        f"{kind} already ran: workflow {workflow_id} is {status}, and a completed key "
        "never runs again"
    )


async def _runs_so_far(client: Client, workflow_id: str) -> int | None:
    """How many runs this key has had (visibility; None when it cannot say)."""
    from temporalio.service import RPCError

    escaped = workflow_id.replace("\\", "\\\\").replace('"', '\\"')
    try:
        return (await client.count_workflows(f'WorkflowId = "{escaped}"')).count
    except RPCError:
        return None


async def _start(
    client: Client,
    workflow_id: str,
    starter: Callable[[], Awaitable[WorkflowHandle[Any, Any]]],
    *,
    closed_code: str,
    closed_kind: str,
    closed_hint: str,
) -> tuple[WorkflowHandle[Any, Any], bool]:
    """Start (or attach to) one flow; return the handle and whether this call started it.
    The look before the start only words the refusal; the id-reuse policy enforces it
    (a completed key is refused; a failed or terminated one starts its next run)."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.exceptions import WorkflowAlreadyStartedError

    with temporal_errors(f"starting {workflow_id}"):
        before = await _describe(client, workflow_id)
        if before is not None and before.status == WorkflowExecutionStatus.COMPLETED:
            raise AutobizError(
                _closed(closed_kind, before, before.id), code=closed_code, hint=closed_hint
            )
        try:
            with _input_errors():
                handle = await starter()
        except WorkflowAlreadyStartedError as exc:  # completed (or since our look)
            raise AutobizError(
                _closed(closed_kind, await _describe(client, exc.workflow_id), exc.workflow_id),
                code=closed_code,
                hint=closed_hint,
            ) from None
    # The server says whether this start created the run (False: the id-conflict policy
    # attached us to the running one).
    response = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(response, "started", before is None))
    return handle, started


async def _result(handle: WorkflowHandle[Any, Any], what: str, hint: str, *, quiet: bool) -> Any:
    """Wait for the flow's result (a spinner for people); a failed flow is ``FLOW_FAILED``."""
    from temporalio.client import WorkflowFailureError

    with temporal_errors(f"waiting for {handle.id}"):
        try:
            if quiet:
                return await handle.result()
            with console.status(f"waiting for {handle.id} ({hint})"):
                return await handle.result()
        except WorkflowFailureError as exc:
            kind, message = failure_of(exc)
            raise AutobizError(
                f"{what} {handle.id} failed: {kind}: {message}",
                code=ErrorCode.FLOW_FAILED,
                hint=hint,
            ) from None


async def _previous_run(client: Client, workflow_id: str) -> dict[str, Any] | None:
    """The key's last run when it ended without completing (failed, terminated,
    cancelled, timed out): what a new start would follow. None: no run, or it is
    running or completed."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    desc = await _describe(client, workflow_id)
    if desc is None or desc.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    ):
        return None
    previous: dict[str, Any] = {
        "run_id": desc.run_id,
        "status": desc.status.name if desc.status is not None else "CLOSED",
        "failure": None,
        "runs": await _runs_so_far(client, workflow_id),
    }
    try:
        await client.get_workflow_handle(workflow_id, run_id=desc.run_id).result(follow_runs=False)
    except WorkflowFailureError as exc:
        kind, message = failure_of(exc)
        previous["failure"] = {"type": kind, "message": message}
    return previous


def _run_number(previous: dict[str, Any] | None) -> int | None:
    """The number of the run a start made: 1 for a new key, else the runs so far + 1."""
    if previous is None:
        return 1
    return previous["runs"] + 1 if previous["runs"] else None


def _started_line(
    kind: str, workflow_id: str, started: bool, previous: dict[str, Any] | None = None
) -> str:
    if started and previous is not None:
        number = _run_number(previous)
        which = f"run {number} of " if number else "a new run of "
        failure = previous["failure"]
        why = f": {failure['type']}" if failure else ""
        return (
            f"[green]✓[/] started {which}{kind} [bold]{workflow_id}[/] (the previous run "
            f"{previous['run_id']} ended {previous['status']}{why}; what it completed is "
            "replayed, not redone)"
        )
    if started:
        return f"[green]✓[/] started {kind} [bold]{workflow_id}[/]"
    return (
        f"[yellow]↺[/] attached to the running {kind} [bold]{workflow_id}[/] "
        "(its own input stands; this call's options are not applied)"
    )


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


# --- order ---------------------------------------------------------------------------


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
    from starters.flows import start_order
    from workflows.ids import order_workflow_id

    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _order_id(order_id)
    _payment_intent(payment_intent)
    config = business_config(settings, tenant_id)
    workflow_id = order_workflow_id(tenant_id, order_id)

    async def main() -> dict[str, Any]:
        client = await temporal_client(settings)
        with temporal_errors(f"reading {workflow_id}"):
            previous = await _previous_run(client, workflow_id)
        handle, started = await _start(
            client,
            workflow_id,
            lambda: start_order(
                client,
                config,
                order_id=order_id,
                task_queue=settings.temporal.task_queue,
                payment_intent=payment_intent,
            ),
            closed_code=ErrorCode.ORDER_FLOW_CLOSED,
            closed_kind=f"order {order_id}",
            closed_hint=f"see `autobiz order status {order_id}`; use `autobiz refund request` "
            "or `autobiz cancel request` to undo it",
        )
        rerun = previous if started else None
        out: dict[str, Any] = {
            "workflow_id": workflow_id,
            "run_id": handle.result_run_id,
            "tenant_id": tenant_id,
            "order_id": order_id,
            "task_queue": settings.temporal.task_queue,
            "started": started,
            "attached": not started,
            "previous_run": rerun,
            "run_number": _run_number(rerun) if started else None,
        }
        if not json_out:
            console.print(_started_line("order flow", workflow_id, started, rerun), highlight=False)
        if wait:
            hint = f"follow it with `autobiz order status {order_id}`"
            out["result"] = dump(await _result(handle, "order flow", hint, quiet=json_out))
        return out

    out = run(main())
    if json_out:
        emit_json(out)
        return
    if wait:
        result = out["result"]
        console.print(
            f"order {order_id}: [bold]{result['state']}[/], captured "
            f"{format_money(result['captured_minor'], result['currency'])}, tracking "
            f"{result['tracking_number'] or '-'}",
            highlight=False,
        )
    else:
        console.print(f"follow it with `autobiz order status {order_id}`", highlight=False)


async def _order_status(settings: Settings, tenant_id: str, order_id: str) -> dict[str, Any]:
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE
    from workflows.common.handlers import FlowHandlers
    from workflows.ids import order_workflow_id
    from workflows.orders.models import OrderFulfillResult

    workflow_id = order_workflow_id(tenant_id, order_id)
    client = await temporal_client(settings)
    with temporal_errors(f"reading {workflow_id}"):
        desc = await _describe(client, workflow_id)
        if desc is None:
            raise AutobizError(
                f"no flow for order {order_id} of tenant {tenant_id} ({workflow_id})",
                code=ErrorCode.FLOW_NOT_FOUND,
                hint=f"start one with `autobiz order start {order_id}`",
            )
        running = desc.status == WorkflowExecutionStatus.RUNNING
        out: dict[str, Any] = {
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
        handle = client.get_workflow_handle(
            workflow_id, run_id=desc.run_id, result_type=OrderFulfillResult
        )
        if running:
            try:
                live = await within(
                    handle.query(FlowHandlers.status),
                    f"querying {workflow_id}",
                    seconds=10,
                )
                out["live"] = dump(live)
            except AutobizError as exc:  # no worker: what Temporal knows is still worth showing
                out["warning"] = f"{exc.message} ({exc.hint})"
        else:
            try:
                out["result"] = dump(await handle.result(follow_runs=False))
            except WorkflowFailureError as exc:
                kind, message = failure_of(exc)
                out["failure"] = {"type": kind, "message": message}
    return out


@order_app.command("status")
def order_status(
    order_id: str = typer.Argument(..., help="Shopify order id."),
    tenant: str | None = TENANT_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Where an order's flow is: the live ``status`` query while it runs; the closed
    status, FlowState and result (or failure) once it has finished."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _order_id(order_id)
    out = run(_order_status(settings, tenant_id, order_id))
    if json_out:
        emit_json(out)
        return
    live, result, failure = out["live"], out["result"], out["failure"]
    state = (live or result or {}).get("state") or out["flow_state"] or "-"
    source = live or result or {}
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
    for key in ("captured_minor", "printful_order_id", "tracking_number", "fulfillment_id"):
        value = source.get(key, detail.get(key))
        if value not in (None, 0, ""):
            shown = (
                format_money(value, source.get("currency") or detail.get("currency"))
                if key == "captured_minor"
                else str(value)
            )
            rows.append((key.removesuffix("_minor"), shown))
    approval = (live or {}).get("approval")
    if approval:
        if approval["status"] == "pending":
            roles = ", ".join(approval["roles"]) or "*"
            how = f"pending (roles: {roles}; expires {approval['expires_at']})"
        else:
            how = f"{approval['status']} by {approval['decided_by'] or '-'}"
        rows.append(("approval", f"{approval['request_id']} {how}"))
    if live and live.get("error"):
        rows.append(("error", live["error"]))
    if failure:
        rows.append(("failure", f"{failure['type']}: {failure['message']}"))
    cost = source.get("cost_micros")
    if cost:
        rows.append(("cost", f"${cost / 1_000_000:.6f}"))
    console.print(_kv_table(f"order {order_id} ({out['tenant_id']})", rows))
    if approval and approval["status"] == "pending":
        console.print(
            f"decide with `autobiz approvals approve {approval['request_id']} --as APPROVER`",
            highlight=False,
        )
    if out["status"] in ("FAILED", "TERMINATED", "CANCELED", "TIMED_OUT"):
        console.print(
            f"start its next run with `autobiz order start {order_id}` (what this run "
            "completed is replayed, not redone)",
            highlight=False,
        )
    if out["warning"]:
        console.print(f"[yellow]warning:[/] {out['warning']}", highlight=False)


# --- refund --------------------------------------------------------------------------


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
    import uuid

    from starters.flows import request_refund
    from workflows.ids import refund_workflow_id

    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _order_id(order_id)
    _payment_intent(payment_intent)
    config = business_config(settings, tenant_id)
    given_currency = parse_currency(currency) if currency is not None else None
    parse_amount(amount, given_currency or config.currency)  # refuse bad input before any I/O
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
    workflow_id = refund_workflow_id(tenant_id, rid)

    async def main() -> dict[str, Any]:
        from starters.refund_checks import ledger_standing

        async with database(settings) as db:
            # Our ledger first: the order's captured payment and what is refunded of it.
            standing = await ledger_standing(db, tenant_id, order_id)
            if standing is None:
                raise AutobizError(
                    f"no capture is recorded for order {order_id} of {tenant_id}, so no "
                    "PaymentIntent can be shown to be this order's; nothing was started",
                    code=ErrorCode.PAYMENT_UNKNOWN,
                    hint=f"refund an order whose flow captured its payment (`autobiz order "
                    f"status {order_id}`); a payment taken outside AutoBiz is refunded in "
                    "Stripe and recorded by reconciliation",
                )
            pi = payment_intent or standing.payment_intent_id
            cur = given_currency or standing.currency
            minor = parse_amount(amount, cur)
            client = await temporal_client(settings)
            handle, started = await _start(
                client,
                workflow_id,
                lambda: request_refund(
                    client,
                    config,
                    order_id=order_id,
                    payment_intent_id=pi,
                    amount_minor=minor,
                    currency=cur,
                    task_queue=settings.temporal.task_queue,
                    refund_request_id=rid,
                    note=note,
                    ledger=db,
                ),
                closed_code=ErrorCode.REQUEST_CLOSED,
                closed_kind=f"refund request {rid}",
                closed_hint="use a new --request-id for a new refund",
            )
        out: dict[str, Any] = {
            "workflow_id": workflow_id,
            "run_id": handle.result_run_id,
            "tenant_id": tenant_id,
            "order_id": order_id,
            "refund_request_id": rid,
            "payment_intent_id": pi,
            "amount_minor": minor,
            "currency": cur,
            "refundable_minor": standing.refundable_minor - minor,
            "started": started,
            "attached": not started,
        }
        if not json_out:
            console.print(_started_line("refund", workflow_id, started), highlight=False)
            console.print(
                f"{format_money(minor, cur)} of {pi} for order {order_id}; request id {rid} "
                f"(captured {format_money(standing.captured_minor, cur)}, refunded before "
                f"{format_money(standing.refunded_minor, cur)})",
                highlight=False,
            )
        if wait:
            hint = "an approval may be needed: `autobiz approvals list`"
            out["result"] = dump(await _result(handle, "refund", hint, quiet=json_out))
        return out

    out = run(main())
    if json_out:
        emit_json(out)
        return
    if wait:
        result = out["result"]
        why = f" ({result['reason']})" if result.get("reason") else ""
        console.print(f"refund {rid}: [bold]{result['state']}[/]{why}", highlight=False)
    else:
        console.print(
            "if it needs an approval it waits for one: see `autobiz approvals list`",
            highlight=False,
        )


# --- cancel --------------------------------------------------------------------------


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
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    _order_id(order_id)
    _payment_intent(payment_intent)
    try:
        from starters import flows

        request_cancellation = flows.request_cancellation  # type: ignore[attr-defined,unused-ignore]
        from workflows.ids import cancellation_workflow_id
    except (ImportError, AttributeError):
        raise AutobizError(
            "this build has no OrderCancellation flow", code=ErrorCode.FLOW_UNAVAILABLE
        ) from None
    config = business_config(settings, tenant_id)
    workflow_id = cancellation_workflow_id(tenant_id, order_id)

    async def main() -> dict[str, Any]:
        client = await temporal_client(settings)
        handle, started = await _start(
            client,
            workflow_id,
            lambda: request_cancellation(
                client,
                config,
                order_id=order_id,
                task_queue=settings.temporal.task_queue,
                payment_intent_id=payment_intent,
                reason=reason.upper(),
            ),
            closed_code=ErrorCode.REQUEST_CLOSED,
            closed_kind=f"the cancellation of order {order_id}",
            closed_hint=f"see `autobiz order status {order_id}`",
        )
        out: dict[str, Any] = {
            "workflow_id": handle.id,
            "run_id": handle.result_run_id,
            "tenant_id": tenant_id,
            "order_id": order_id,
            "reason": reason.upper(),
            "started": started,
            "attached": not started,
        }
        if not json_out:
            console.print(_started_line("cancellation", handle.id, started), highlight=False)
        if wait:
            hint = "an approval may be needed: `autobiz approvals list`"
            out["result"] = dump(await _result(handle, "cancellation", hint, quiet=json_out))
        return out

    out = run(main())
    if json_out:
        emit_json(out)
        return
    if wait:
        console.print(f"cancellation: [bold]{out['result'].get('state')}[/]", highlight=False)
    else:
        console.print(
            "if it needs an approval it waits for one: see `autobiz approvals list`",
            highlight=False,
        )
