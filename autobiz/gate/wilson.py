"""The Wilson score interval's lower bound, and the gate verdict built on it.

Pure arithmetic, no I/O: the gate command and the exit report both judge with these.
With ``n`` runs that all passed the bound is ``n / (n + z²)``, so a threshold ``t`` needs
at least ``t·z² / (1 - t)`` runs before it can be reached at all (73 for 0.95 at z=1.96);
fewer runs are *insufficient*, a failure with its own reason, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

Z_95 = 1.96  # two-sided 95 %


def wilson_lower_bound(successes: int, trials: int, z: float = Z_95) -> float:
    """Lower end of the Wilson score interval for ``successes`` out of ``trials``."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, (centre - margin) / (1 + z2 / trials))


def min_trials_for(threshold: float, z: float = Z_95) -> int:
    """The fewest all-pass trials whose lower bound reaches ``threshold`` (0 when the
    threshold is 0; a threshold of 1 is never reached by a bound and is refused)."""
    if not 0 <= threshold < 1:
        raise ValueError(f"an LCB threshold is in [0, 1), got {threshold}")
    if threshold == 0:
        return 0
    n = max(1, math.floor(threshold * z * z / (1 - threshold)))
    while wilson_lower_bound(n, n, z) < threshold:
        n += 1
    return n


class Verdict(StrEnum):
    PASSED = "pass"
    BELOW_THRESHOLD = "below_threshold"
    INSUFFICIENT_RUNS = "insufficient_runs"


@dataclass(frozen=True)
class GateRule:
    """What a gate demands: every run passes (``require_all``, the P0 gate), and/or a
    lower bound of at least ``min_lcb`` (the P1 gate)."""

    name: str
    require_all: bool = False
    min_lcb: float = 0.0


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: int
    trials: int
    rate: float
    lcb: float
    verdict: Verdict
    reason: str

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.PASSED


def evaluate_gate(rule: GateRule, passed: int, trials: int, z: float = Z_95) -> GateResult:
    """The gate's verdict for ``passed`` of ``trials`` runs."""
    lcb = wilson_lower_bound(passed, trials, z)
    rate = passed / trials if trials else 0.0
    needed = min_trials_for(rule.min_lcb, z) if rule.min_lcb > 0 else 1
    if trials == 0 or trials < needed:
        verdict = Verdict.INSUFFICIENT_RUNS
        reason = (
            f"{trials} runs: at least {needed} are needed before an LCB of "
            f"{rule.min_lcb:.2f} can be reached"
            if rule.min_lcb > 0
            else "no runs"
        )
    elif rule.require_all and passed < trials:
        verdict = Verdict.BELOW_THRESHOLD
        reason = f"{trials - passed} of {trials} runs failed; this gate needs every run to pass"
    elif lcb < rule.min_lcb:
        verdict = Verdict.BELOW_THRESHOLD
        reason = f"LCB {lcb:.4f} < {rule.min_lcb:.2f}"
    else:
        verdict = Verdict.PASSED
        reason = f"{passed}/{trials} passed, LCB {lcb:.4f}"
    return GateResult(rule.name, passed, trials, rate, lcb, verdict, reason)
