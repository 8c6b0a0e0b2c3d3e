"""An idempotency-key store with the semantics Stripe documents (and Shopify's
``@idempotent`` shares): the first request runs and its response, status included, is
recorded; the same key with the same parameters replays that response; with different
parameters it is refused; while the first request is still running it is refused with a
conflict that may be retried."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    STARTED = "started"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_FLIGHT = "in_flight"


@dataclass
class RecordedResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Entry:
    fingerprint: Any
    response: RecordedResponse | None = None


@dataclass
class Decision:
    outcome: Outcome
    response: RecordedResponse | None = None


class IdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}

    def reset(self) -> None:
        self._entries.clear()

    def begin(self, scope: str, key: str, fingerprint: Any) -> Decision:
        entry = self._entries.get((scope, key))
        if entry is None:
            self._entries[(scope, key)] = _Entry(fingerprint)
            return Decision(Outcome.STARTED)
        if entry.fingerprint != fingerprint:
            return Decision(Outcome.MISMATCH)
        if entry.response is None:
            return Decision(Outcome.IN_FLIGHT)
        return Decision(Outcome.REPLAY, entry.response)

    def finish(self, scope: str, key: str, response: RecordedResponse) -> None:
        self._entries[(scope, key)].response = response

    def abandon(self, scope: str, key: str) -> None:
        """Forget a key whose request never started executing (nothing to replay)."""
        self._entries.pop((scope, key), None)
