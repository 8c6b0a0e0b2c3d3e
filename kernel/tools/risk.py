"""The risk check (a pure local tool: no provider)."""

from __future__ import annotations

from pydantic import Field

from kernel.contracts import SideEffect, ToolContract, ToolModel
from kernel.tools.defaults import CURRENCY, FAST, Currency, RiskLevel

# --- Risk ----------------------------------------------------------------------------


class RiskInput(ToolModel):
    order_id: str
    amount_minor: int = Field(ge=0)
    currency: Currency = CURRENCY
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class RiskOutput(ToolModel):
    level: RiskLevel
    score: int = Field(ge=0, le=100)
    reasons: list[str] = Field(default_factory=list)


ASSESS = ToolContract(
    name="risk.assess",
    version="1",
    description="Score an order's fraud risk.",
    input_model=RiskInput,
    output_model=RiskOutput,
    side_effect=SideEffect.READ,
    provider="internal",
    scopes=frozenset({"risk:read"}),
    timeout=FAST,
    trace_fields=frozenset({"order_id", "amount_minor", "currency", "level", "score"}),
)
