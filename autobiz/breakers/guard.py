"""The breaker in front of every tool activity: one Temporal activity interceptor.

Every provider call an activity makes is the work of a tool activity, and every tool
activity's first argument is its :class:`~kernel.contracts.CallContext`, which names the
provider (``ctx.provider``) and the tenant whose account it is (``ctx.tenant_id``). So
one interceptor, installed on the worker (``workers.worker.build_worker``), guards all of
them — reads, writes and money moves alike — and no activity can forget it:

1. before the activity runs at all (no idempotency claim, no request), the breaker of
   ``(provider, tenant)`` admits the call or refuses it. A refusal is a retryable
   ``ApplicationError`` of type ``BREAKER_OPEN`` whose ``next_retry_delay`` is the time
   the breaker stays open, so Temporal waits that long instead of hammering the provider;
   its details (provider, tenant, state, retry_in_seconds, last_failure) are the
   decision as the workflow's history and the run's trace see it;
2. when the activity ends, its outcome (:mod:`autobiz.breakers.outcome`) is recorded.

Transitions are rows in ``breaker_events`` (with the call that made them), log lines and
metrics (:mod:`autobiz.breakers.metrics`). If the breaker's own store cannot be reached,
the call goes through (logged): a breaker protects the provider, it must not add an
outage of its own.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from autobiz.breakers.machine import Admission, BreakerState, Outcome, Policy, Transition
from autobiz.breakers.metrics import BreakerMetrics
from autobiz.breakers.outcome import classify, start_call
from autobiz.breakers.store import BreakerStore, Step
from autobiz.db.database import Database
from autobiz.settings import BreakerSettings
from kernel.codes import ErrorCode
from kernel.contracts import CallContext

log = logging.getLogger(__name__)
T = TypeVar("T")


def breaker_open_error(
    ctx: CallContext, state: BreakerState, step: Step, wait: timedelta
) -> ApplicationError:
    seconds = round(wait.total_seconds(), 3)
    details = {
        "provider": ctx.provider,
        "tenant": ctx.tenant_id,
        "state": state.value,
        "retry_in_seconds": seconds,
        "open_until": step.breaker.open_until.isoformat() if step.breaker.open_until else None,
        "last_failure": step.breaker.last_failure,
    }
    return ApplicationError(
        f"circuit breaker {state.value} for {ctx.provider} (tenant {ctx.tenant_id}): "
        f"not calling it, retry in {seconds:g} s",
        details,
        type=ErrorCode.BREAKER_OPEN,
        non_retryable=False,
        next_retry_delay=wait,
    )


@dataclass
class BreakerGuard:
    """Admits, refuses and records the tool activities of the guarded providers."""

    store: BreakerStore
    metrics: BreakerMetrics
    providers: frozenset[str]
    count_rate_limits: bool = True

    def guards(self, provider: str) -> bool:
        return provider in self.providers

    async def call(self, ctx: CallContext, run: Callable[[], Awaitable[T]]) -> T:
        detail = _call_detail(ctx)
        admission = await self._admit(ctx, detail)
        start_call()
        try:
            result = await run()
        except BaseException as exc:
            outcome, failure = classify(exc, count_rate_limits=self.count_rate_limits)
            await self._record(ctx, admission, outcome, failure, detail)
            raise
        outcome, _ = classify(None, count_rate_limits=self.count_rate_limits)
        await self._record(ctx, admission, outcome, None, detail)
        return result

    async def _admit(self, ctx: CallContext, detail: dict[str, Any]) -> Admission:
        try:
            admission, step = await self.store.admit(
                ctx.tenant_id, ctx.provider, actor=_actor(ctx), detail=detail
            )
        except Exception:  # the breaker's store is down: let the call through
            log.warning(
                "breaker %s/%s unavailable: call let through",
                ctx.provider,
                ctx.tenant_id,
                exc_info=True,
            )
            return Admission(True)
        self._observed(ctx, step)
        if not admission.allowed:
            assert admission.retry_after is not None
            self.metrics.rejection(ctx.provider, ctx.tenant_id, step.breaker.state)
            log.info(
                "circuit breaker %s (tenant %s) %s: %s refused, retry in %.1f s",
                ctx.provider,
                ctx.tenant_id,
                step.breaker.state.value,
                ctx.ref,
                admission.retry_after.total_seconds(),
            )
            raise breaker_open_error(ctx, step.breaker.state, step, admission.retry_after)
        return admission

    async def _record(
        self,
        ctx: CallContext,
        admission: Admission,
        outcome: Outcome,
        failure: str | None,
        detail: dict[str, Any],
    ) -> None:
        if outcome is Outcome.UNKNOWN and not admission.probe:
            return  # nothing to count and no probe slot to give back
        try:
            step = await self.store.record(
                ctx.tenant_id,
                ctx.provider,
                outcome,
                probe=admission.probe,
                failure=failure,
                actor=_actor(ctx),
                detail={**detail, "outcome": outcome.value, "failure": failure},
            )
        except Exception:  # never hide the activity's own result
            log.warning(
                "breaker %s/%s: outcome not recorded", ctx.provider, ctx.tenant_id, exc_info=True
            )
            return
        self._observed(ctx, step)

    def _observed(self, ctx: CallContext, step: Step) -> None:
        self.metrics.state(ctx.provider, ctx.tenant_id, step.breaker.state)
        if step.transition is not None:
            self._transitioned(ctx, step.transition)

    def _transitioned(self, ctx: CallContext, transition: Transition) -> None:
        self.metrics.transition(ctx.provider, ctx.tenant_id, transition)
        log.warning(
            "circuit breaker %s (tenant %s): %s -> %s: %s (call %s in %s)",
            ctx.provider,
            ctx.tenant_id,
            transition.from_state.value,
            transition.to_state.value,
            transition.reason,
            ctx.ref,
            ctx.workflow_id,
        )


def _actor(ctx: CallContext) -> str:
    return f"workflow:{ctx.workflow_id}"


def _call_detail(ctx: CallContext) -> dict[str, Any]:
    """Which call, in which worker process, made a transition (breaker_events.detail)."""
    detail: dict[str, Any] = {"tool": ctx.ref, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    if activity.in_activity():
        info = activity.info()
        detail.update(
            activity_id=info.activity_id, attempt=info.attempt, run_id=info.workflow_run_id
        )
    return detail


class BreakerInterceptor(Interceptor):
    """``Worker(interceptors=[BreakerInterceptor(guard)])``."""

    def __init__(self, guard: BreakerGuard) -> None:
        self.guard = guard

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _GuardedActivity(next, self.guard)


class _GuardedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, guard: BreakerGuard) -> None:
        super().__init__(next)
        self._guard = guard

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        ctx = input.args[0] if input.args else None
        if not isinstance(ctx, CallContext) or not self._guard.guards(ctx.provider):
            return await super().execute_activity(input)
        return await self._guard.call(ctx, lambda: self.next.execute_activity(input))


def policy_of(settings: BreakerSettings) -> Policy:
    """The :class:`Policy` of the ``breaker`` settings."""
    return Policy(
        failure_threshold=settings.failure_threshold,
        failure_rate=settings.failure_rate,
        window=timedelta(seconds=settings.window_seconds),
        open_for=timedelta(seconds=settings.open_seconds),
        probes=settings.half_open_probes,
        probe_timeout=timedelta(seconds=settings.probe_timeout_seconds),
    )


def breaker_interceptors(
    settings: BreakerSettings, db: Database, meter: MetricMeter
) -> list[Interceptor]:
    """The worker's interceptors: the breaker guard, or none when breakers are disabled."""
    if not settings.enabled:
        return []
    guard = BreakerGuard(
        BreakerStore(db, policy_of(settings)),
        BreakerMetrics(meter),
        frozenset(settings.providers),
        count_rate_limits=settings.count_rate_limits,
    )
    return [BreakerInterceptor(guard)]
