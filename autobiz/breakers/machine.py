"""The circuit breaker's state machine, pure: no clock, no database, no I/O.

One breaker guards one provider account: ``(provider, tenant)``. Its states:

* ``closed``: every call goes through. Calls and provider failures are counted in a
  fixed window (``window`` long, starting at the first call after the last one ended);
  once the window holds at least ``failure_threshold`` failures *and* they are at least
  ``failure_rate`` of its calls, the breaker opens.
* ``open``: every call is refused until ``open_until`` (``open_for`` after it opened).
* ``half_open``: after ``open_until``, up to ``probes`` calls at once go through as
  probes; the others are refused. A probe that succeeds closes the breaker (a fresh
  window); one that fails opens it again for ``open_for``. Probes that never report
  (their worker died) are forgotten after ``probe_timeout``, so the breaker cannot stay
  half-open forever.

Only a provider failure that says the provider is unhealthy counts (a 5xx, a timeout, a
broken connection, a 429 if configured): a card decline or a 404 is the provider working
and counts as a success. An outcome that says nothing about the provider (our own
database failed, the attempt was cancelled) releases a probe slot and changes nothing
else.

:func:`admit` and :func:`record` take the breaker's current :class:`Breaker` and return
the next one plus what happened; the store (:mod:`autobiz.breakers.store`) applies them
under a row lock, so every worker process sees one breaker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# The value of the ``autobiz_breaker_state`` gauge for each state.
STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
# The shortest retry delay a refusal asks for (Temporal needs a positive one).
MIN_RETRY_DELAY = timedelta(milliseconds=200)


class Outcome(StrEnum):
    SUCCESS = "success"  # the provider answered (any answer that is not a failure)
    FAILURE = "failure"  # the provider is unhealthy (5xx, timeout, transport, 429)
    UNKNOWN = "unknown"  # says nothing about the provider (our failure, a cancellation)


@dataclass(frozen=True)
class Policy:
    failure_threshold: int = 5
    failure_rate: float = 0.5
    window: timedelta = timedelta(seconds=60)
    open_for: timedelta = timedelta(seconds=30)
    probes: int = 1
    probe_timeout: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.probes < 1:
            raise ValueError("failure_threshold and probes must be at least 1")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if min(self.window, self.open_for, self.probe_timeout) <= timedelta(0):
            raise ValueError("window, open_for and probe_timeout must be positive")


@dataclass(frozen=True)
class Breaker:
    """One breaker's stored state. ``window_start`` is None until the first call."""

    state: BreakerState = BreakerState.CLOSED
    window_start: datetime | None = None
    calls: int = 0
    failures: int = 0
    opened_at: datetime | None = None
    open_until: datetime | None = None
    probes: int = 0  # probes admitted and not yet reported (half_open)
    probe_deadline: datetime | None = None  # unreported probes are forgotten after it
    last_failure: str | None = None  # the code of the last counted failure


@dataclass(frozen=True)
class Transition:
    from_state: BreakerState
    to_state: BreakerState
    reason: str


@dataclass(frozen=True)
class Admission:
    allowed: bool
    probe: bool = False  # the call is a half-open probe (report it as one)
    retry_after: timedelta | None = None  # refused: when to try again


def _remaining(until: datetime | None, now: datetime, cap: timedelta | None = None) -> timedelta:
    left = (until - now) if until is not None else MIN_RETRY_DELAY
    if cap is not None:
        left = min(left, cap)
    return max(left, MIN_RETRY_DELAY)


def _opened(b: Breaker, now: datetime, policy: Policy, failure: str | None) -> Breaker:
    return Breaker(
        state=BreakerState.OPEN,
        opened_at=now,
        open_until=now + policy.open_for,
        last_failure=failure or b.last_failure,
        calls=b.calls,
        failures=b.failures,
        window_start=b.window_start,
    )


def _probe(b: Breaker, now: datetime, policy: Policy, *, fresh: bool) -> Breaker:
    return replace(
        b,
        state=BreakerState.HALF_OPEN,
        probes=1 if fresh else b.probes + 1,
        probe_deadline=now + policy.probe_timeout if fresh else b.probe_deadline,
    )


def admit(
    b: Breaker, now: datetime, policy: Policy
) -> tuple[Breaker, Admission, Transition | None]:
    """May a call go through now? The next state, the answer, and a transition if any."""
    if b.state is BreakerState.CLOSED:
        return b, Admission(True), None
    if b.state is BreakerState.OPEN:
        if b.open_until is not None and now < b.open_until:
            return b, Admission(False, retry_after=_remaining(b.open_until, now)), None
        nxt = _probe(b, now, policy, fresh=True)
        return nxt, Admission(True, probe=True), Transition(b.state, nxt.state, "open time over")
    stale = b.probe_deadline is None or now >= b.probe_deadline
    if stale or b.probes < policy.probes:
        return _probe(b, now, policy, fresh=stale), Admission(True, probe=True), None
    wait = _remaining(b.probe_deadline, now, policy.open_for)
    return b, Admission(False, retry_after=wait), None


def _in_window(b: Breaker, now: datetime, policy: Policy) -> Breaker:
    """``b`` with its window rolled over if it has ended (or never started)."""
    if b.window_start is None or now >= b.window_start + policy.window:
        return replace(b, window_start=now, calls=0, failures=0)
    return b


def trips(b: Breaker, policy: Policy) -> bool:
    """Whether a closed breaker's window counts enough failures to open it."""
    return (
        b.failures >= policy.failure_threshold
        and b.calls > 0
        and b.failures / b.calls >= policy.failure_rate
    )


def record(
    b: Breaker,
    now: datetime,
    policy: Policy,
    outcome: Outcome,
    *,
    probe: bool,
    failure: str | None = None,
) -> tuple[Breaker, Transition | None]:
    """A call's outcome (``probe``: it was admitted as one; ``failure``: the error code)."""
    if b.state is BreakerState.HALF_OPEN and probe:
        if outcome is Outcome.SUCCESS:
            nxt = Breaker(window_start=now)
            return nxt, Transition(b.state, nxt.state, "probe succeeded")
        if outcome is Outcome.FAILURE:
            nxt = _opened(b, now, policy, failure)
            return nxt, Transition(b.state, nxt.state, f"probe failed ({failure})")
        return replace(b, probes=max(0, b.probes - 1)), None
    if b.state is not BreakerState.CLOSED or outcome is Outcome.UNKNOWN:
        # A call admitted before the breaker opened: it has already been decided.
        return b, None
    b = _in_window(b, now, policy)
    failed = outcome is Outcome.FAILURE
    b = replace(
        b,
        calls=b.calls + 1,
        failures=b.failures + int(failed),
        last_failure=failure if failed else b.last_failure,
    )
    if failed and trips(b, policy):
        window = f"{policy.window.total_seconds():g} s"
        reason = f"{b.failures} failures in {b.calls} calls within {window} ({failure})"
        nxt = _opened(b, now, policy, failure)
        return nxt, Transition(BreakerState.CLOSED, nxt.state, reason)
    return b, None


def reset(b: Breaker, now: datetime) -> tuple[Breaker, Transition | None]:
    """An operator's reset: closed with a fresh window, whatever the state was."""
    nxt = Breaker(window_start=now)
    if b.state is BreakerState.CLOSED:
        return nxt, None
    return nxt, Transition(b.state, BreakerState.CLOSED, "reset")
