"""Timeouts, retry policies and field types the provider tools share."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from kernel.contracts import RetrySpec

Currency = str
CURRENCY = Field(pattern=r"^[A-Z]{3}$")
RiskLevel = Literal["low", "medium", "high"]

FAST = timedelta(seconds=15)
WRITE = timedelta(seconds=30)
MONEY_RETRY = RetrySpec(initial_interval_s=2.0, max_interval_s=120.0, max_attempts=8)
# Reads of an object we were just told exists: a not-found on the first NOT_FOUND_GRACE attempts
# is "not there yet" (a lagging read replica), retried after 1, 2, 4, 8 s; the fifth
# not-found is decisive. Attempts left over still absorb 5xx/429/timeouts.
READ_RETRY = RetrySpec(initial_interval_s=1.0, max_interval_s=30.0, max_attempts=6)
NOT_FOUND_GRACE = 4
