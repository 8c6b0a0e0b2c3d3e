"""The breaker's state machine on its own: opening on failures in a window, refusing
while open, probing when half-open, closing or reopening on the probe's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autobiz.breakers.machine import (
    MIN_RETRY_DELAY,
    Breaker,
    BreakerState,
    Outcome,
    Policy,
    admit,
    record,
    reset,
    trips,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = Policy(
    failure_threshold=3,
    failure_rate=0.5,
    window=timedelta(seconds=60),
    open_for=timedelta(seconds=30),
    probes=1,
    probe_timeout=timedelta(seconds=20),
)
S = timedelta(seconds=1)


def _fail(b: Breaker, now: datetime, *, probe: bool = False) -> Breaker:
    return record(b, now, POLICY, Outcome.FAILURE, probe=probe, failure="PROVIDER_UNAVAILABLE")[0]


def _opened() -> Breaker:
    b = Breaker()
    for i in range(3):
        b = _fail(b, T0 + i * S)
    assert b.state is BreakerState.OPEN
    return b


def test_three_failures_in_a_window_open_it_until_open_for_has_passed() -> None:
    b = _fail(_fail(Breaker(), T0), T0 + S)
    assert b.state is BreakerState.CLOSED and (b.calls, b.failures) == (2, 2)
    b, transition = record(b, T0 + 2 * S, POLICY, Outcome.FAILURE, probe=False, failure="X 503")
    assert b.state is BreakerState.OPEN and b.open_until == T0 + 2 * S + POLICY.open_for
    assert transition is not None and transition.to_state is BreakerState.OPEN
    assert "3 failures in 3 calls" in transition.reason and b.last_failure == "X 503"
    # Refused with the time it stays open as the delay.
    _, admission, _ = admit(b, T0 + 12 * S, POLICY)
    assert not admission.allowed and admission.retry_after == timedelta(seconds=20)


def test_failures_spread_over_windows_do_not_open_it() -> None:
    b = Breaker()
    for i in range(10):
        b = _fail(b, T0 + i * 61 * S)  # each in a window of its own
    assert b.state is BreakerState.CLOSED and b.failures == 1


def test_the_rate_counts_too_successes_dilute_failures() -> None:
    b = Breaker()
    for i in range(4):
        b = record(b, T0 + i * S, POLICY, Outcome.SUCCESS, probe=False)[0]
    for i in range(3):
        b = _fail(b, T0 + (10 + i) * S)
    # 3 failures out of 7 calls: the threshold is met, the 50 % rate is not.
    assert b.state is BreakerState.CLOSED and (b.calls, b.failures) == (7, 3)
    b = _fail(b, T0 + 20 * S)  # 4 of 8
    assert b.state is BreakerState.OPEN


def test_unknown_outcomes_count_nothing() -> None:
    b = record(Breaker(), T0, POLICY, Outcome.UNKNOWN, probe=False)[0]
    assert b == Breaker()


def test_after_open_for_one_probe_goes_through_the_rest_wait() -> None:
    b = _opened()
    later = b.open_until
    assert later is not None
    b, admission, transition = admit(b, later, POLICY)
    assert admission.allowed and admission.probe and b.state is BreakerState.HALF_OPEN
    assert transition is not None and transition.to_state is BreakerState.HALF_OPEN
    b2, second, _ = admit(b, later + S, POLICY)
    assert not second.allowed and b2 == b
    assert second.retry_after == POLICY.probe_timeout - S


def test_a_probe_success_closes_it_with_a_fresh_window() -> None:
    b = _opened()
    assert b.open_until is not None
    b, _, _ = admit(b, b.open_until, POLICY)
    b, transition = record(b, b.probe_deadline or T0, POLICY, Outcome.SUCCESS, probe=True)
    assert b.state is BreakerState.CLOSED and (b.calls, b.failures) == (0, 0)
    assert transition is not None and transition.reason == "probe succeeded"


def test_a_probe_failure_opens_it_again_for_open_for() -> None:
    b = _opened()
    assert b.open_until is not None
    at = b.open_until + 5 * S
    b, _, _ = admit(b, at, POLICY)
    b, transition = record(b, at + S, POLICY, Outcome.FAILURE, probe=True, failure="X")
    assert b.state is BreakerState.OPEN and b.open_until == at + S + POLICY.open_for
    assert transition is not None and transition.from_state is BreakerState.HALF_OPEN


def test_an_unreported_probe_is_forgotten_after_probe_timeout() -> None:
    b = _opened()
    until = b.open_until
    assert until is not None
    b, _, _ = admit(b, until, POLICY)  # the probe's worker dies: no report
    b, again, _ = admit(b, until + POLICY.probe_timeout, POLICY)
    assert again.allowed and again.probe and b.probes == 1


def test_an_unknown_probe_outcome_gives_the_slot_back() -> None:
    b = _opened()
    until = b.open_until
    assert until is not None
    b, _, _ = admit(b, until, POLICY)
    b, transition = record(b, until + S, POLICY, Outcome.UNKNOWN, probe=True)
    assert transition is None and b.state is BreakerState.HALF_OPEN and b.probes == 0
    assert admit(b, until + 2 * S, POLICY)[1].allowed


def test_late_outcomes_of_calls_admitted_before_it_opened_change_nothing() -> None:
    b = _opened()
    assert record(b, T0 + 5 * S, POLICY, Outcome.SUCCESS, probe=False) == (b, None)
    assert record(b, T0 + 5 * S, POLICY, Outcome.FAILURE, probe=False) == (b, None)


def test_reset_closes_from_any_state() -> None:
    b, transition = reset(_opened(), T0 + 4 * S)
    assert b.state is BreakerState.CLOSED and transition is not None
    assert transition.reason == "reset"
    assert reset(Breaker(), T0)[1] is None


def test_a_policy_that_could_never_work_is_refused() -> None:
    bads: list[dict[str, Any]] = [
        {"failure_threshold": 0},
        {"probes": 0},
        {"failure_rate": 1.5},
        {"open_for": timedelta(0)},
    ]
    for bad in bads:
        with pytest.raises(ValueError):
            Policy(**bad)


# -- properties over any sequence of calls ------------------------------------------
EVENT = st.tuples(
    st.sampled_from(["call_ok", "call_fail", "call_unknown"]),
    st.integers(min_value=0, max_value=40_000),  # ms since the previous event
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=60))
def test_invariants_hold_for_any_sequence(events: list[tuple[str, int]]) -> None:
    """Whatever happens: calls are refused only while open or probing; a refusal asks for
    a positive delay no longer than open_for; half-open never has more probes out than
    allowed; closed never holds a window that should have tripped; each transition
    changes the state."""
    b, now = Breaker(), T0
    for kind, gap_ms in events:
        now += timedelta(milliseconds=gap_ms)
        before = b
        b, admission, transition = admit(b, now, POLICY)
        if transition is not None:
            assert transition.from_state is before.state is not b.state
        if not admission.allowed:
            assert b.state in (BreakerState.OPEN, BreakerState.HALF_OPEN)
            assert admission.retry_after is not None
            assert MIN_RETRY_DELAY <= admission.retry_after <= POLICY.open_for
            if b.state is BreakerState.OPEN:
                assert b.open_until is not None and now < b.open_until
            continue
        assert b.state is BreakerState.CLOSED or admission.probe
        outcome = {
            "call_ok": Outcome.SUCCESS,
            "call_fail": Outcome.FAILURE,
            "call_unknown": Outcome.UNKNOWN,
        }[kind]
        before = b
        b, transition = record(b, now, POLICY, outcome, probe=admission.probe, failure="F")
        if transition is not None:
            assert transition.from_state is before.state is not b.state
        if b.state is BreakerState.HALF_OPEN:
            assert 0 <= b.probes <= POLICY.probes
        if b.state is BreakerState.CLOSED:
            assert not trips(b, POLICY) and b.failures <= b.calls
        if admission.probe and outcome is Outcome.SUCCESS:
            assert b.state is BreakerState.CLOSED
        if admission.probe and outcome is Outcome.FAILURE:
            assert b.state is BreakerState.OPEN and b.open_until == now + POLICY.open_for


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=20), st.floats(min_value=0.0, max_value=1.0))
def test_a_run_of_threshold_failures_always_opens_it(threshold: int, rate: float) -> None:
    policy = Policy(failure_threshold=threshold, failure_rate=rate)
    b = Breaker()
    for i in range(threshold):
        assert b.state is BreakerState.CLOSED
        b = record(b, T0 + i * S, policy, Outcome.FAILURE, probe=False, failure="F")[0]
    assert b.state is BreakerState.OPEN
