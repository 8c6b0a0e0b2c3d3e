"""The guard every tool activity passes (in process, real PostgreSQL, a real Prometheus
endpoint): what counts as a provider failure, a refusal before the activity runs with a
retryable ``BREAKER_OPEN`` and the time left open as its delay, a replayed answer that
proves nothing, and a store that cannot be reached letting calls through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime

from autobiz.breakers.guard import BreakerGuard, policy_of
from autobiz.breakers.machine import BreakerState, Outcome, Policy
from autobiz.breakers.metrics import BreakerMetrics
from autobiz.breakers.outcome import classify, provider_not_called, start_call
from autobiz.breakers.store import BreakerStore
from autobiz.db.database import Database
from autobiz.settings import BreakerSettings, Settings
from kernel.codes import ErrorCode
from kernel.contracts import CallContext, SideEffect
from tests.support.postgres import ProvisionedDatabase
from tests.support.stack import free_port
from workers.worker import metrics_runtime

pytestmark = pytest.mark.integration

POLICY = Policy(failure_threshold=2, failure_rate=0.5, open_for=timedelta(seconds=1))


def _ctx(tenant: str, provider: str = "stripe") -> CallContext:
    return CallContext(
        tenant_id=tenant,
        workflow_id="order:t:1",
        run_id="r1",
        workflow_type="OrderFulfill",
        principal="system",
        step="capture",
        tool=f"{provider}.capture_payment",
        version="1",
        side_effect=SideEffect.FINANCIAL,
        provider=provider,
        internal_key="i",
        external_key="e",
        request_hash="h",
    )


def _provider_error(code: ErrorCode, status: int | None = None) -> ApplicationError:
    details = {"provider": "stripe", "provider_code": None, "http_status": status}
    return ApplicationError("x", details, type=code, non_retryable=False)


class Calls:
    """An activity body: counts its runs, then raises or returns."""

    def __init__(self) -> None:
        self.runs = 0

    def doing(self, error: BaseException | None = None) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            self.runs += 1
            if error is not None:
                raise error
            return "done"

        return run


@pytest.fixture(scope="module")
def runtime() -> tuple[Runtime, str]:
    bind = f"127.0.0.1:{free_port()}"
    settings = Settings().model_copy(
        update={"worker": Settings().worker.model_copy(update={"metrics_bind": bind})}
    )
    made = metrics_runtime(settings)
    assert made is not None
    return made, bind


def _guard(db: Database, runtime: Runtime, **options: Any) -> BreakerGuard:
    return BreakerGuard(
        BreakerStore(db, POLICY),
        BreakerMetrics(runtime.metric_meter),
        frozenset({"stripe", "printful"}),
        **options,
    )


def test_what_counts_as_a_provider_failure() -> None:
    unavailable = _provider_error(ErrorCode.PROVIDER_UNAVAILABLE, 503)
    assert classify(unavailable, count_rate_limits=True) == (
        Outcome.FAILURE,
        "PROVIDER_UNAVAILABLE 503",
    )
    limited = _provider_error(ErrorCode.PROVIDER_RATE_LIMITED, 429)
    assert classify(limited, count_rate_limits=True)[0] is Outcome.FAILURE
    assert classify(limited, count_rate_limits=False)[0] is Outcome.SUCCESS
    for answered in (
        ErrorCode.CARD_DECLINED,
        ErrorCode.PROVIDER_NOT_FOUND,
        ErrorCode.PROVIDER_INVALID_REQUEST,
        ErrorCode.PROVIDER_STATE_CONFLICT,
    ):
        assert classify(_provider_error(answered, 400), count_rate_limits=True) == (
            Outcome.SUCCESS,
            None,
        )
    for silent in (
        _provider_error(ErrorCode.GATE_BYPASSED),
        _provider_error(ErrorCode.DATABASE_UNAVAILABLE),
        _provider_error(ErrorCode.HYGIENE_VIOLATION),
        asyncio.CancelledError(),
        RuntimeError("a bug"),
    ):
        assert classify(silent, count_rate_limits=True) == (Outcome.UNKNOWN, None)
    start_call()
    assert classify(None, count_rate_limits=True)[0] is Outcome.SUCCESS
    provider_not_called()
    assert classify(None, count_rate_limits=True)[0] is Outcome.UNKNOWN


async def test_failures_open_it_and_the_next_call_never_runs(
    database: Database, tenant: str, runtime: tuple[Runtime, str]
) -> None:
    guard, calls = _guard(database, runtime[0]), Calls()
    ctx = _ctx(tenant)
    # Declines are the provider answering: however many, the breaker stays closed.
    for _ in range(4):
        with pytest.raises(ApplicationError):
            await guard.call(ctx, calls.doing(_provider_error(ErrorCode.CARD_DECLINED, 402)))
    (status,) = await guard.store.status(tenant, "stripe")
    assert status.breaker.state is BreakerState.CLOSED and status.breaker.failures == 0

    for _ in range(4):  # 4 declines + 4 unavailable: 50 % of 8 calls, 4 ≥ 2 failures
        with pytest.raises(ApplicationError) as failed:
            await guard.call(ctx, calls.doing(_provider_error(ErrorCode.PROVIDER_UNAVAILABLE)))
        assert failed.value.type == ErrorCode.PROVIDER_UNAVAILABLE  # the activity's own
        if (await guard.store.status(tenant, "stripe"))[0].breaker.state is BreakerState.OPEN:
            break
    assert calls.runs == 8

    with pytest.raises(ApplicationError) as refused:
        await guard.call(ctx, calls.doing())
    assert calls.runs == 8  # refused before the activity ran
    error = refused.value
    assert error.type == ErrorCode.BREAKER_OPEN and not error.non_retryable
    assert error.next_retry_delay is not None
    assert timedelta(0) < error.next_retry_delay <= POLICY.open_for
    assert error.details[0]["state"] == "open" and error.details[0]["provider"] == "stripe"
    # Another provider of the same tenant, and a provider with no breaker, still run.
    assert await guard.call(_ctx(tenant, "printful"), calls.doing()) == "done"
    assert not guard.guards("internal")

    # After the open time: the probe runs, succeeds, closes it.
    await asyncio.sleep(error.next_retry_delay.total_seconds() + 0.05)
    assert await guard.call(ctx, calls.doing()) == "done"
    (status,) = await guard.store.status(tenant, "stripe")
    assert status.breaker.state is BreakerState.CLOSED

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{runtime[1]}/metrics")).text
    lines = [line for line in text.splitlines() if f'tenant="{tenant}"' in line]
    assert any(
        line.startswith("autobiz_breaker_state{")
        and 'provider="stripe"' in line
        and line.endswith(" 0")
        for line in lines
    )
    for to in ("open", "half_open", "closed"):
        assert any(
            line.startswith("autobiz_breaker_transitions_total{")
            and f'to="{to}"' in line
            and line.endswith(" 1")
            for line in lines
        ), (to, lines)
    assert any(
        line.startswith("autobiz_breaker_rejections_total{") and line.endswith(" 1")
        for line in lines
    )


async def test_a_replayed_answer_does_not_close_a_half_open_breaker(
    database: Database, tenant: str, runtime: tuple[Runtime, str]
) -> None:
    guard, calls = _guard(database, runtime[0]), Calls()
    ctx = _ctx(tenant)
    for _ in range(2):
        with pytest.raises(ApplicationError):
            await guard.call(ctx, calls.doing(_provider_error(ErrorCode.PROVIDER_UNAVAILABLE)))
    await asyncio.sleep(POLICY.open_for.total_seconds() + 0.05)

    async def replayed() -> str:
        provider_not_called()  # what the side-effect runner does for a recorded answer
        return "recorded"

    assert await guard.call(ctx, replayed) == "recorded"
    (status,) = await guard.store.status(tenant, "stripe")
    # Still half-open, and the probe slot is free again for a call that reaches Stripe.
    assert status.breaker.state is BreakerState.HALF_OPEN and status.breaker.probes == 0
    assert await guard.call(ctx, calls.doing()) == "done"
    assert (await guard.store.status(tenant, "stripe"))[0].breaker.state is BreakerState.CLOSED


async def test_a_store_that_cannot_be_reached_lets_calls_through(
    pg_database: ProvisionedDatabase, tenant: str, runtime: tuple[Runtime, str]
) -> None:
    async with Database(pg_database.app_dsn, None, max_size=1) as closed:
        pass  # closed: every transaction now fails
    guard, calls = _guard(closed, runtime[0]), Calls()
    for _ in range(5):
        with pytest.raises(ApplicationError):
            await guard.call(
                _ctx(tenant), calls.doing(_provider_error(ErrorCode.PROVIDER_UNAVAILABLE))
            )
    assert await guard.call(_ctx(tenant), calls.doing()) == "done"
    assert calls.runs == 6


def test_the_settings_make_the_policy() -> None:
    settings = BreakerSettings(
        failure_threshold=7,
        failure_rate=0.25,
        window_seconds=10,
        open_seconds=3,
        half_open_probes=2,
        probe_timeout_seconds=4,
    )
    assert policy_of(settings) == Policy(
        failure_threshold=7,
        failure_rate=0.25,
        window=timedelta(seconds=10),
        open_for=timedelta(seconds=3),
        probes=2,
        probe_timeout=timedelta(seconds=4),
    )
