"""What a golden run records: each scenario's trial and each round's faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trial:
    """One scenario, once: whether every case it opened reached its expected outcome."""

    round: int
    scenario: str
    gate: str
    ok: bool
    seconds: float
    cases: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Round:
    number: int
    faults_armed: list[str]
    faults_unfired: list[str]
    seconds: float
