"""Chaos on the local stack: its real processes, found by their pid files and killed.

Each action breaks one part of a running ``autobiz dev up`` stack the way an outage does
and brings it back: the worker SIGKILLed and started again, the Temporal dev server
killed and restarted on the same database file, PostgreSQL stopped under the worker and
the ingress and started again, the ingress frozen with a request in its socket and then
killed, the sandbox's provider APIs unanswering for a while. ``autobiz soak --chaos`` and
the chaos tests (``tests/chaos/``) use the same actions.

Only processes the stack's pid files name are signalled (``autobiz.devstack.process``:
the pid together with its start time, so a reused pid is never hit).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autobiz.devstack.process import ProcessRecord
from autobiz.devstack.services import EmbeddedPostgres, Service
from autobiz.devstack.stack import Stack
from autobiz.errors import AutobizError, ServiceStartError
from kernel.codes import ErrorCode

if TYPE_CHECKING:  # the sandbox package is optional: this module imports without it
    from sandbox.control_client import SandboxControl


class ChaosRefused(AutobizError):
    """The action needs a process the stack does not own (e.g. an external database)."""

    code = ErrorCode.CHAOS_REFUSED


@dataclass
class ChaosEvent:
    """One action as it happened: what, when (seconds into the run), for how long."""

    action: str
    at: float
    seconds: float
    pid: int | None = None
    detail: str = ""


@dataclass
class ChaosLog:
    started: float = field(default_factory=time.monotonic)
    events: list[ChaosEvent] = field(default_factory=list)

    def add(self, action: str, began: float, pid: int | None, detail: str = "") -> ChaosEvent:
        event = ChaosEvent(
            action, round(began - self.started, 1), round(time.monotonic() - began, 1), pid, detail
        )
        self.events.append(event)
        return event


def _service(stack: Stack, name: str) -> Service:
    for service in stack.services:
        if service.name == name:
            return service
    raise ChaosRefused(f"the stack has no {name}")


def _live(service: Service) -> ProcessRecord:
    rec = service.pidfiles.read(service.name)
    if rec is None or not rec.alive():
        raise ChaosRefused(
            f"the stack's {service.name} is not running (no live pid file)",
            hint="start the stack with `autobiz dev up`",
        )
    return rec


def kill(stack: Stack, name: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to the stack's ``name`` process (by its pid file); its pid."""
    rec = _live(_service(stack, name))
    os.kill(rec.pid, sig)
    if sig == signal.SIGKILL:  # gone (or a zombie: ``ProcessRecord.process`` is None then)
        deadline = time.monotonic() + 10
        while rec.process() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    return rec.pid


def start(stack: Stack, name: str, *, attempts: int = 3) -> None:
    """Start ``name`` again (the pid file of the killed process is replaced)."""
    service = _service(stack, name)
    service.pidfiles.remove(name)
    for attempt in range(1, attempts + 1):
        try:
            service.start()
            return
        except ServiceStartError:  # e.g. its port still in TIME_WAIT or the DB not yet up
            if attempt == attempts:
                raise
            time.sleep(1.0)


def kill_worker(stack: Stack, log: ChaosLog, *, down_for: float = 0.0) -> ChaosEvent:
    """SIGKILL the worker (its in-flight activities are lost mid-call) and start a new one."""
    began = time.monotonic()
    pid = kill(stack, "worker")
    time.sleep(down_for)
    start(stack, "worker")
    return log.add("kill_worker", began, pid)


def restart_temporal(stack: Stack, log: ChaosLog, *, down_for: float = 2.0) -> ChaosEvent:
    """SIGKILL the Temporal dev server and start it again on the same database file:
    running workflows, timers and task queues survive; clients reconnect."""
    began = time.monotonic()
    pid = kill(stack, "temporal")
    time.sleep(down_for)
    start(stack, "temporal")
    return log.add("restart_temporal", began, pid)


def stop_postgres(stack: Stack, log: ChaosLog, *, down_for: float = 5.0) -> ChaosEvent:
    """Stop the embedded PostgreSQL (fast shutdown: every connection cut) under the worker
    and the ingress, keep it down ``down_for`` seconds, then start it again."""
    service = _service(stack, "postgres")
    if not isinstance(service, EmbeddedPostgres):
        raise ChaosRefused(
            "PostgreSQL is external (AUTOBIZ_DATABASE_URL): the stack cannot stop it",
            hint="run the chaos on the embedded database (unset AUTOBIZ_DATABASE_URL)",
        )
    began = time.monotonic()
    pid = _live(service).pid
    service.stop()
    time.sleep(down_for)
    start(stack, "postgres")
    return log.add("stop_postgres", began, pid, f"down {down_for:g}s")


def freeze(stack: Stack, name: str) -> int:
    """SIGSTOP ``name``: it holds its connections and answers nothing (SIGCONT or kill)."""
    return kill(stack, name, signal.SIGSTOP)


def kill_ingress_mid_request(stack: Stack, log: ChaosLog, *, frozen_for: float = 1.5) -> ChaosEvent:
    """Freeze the ingress so the requests the providers send meanwhile sit unanswered in
    its socket, then SIGKILL it (their connections reset: the providers retry) and start a
    new one."""
    began = time.monotonic()
    pid = freeze(stack, "ingress")
    time.sleep(frozen_for)
    kill(stack, "ingress")
    start(stack, "ingress")
    return log.add("kill_ingress", began, pid, f"frozen {frozen_for:g}s first")


# What the worker writes that the soak's own drivers do not (they act as customers and
# shops through Stripe's PaymentIntents, its refund list and Shopify): in a soak these
# POSTs go dark. Not SendGrid: an email whose send got no answer is never sent again (at
# most once, by design), so a dark SendGrid loses notices on purpose.
WORKER_PROVIDER_PATHS = (
    "/printful/*",
    "/stripe/v1/payment_intents/*/capture",
    "/stripe/v1/payment_intents/*/cancel",
    "/stripe/v1/refunds",
)


async def sandbox_unreachable(
    control: SandboxControl,
    log: ChaosLog,
    *,
    down_for: float = 6.0,
    paths: tuple[str, ...] = ("/*",),
    method: str = "*",
) -> ChaosEvent:
    """The sandbox's provider APIs under ``paths`` (globs; default: all of them) stop
    answering ``method`` requests (they hang until the client gives up) for ``down_for``
    seconds; then the faults are cleared."""
    began = time.monotonic()
    for path in paths:
        await control.fault("timeout", path, method=method, count=100_000, hang_seconds=30)
    try:
        await asyncio.sleep(down_for)
    finally:
        await control.clear_faults()
    return log.add("sandbox_unreachable", began, None, f"{', '.join(paths)} down {down_for:g}s")


Action = Callable[[], Awaitable[ChaosEvent]]


def rotation(stack: Stack, control: SandboxControl, log: ChaosLog) -> list[Action]:
    """The soak's chaos, one action after another in this order (then round again)."""

    def threaded(fn: Callable[[Stack, ChaosLog], ChaosEvent]) -> Action:
        return lambda: asyncio.to_thread(fn, stack, log)

    actions: list[Action] = [
        threaded(kill_worker),
        lambda: sandbox_unreachable(control, log, paths=WORKER_PROVIDER_PATHS, method="POST"),
        threaded(kill_ingress_mid_request),
        threaded(restart_temporal),
    ]
    if isinstance(_service(stack, "postgres"), EmbeddedPostgres):
        actions.append(threaded(stop_postgres))
    return actions
