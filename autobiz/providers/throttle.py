"""What a provider client asks before each request: budget from its account's rate limit.

The clients only know this protocol; :mod:`autobiz.ratelimits` implements it (one bucket
per provider account, shared by every worker process). A client without a throttle
sends at once.
"""

from __future__ import annotations

from typing import Protocol


class Throttle(Protocol):
    """One tenant's rate limits."""

    async def acquire(self, provider: str, cost: float = 1.0) -> None:
        """Wait until ``cost`` fits in ``provider``'s budget, or raise a retryable
        :class:`~autobiz.providers.errors.RateLimited` whose ``retry_after`` is the wait."""

    async def settle(self, provider: str, reserved: float, actual: float) -> None:
        """The request cost ``actual``, not the ``reserved`` estimate (Shopify query
        costs): give back, or take, the difference."""
