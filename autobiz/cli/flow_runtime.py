"""What the flow commands share: the tenant, its BusinessConfig, the Temporal client and the
database, money parsing, and turning Temporal's exceptions into stable error codes.

Every failure a user can cause leaves here as an :class:`AutobizError` (``error[CODE]`` and
a hint, no traceback). Heavy imports (Temporal, the workers' config loader) happen inside
the functions so ``autobiz --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from autobiz.db.database import validate_tenant_id
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from kernel import money
from kernel.codes import ErrorCode

if TYPE_CHECKING:
    from temporalio.client import Client

    from autobiz.db.database import Database
    from kernel.config import BusinessConfig

T = TypeVar("T")

STACK_HINT = "is the stack up? run `autobiz dev up` (or `autobiz dev status`)"
# How long the CLI waits for a worker to answer a query or an update.
REPLY_TIMEOUT = timedelta(seconds=30)
# The options every flow command takes.
TENANT_OPT = typer.Option(
    None, "--tenant", help="Tenant id (default: AUTOBIZ_INGRESS__DEFAULT_TENANT, demo-shop)."
)
JSON_OPT = typer.Option(False, "--json", help="Machine-readable output.")


def tenant_of(settings: Settings, given: str | None) -> str:
    """``--tenant``, else the settings' default tenant; validated like the database does."""
    tenant = given or settings.ingress.default_tenant
    try:
        return validate_tenant_id(tenant)
    except AutobizError as exc:
        raise AutobizError(exc.message, code=ErrorCode.TENANT_INVALID) from None


def business_config(settings: Settings, tenant: str) -> BusinessConfig:
    """The tenant's compiled BusinessConfig from ``settings.config_dir`` — the same files,
    compiled the same way, as the worker loads (one invalid file and nothing runs)."""
    from autobiz.business_config import load_configs

    configs = load_configs(settings.config_dir)
    config = configs.get(tenant)
    if config is None:
        raise AutobizError(
            f"no BusinessConfig for tenant {tenant} in {settings.config_dir}",
            code=ErrorCode.TENANT_UNKNOWN,
            hint=f"known tenants: {', '.join(sorted(configs))}; pass --tenant or set "
            "AUTOBIZ_CONFIG_DIR",
        )
    return config


def enabled(config: BusinessConfig, workflow: str) -> bool:
    """Whether the tenant's config has a ``workflows.<workflow>`` section that is on."""
    found = config.workflows.get(workflow)
    return found is not None and found.enabled


def enabled_config(settings: Settings, tenant: str, workflow: str, *, hint: str) -> BusinessConfig:
    """The tenant's compiled BusinessConfig, refused (``WORKFLOW_DISABLED``) unless it
    enables ``workflow``: a command that starts a flow the tenant has not turned on."""
    config = business_config(settings, tenant)
    if not enabled(config, workflow):
        raise AutobizError(
            f"tenant {tenant} does not enable the {workflow} workflow",
            code=ErrorCode.WORKFLOW_DISABLED,
            hint=hint,
        )
    return config


def parse_currency(text: str) -> str:
    """``--currency``: an ISO 4217 code (:mod:`kernel.money`'s one table)."""
    try:
        return money.parse_currency(text)
    except money.MoneyError as exc:
        raise AutobizError(exc.message, code=exc.code, hint=exc.hint) from None


def parse_amount(text: str, currency: str) -> int:
    """``"12.50"`` in ``currency`` → minor units (1250); ASCII digits only, at most the
    currency's minor digits (:func:`kernel.money.parse_amount`)."""
    try:
        return money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise AutobizError(exc.message, code=exc.code, hint=exc.hint) from None


format_money = money.format_money


def format_duration(delta: timedelta) -> str:
    """``1d 2h``, ``3h 4m``, ``5m 6s``, ``7s``: the two largest units."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def format_seconds(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run(coro: Awaitable[T]) -> T:
    """Run one command's coroutine to completion."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


@contextmanager
def temporal_errors(what: str) -> Iterator[None]:
    """Temporal being unreachable is the user's to fix: a code and a hint, not a trace."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        yield
    except RPCError as exc:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise AutobizError(
                f"Temporal did not answer while {what}: {exc.message}",
                code=ErrorCode.TEMPORAL_UNREACHABLE,
                hint=STACK_HINT,
            ) from None
        raise


async def temporal_client(settings: Settings) -> Client:
    from autobiz.temporal_client import connect, describe_target

    try:
        return await connect(settings)
    except RuntimeError as exc:
        if "connect" not in str(exc).lower():
            raise
        raise AutobizError(
            f"cannot reach Temporal at {describe_target(settings)}",
            code=ErrorCode.TEMPORAL_UNREACHABLE,
            hint=STACK_HINT
            + "; the address is AUTOBIZ_TEMPORAL__ADDRESS (or __HOST / __PORT), else"
            " TEMPORAL_ADDRESS (docs/operations.md: secured clusters)",
        ) from None


@asynccontextmanager
async def database(settings: Settings, *, admin: bool = False) -> AsyncIterator[Database]:
    """The application role's pool (RLS applies); unreachable → ``DATABASE_UNREACHABLE``.
    ``admin``: with the database owner's admin path too (registering a key is an admin act)."""
    from autobiz.db.database import Database
    from autobiz.db.dsn import admin_dsn, app_dsn

    # The pool logs every failed attempt; the error below says it once, with a hint.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    owner = admin_dsn(settings) if admin else None
    db = Database(app_dsn(settings), owner, min_size=1, max_size=2, timeout=5.0)
    async with db:
        yield db


async def within(awaitable: Awaitable[T], what: str, *, seconds: float | None = None) -> T:
    """Await ``awaitable``; no answer in time means no worker is serving the flow."""
    limit = seconds if seconds is not None else REPLY_TIMEOUT.total_seconds()
    try:
        return await asyncio.wait_for(awaitable, timeout=limit)
    except TimeoutError:
        queue = get_settings().temporal.task_queue
        raise AutobizError(
            f"no answer within {limit:g}s while {what}",
            code=ErrorCode.WORKER_UNAVAILABLE,
            hint=f"is a worker polling task queue {queue!r}? run `autobiz worker`",
        ) from None


def failure_of(exc: BaseException) -> tuple[str, str]:
    """``(type, message)`` of a workflow failure: the outermost ApplicationError in the
    cause chain (an activity's error type, or the workflow's own), else the first failure."""
    from temporalio.exceptions import ApplicationError, FailureError

    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 20:
        chain.append(cause)
        cause = getattr(cause, "cause", None)
    for c in chain:
        if isinstance(c, ApplicationError):
            kind = c.type or "ApplicationError"
            return kind, c.message.removeprefix(f"[{kind}] ")  # AutobizError's str repeats it
    for c in chain[1:]:
        if isinstance(c, FailureError):
            return type(c).__name__, c.message
    return type(exc).__name__, str(exc)


def dump(model: Any) -> Any:
    """A pydantic model (or None, or plain data) as JSON-ready data."""
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json")
    return model
