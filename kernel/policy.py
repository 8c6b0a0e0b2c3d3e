"""What one run of one workflow type may do: the slice of a tenant's BusinessConfig
the gate enforces. Passed into the workflow as input, so the gate never reads a file."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer

from kernel.contracts import HitlMode
from kernel.cost import DEFAULT_PRICES, MICROS_PER_USD, PriceTable
from kernel.frozen import Frozen

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, an int of seconds, or a timedelta."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    return value


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


SortedSet = Annotated[frozenset[str], PlainSerializer(lambda s: sorted(s), return_type=list[str])]

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


class Bounds(Frozen):
    """Per-run limits (INV-03); each one ends the run with its name as the reason."""

    max_steps: int = Field(gt=0)
    max_tool_calls: int = Field(gt=0)
    max_wall_time: Duration
    max_tokens: int = Field(ge=0)
    max_cost_usd: Decimal = Field(ge=0, decimal_places=6)

    @property
    def max_cost_micros(self) -> int:
        return int(self.max_cost_usd * MICROS_PER_USD)


BOUND_FIELDS: tuple[str, ...] = tuple(Bounds.model_fields)


class LoopPolicy(Frozen):
    """A run ends when the last ``pattern`` calls repeat ``threshold`` times in a row
    (identical tool and input), unless every tool in the pattern is allowlisted."""

    threshold: int = Field(default=3, ge=2)
    max_pattern: int = Field(default=3, ge=1, le=10)
    retry_allowlist: tuple[str, ...] = ()


class HitlRule(Frozen):
    """When a tool call needs a human decision first (INV-07)."""

    tool: str = Field(pattern=r"^[a-z0-9_.]+@[A-Za-z0-9_.-]+$")
    mode: HitlMode = HitlMode.WHEN
    when: str | None = None
    approver_roles: tuple[str, ...] = ()
    timeout: Duration = timedelta(hours=24)
    on_timeout: Literal["FAIL", "ESCALATE"] = "FAIL"


class RetryTiming(Frozen):
    """How long a tool's retries wait: ``interval_scale`` multiplies the waits of every
    contract's retry policy (never the number of attempts, so every bound stays as the
    contract says). 1 in production; the demo and the tests shrink the waits."""

    interval_scale: float = Field(default=1.0, gt=0, le=1)


class RunPolicy(Frozen):
    """The compiled policy for one workflow type of one tenant."""

    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    workflow_type: str
    tools: SortedSet = frozenset()
    scopes: SortedSet = frozenset()
    bounds: Bounds
    loop: LoopPolicy = LoopPolicy()
    hitl: tuple[HitlRule, ...] = ()
    prices: PriceTable = DEFAULT_PRICES
    retries: RetryTiming = RetryTiming()

    def hitl_rule(self, tool_ref: str) -> HitlRule | None:
        for rule in self.hitl:
            if rule.tool == tool_ref:
                return rule
        return None
