"""The base of the kernel's records (contracts' inputs and outputs, policies, config,
trace entries, approvals, proofs): unknown fields are rejected (INV-01) and nothing
changes after creation, so a record means one thing wherever it travels."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
