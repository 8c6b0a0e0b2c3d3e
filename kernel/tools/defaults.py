"""Timeouts, retry policies and field types the provider tools share, and the kinds of
tool (a read-back, a write, a message, a money move) that fix a contract's side effect,
timeout, retry policy and HITL default, so each declaration states only what is its own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from kernel.contracts import HitlMode, RetrySpec, SideEffect, ToolContract

IN = TypeVar("IN", bound=BaseModel)
OUT = TypeVar("OUT", bound=BaseModel)

Currency = str
CURRENCY = Field(pattern=r"^[A-Z]{3}$")
RiskLevel = Literal["low", "medium", "high"]

FAST = timedelta(seconds=15)
WRITE = timedelta(seconds=30)
# A read of many objects, one provider request each, paced by the provider's rate limit
# (the shared limiter): 250 Printful orders at 120 requests/min take over two minutes.
BULK_READ = timedelta(minutes=5)
MONEY_RETRY = RetrySpec(initial_interval_s=2.0, max_interval_s=120.0, max_attempts=8)
# Reads of an object we were just told exists: a not-found on the first NOT_FOUND_GRACE attempts
# is "not there yet" (a lagging read replica), retried after 1, 2, 4, 8 s; the fifth
# not-found is decisive. Attempts left over still absorb 5xx/429/timeouts.
READ_RETRY = RetrySpec(initial_interval_s=1.0, max_interval_s=30.0, max_attempts=6)
NOT_FOUND_GRACE = 4


@dataclass(frozen=True)
class ToolKind:
    """What tools of one kind share; :meth:`contract` adds what one tool is."""

    side_effect: SideEffect
    timeout: timedelta = WRITE
    retry: RetrySpec = field(default_factory=RetrySpec)
    default_hitl: HitlMode = HitlMode.NEVER
    not_found_grace: int = 0

    def contract(
        self,
        *,
        name: str,
        version: str,
        description: str,
        input_model: type[IN],
        output_model: type[OUT],
        provider: str,
        scopes: Iterable[str],
        trace_fields: Iterable[str],
    ) -> ToolContract[IN, OUT]:
        return ToolContract(
            name=name,
            version=version,
            description=description,
            input_model=input_model,
            output_model=output_model,
            side_effect=self.side_effect,
            provider=provider,
            scopes=frozenset(scopes),
            timeout=self.timeout,
            retry=self.retry,
            default_hitl=self.default_hitl,
            trace_fields=frozenset(trace_fields),
            not_found_grace=self.not_found_grace,
        )


# A read of a provider object we were just told exists (see NOT_FOUND_GRACE).
READ_BACK = ToolKind(
    SideEffect.READ, timeout=FAST, retry=READ_RETRY, not_found_grace=NOT_FOUND_GRACE
)
# A provider write that moves no money.
CHANGE = ToolKind(SideEffect.WRITE)
# A message to a person (email).
MESSAGE = ToolKind(SideEffect.COMMUNICATION)
# Captures, voids and refunds: retried patiently, and approved by a person by default.
MONEY_MOVE = ToolKind(SideEffect.FINANCIAL, retry=MONEY_RETRY, default_hitl=HitlMode.ALWAYS)
