"""The Wilson lower bound against published values, and the gate's verdicts."""

from __future__ import annotations

import pytest

from autobiz.gate.wilson import (
    GateRule,
    Verdict,
    evaluate_gate,
    min_trials_for,
    wilson_lower_bound,
)

pytestmark = pytest.mark.unit

P0 = GateRule("P0", require_all=True)
P1 = GateRule("P1", min_lcb=0.95)


@pytest.mark.parametrize(
    ("successes", "trials", "lower"),
    [
        # statsmodels.stats.proportion.proportion_confint(..., method="wilson")
        (50, 100, 0.4038),
        (95, 100, 0.8882),
        (8, 10, 0.4902),
        (81, 263, 0.2553),
        # all pass: n / (n + z²)
        (10, 10, 0.7225),
        (73, 73, 0.9500),
        (0, 10, 0.0),
    ],
)
def test_lower_bound_matches_known_values(successes: int, trials: int, lower: float) -> None:
    assert wilson_lower_bound(successes, trials) == pytest.approx(lower, abs=5e-5)


def test_all_pass_needs_73_runs_for_095() -> None:
    assert wilson_lower_bound(72, 72) < 0.95 <= wilson_lower_bound(73, 73)
    assert min_trials_for(0.95) == 73
    assert min_trials_for(0.90) == 35
    assert min_trials_for(0.0) == 0


@pytest.mark.parametrize(("successes", "trials"), [(-1, 3), (4, 3), (0, -1)])
def test_impossible_counts_are_refused(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_lower_bound(successes, trials)


def test_a_threshold_of_one_is_never_reachable() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        min_trials_for(1.0)


def test_p0_needs_every_run() -> None:
    assert evaluate_gate(P0, 10, 10).verdict is Verdict.PASSED
    failed = evaluate_gate(P0, 9, 10)
    assert failed.verdict is Verdict.BELOW_THRESHOLD and not failed.ok
    assert "1 of 10 runs failed" in failed.reason


def test_p1_below_its_bound_fails() -> None:
    # 100 of 102 is a 98 % raw rate, but its lower bound is 0.931.
    result = evaluate_gate(P1, 100, 102)
    assert result.rate > 0.95 > result.lcb
    assert result.verdict is Verdict.BELOW_THRESHOLD


def test_p1_with_too_few_runs_is_insufficient_not_a_pass() -> None:
    result = evaluate_gate(P1, 72, 72)
    assert result.verdict is Verdict.INSUFFICIENT_RUNS and not result.ok
    assert "at least 73" in result.reason
    assert evaluate_gate(P1, 73, 73).verdict is Verdict.PASSED


def test_no_runs_never_pass() -> None:
    assert evaluate_gate(P0, 0, 0).verdict is Verdict.INSUFFICIENT_RUNS
