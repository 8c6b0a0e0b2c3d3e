"""The risk tool: a deterministic, explainable score (no provider behind it yet)."""

from __future__ import annotations

from collections.abc import Iterable

from temporalio import activity

from activities.errors import provider_errors
from autobiz.ledger.executor import verify_call
from kernel import tools
from kernel.contracts import CallContext
from kernel.tools.defaults import RiskLevel
from kernel.tools.risk import RiskInput, RiskOutput

HIGH_AMOUNT_MINOR = 100_000
ELEVATED_AMOUNT_MINOR = 50_000


class RiskActivities:
    def __init__(
        self,
        *,
        high_risk_countries: Iterable[str] = (),
        high_amount_minor: int = HIGH_AMOUNT_MINOR,
        elevated_amount_minor: int = ELEVATED_AMOUNT_MINOR,
    ) -> None:
        self._countries = frozenset(c.upper() for c in high_risk_countries)
        self._high = high_amount_minor
        self._elevated = elevated_amount_minor

    @activity.defn(name=tools.risk.ASSESS.activity_name)
    async def assess(self, ctx: CallContext, input: RiskInput) -> RiskOutput:
        with provider_errors():
            verify_call(ctx, input)
        return self.score(input)

    def score(self, input: RiskInput) -> RiskOutput:
        score, reasons = 5, []
        if input.amount_minor >= self._high:
            score += 70
            reasons.append(f"amount >= {self._high} minor units")
        elif input.amount_minor >= self._elevated:
            score += 35
            reasons.append(f"amount >= {self._elevated} minor units")
        if input.country_code is not None and input.country_code in self._countries:
            score += 40
            reasons.append(f"shipping country {input.country_code} is on the watch list")
        score = min(score, 100)
        level: RiskLevel = "high" if score >= 70 else "medium" if score >= 40 else "low"
        return RiskOutput(level=level, score=score, reasons=reasons)
