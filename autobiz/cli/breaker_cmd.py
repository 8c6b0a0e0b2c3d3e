"""`autobiz breaker status|reset`: the circuit breakers of a tenant's provider accounts
(``circuit_breakers``, migration 0010; autobiz.breakers), through the application role
(RLS: a tenant sees and resets only its own).

* ``status [PROVIDER]``: each provider's breaker (every guarded provider, or the one
  named): state, the current window's failures and calls, how long it stays open, the
  last failure that counted, when it last changed. A provider no call has reached yet
  is ``closed``. ``--events``: its last transitions too (with PROVIDER).
* ``reset PROVIDER --reason "..."``: close it now (an operator who knows the provider is
  back). An audited admin action: an ``audit_log`` row (``breaker.reset``: who, why, the
  state it left) and a ``breaker_events`` row, in the same transaction as the reset.

Errors: ``INPUT_INVALID`` (a provider without a breaker), ``ADMIN_REASON_REQUIRED``
(reset without ``--reason``), ``TENANT_UNKNOWN`` — all exit 2.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

import typer

from autobiz.cli.flow_runtime import JSON_OPT, TENANT_OPT, database, run, tenant_of
from autobiz.cli.output import (
    OUTPUT_OPT,
    OutputFormat,
    Rows,
    console,
    emit_json,
    output_format,
    show_rows,
)
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from autobiz.breakers.store import BreakerStatus, BreakerStore
    from autobiz.db.database import Database

app = typer.Typer(help="Circuit breakers of the provider accounts (docs/operations.md).")
PROVIDER_ARG = typer.Argument(..., help="stripe, shopify, printful, sendgrid or llm.")


def _provider(settings: Settings, given: str) -> str:
    providers = settings.breaker.providers
    if given not in providers:
        raise AutobizError(
            f"no circuit breaker for provider {given!r}",
            code=ErrorCode.INPUT_INVALID,
            hint=f"one of: {', '.join(providers)}",
        )
    return given


def _store(settings: Settings, db: Database) -> BreakerStore:
    from autobiz.breakers.guard import policy_of
    from autobiz.breakers.store import BreakerStore

    return BreakerStore(db, policy_of(settings.breaker))


async def _known_tenant(db: Database, tenant_id: str) -> None:
    async with db.tenant(tenant_id) as s:
        if await s.fetch_val("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,)) is None:
            raise AutobizError(f"unknown tenant {tenant_id!r}", code=ErrorCode.TENANT_UNKNOWN)


def _seconds(value: float | None) -> str:
    return f"{value:g} s" if value is not None else ""


def _rows(tenant_id: str, data: list[dict[str, Any]]) -> Rows:
    return Rows(
        f"circuit breakers of {tenant_id}",
        ["provider", "state", "failures", "calls", "retry in", "last failure", "changed"],
        [
            [
                d["provider"],
                d["state"],
                str(d["failures"]),
                str(d["calls"]),
                _seconds(d["retry_in_seconds"]),
                d["last_failure"] or "",
                d["changed_at"] or "",
            ]
            for d in data
        ],
        ids={"provider"},
        empty=f"no circuit breakers for {tenant_id}",
    )


def _closed(tenant_id: str, provider: str) -> dict[str, Any]:
    """A breaker no call has reached yet."""
    return {
        "tenant": tenant_id,
        "provider": provider,
        "state": "closed",
        "calls": 0,
        "failures": 0,
        "window_start": None,
        "opened_at": None,
        "open_until": None,
        "retry_in_seconds": None,
        "probes_in_flight": 0,
        "last_failure": None,
        "changed_at": None,
    }


@app.command("status")
def status_cmd(
    provider: str | None = typer.Argument(None, help="One provider (default: all)."),
    tenant: str | None = TENANT_OPT,
    events: bool = typer.Option(False, "--events", help="Its last transitions (with PROVIDER)."),
    json_out: bool = JSON_OPT,
    output: OutputFormat | None = OUTPUT_OPT,
) -> None:
    """Each provider's breaker: state, failures in the window, time left open."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    wanted = [_provider(settings, provider)] if provider else list(settings.breaker.providers)
    if events and provider is None:
        raise AutobizError("--events needs a PROVIDER", code=ErrorCode.USAGE)

    async def main() -> tuple[list[BreakerStatus], list[dict[str, Any]]]:
        async with database(settings) as db:
            await _known_tenant(db, tenant_id)
            store = _store(settings, db)
            found = await store.status(tenant_id, provider)
            log = await store.events(tenant_id, provider) if events and provider else []
            return found, log

    found, log = run(main())
    by_provider = {s.provider: s.as_json() for s in found}
    data = [by_provider.get(p) or _closed(tenant_id, p) for p in wanted]
    fmt = output_format(output, json_out)
    transitions = [{**e, "created_at": e["created_at"].isoformat(timespec="seconds")} for e in log]
    if fmt is OutputFormat.json and events:
        emit_json({"breakers": data, "events": transitions})
        return
    show_rows(fmt, _rows(tenant_id, data), data)
    if events:
        show_rows(
            fmt,
            Rows(
                f"transitions of {provider} ({tenant_id}), newest first",
                ["at", "from", "to", "reason", "by"],
                [
                    [e["created_at"], e["from_state"], e["to_state"], e["reason"], e["actor"]]
                    for e in transitions
                ],
                ids={"by"},
                empty="no transitions yet",
            ),
            transitions,
        )


@app.command("reset")
def reset_cmd(
    provider: str = PROVIDER_ARG,
    tenant: str | None = TENANT_OPT,
    reason: str | None = typer.Option(None, "--reason", help="Why (goes into the audit_log)."),
    by: str | None = typer.Option(None, "--by", help="Who resets it (default: cli:<os user>)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Close a breaker now (audited): the next call goes to the provider again."""
    settings = get_settings()
    tenant_id = tenant_of(settings, tenant)
    name = _provider(settings, provider)
    if not (reason and reason.strip()):
        raise AutobizError(
            "a breaker reset is an audited admin action: say why",
            code=ErrorCode.ADMIN_REASON_REQUIRED,
            hint='add --reason "…" (it goes into the tenant\'s audit_log)',
        )
    actor = by or f"cli:{getpass.getuser()}"

    async def main() -> tuple[str, dict[str, Any]]:
        async with database(settings) as db:
            await _known_tenant(db, tenant_id)
            store = _store(settings, db)
            step = await store.reset(tenant_id, name, actor=actor, reason=reason.strip())
            left = step.transition.from_state.value if step.transition else "closed"
            (now,) = await store.status(tenant_id, name)
            return left, now.as_json()

    left, now = run(main())
    if json_out:
        emit_json({**now, "previous_state": left, "reset_by": actor})
        return
    console.print(
        f"breaker {name} ({tenant_id}): {left} -> closed, reset by {actor} (audit_log: "
        "breaker.reset)",
        highlight=False,
        markup=False,
        emoji=False,
    )
