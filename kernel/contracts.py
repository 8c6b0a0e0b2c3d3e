"""Tool contracts: what a tool takes, returns, touches and needs (DESIGN §3).

A contract is data. The activity that implements it registers under
``contract.activity_name``; workflows only ever reach it through ``kernel.call``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from kernel.frozen import Frozen

IN = TypeVar("IN", bound=BaseModel)
OUT = TypeVar("OUT", bound=BaseModel)


class SideEffect(StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    COMMUNICATION = "COMMUNICATION"
    FINANCIAL = "FINANCIAL"

    @property
    def needs_receipt(self) -> bool:
        return self is not SideEffect.READ


class HitlMode(StrEnum):
    """How a HITL rule decides; ``AUTO_APPROVE`` is never allowed on FINANCIAL tools."""

    NEVER = "NEVER"
    ALWAYS = "ALWAYS"
    WHEN = "WHEN"
    AUTO_APPROVE = "AUTO_APPROVE"


class ToolModel(Frozen):
    """Base of every tool input and output: unknown fields are rejected (INV-01)."""

    @property
    def may_be_absent(self) -> bool:
        """True when this input looks up an object that may legitimately not exist (by
        our own key, before we know whether we made it): a not-found is then an answer
        at once, never "not there yet" (see ``ToolContract.not_found_grace``)."""
        return False


class Money(ToolModel):
    """Money is integer minor units plus an ISO 4217 currency, never a float."""

    amount_minor: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class RetrySpec(Frozen):
    """A Temporal retry policy as data (seconds), so contracts stay pure."""

    initial_interval_s: float = 1.0
    backoff: float = 2.0
    max_interval_s: float = 60.0
    max_attempts: int = 5
    non_retryable: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolContract(Generic[IN, OUT]):
    name: str
    version: str
    description: str
    input_model: type[IN]
    output_model: type[OUT]
    side_effect: SideEffect
    provider: str
    scopes: frozenset[str]
    timeout: timedelta = timedelta(seconds=30)
    retry: RetrySpec = field(default_factory=RetrySpec)
    # The default HITL rule when a tenant's config has none for this tool.
    default_hitl: HitlMode = HitlMode.NEVER
    # Input/output fields safe to copy into a trace (everything else is dropped).
    trace_fields: frozenset[str] = frozenset()
    # For LLM tools: the input field that caps the tokens a call may use.
    token_budget_field: str | None = None
    # Reads of an object we were just told exists (the order a webhook named, the
    # Printful order we just created): providers' read replicas lag, so the first this
    # many attempts answer a not-found as retryable ``PROVIDER_NOT_FOUND_YET`` (with the
    # retry policy's backoff); the next one is the decisive ``PROVIDER_NOT_FOUND``.
    # Not applied to a lookup (``ToolModel.may_be_absent``) or an ``absent_ok`` call.
    not_found_grace: int = 0

    def __post_init__(self) -> None:
        attempts = self.retry.max_attempts
        if self.not_found_grace < 0 or (attempts > 0 and self.not_found_grace >= attempts):
            raise ValueError(
                f"{self.ref}: not_found_grace must be >= 0 and below retry.max_attempts "
                f"({attempts}), or Temporal gives up before the decisive answer"
            )
        if self.side_effect is SideEffect.FINANCIAL and self.default_hitl in (
            HitlMode.NEVER,
            HitlMode.AUTO_APPROVE,
        ):
            raise ValueError(f"FINANCIAL tool {self.ref} must default to a HITL rule")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def activity_name(self) -> str:
        return self.ref

    def input_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()

    def describe(self) -> dict[str, Any]:
        """The contract as JSON (what ``autobiz tools schema`` prints)."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "description": self.description,
            "side_effect": self.side_effect.value,
            "provider": self.provider,
            "scopes": sorted(self.scopes),
            "default_hitl": self.default_hitl.value,
            "timeout_seconds": self.timeout.total_seconds(),
            "retry": self.retry.model_dump(mode="json"),
            "not_found_grace": self.not_found_grace,
            "input_schema": self.input_schema(),
            "output_schema": self.output_schema(),
        }


def split_ref(ref: str) -> tuple[str, str]:
    """``"stripe.capture_payment@1"`` → ``("stripe.capture_payment", "1")``."""
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise ValueError(f"tool reference {ref!r} is not NAME@VERSION")
    return name, version


class OrderStateWrite(Frozen):
    """The ``order_state`` row one move writes (DESIGN §4 projections), optimistically:
    from ``expected_version`` to the next (``autobiz.order_state_write``)."""

    tenant_id: str
    order_id: str
    state: str
    expected_version: int = Field(ge=0)
    data: dict[str, Any] = Field(default_factory=dict)


class OrderStateWritten(Frozen):
    version: int
    applied: bool


class ProjectionWrite(OrderStateWrite):
    """An ``order_state`` row that rides with the next activity instead of costing one of
    its own (bench/README.md, issue 15).

    The worker writes it before the activity's own work, in its own transaction:
    ``data`` (this run's fields) is merged over what the row holds, at the next version.
    ``expected_version`` is the version the run believes the row is at: a row found
    one past it with this state and these fields is a retried write, applied already.

    ``with_result``: the row is for the move that follows the call's success, so it is
    written after the call, in a side effect's finish transaction with its receipt (a
    call answered from the idempotency store, or a read, writes it on its own after).
    """

    with_result: bool = False


class CallContext(Frozen):
    """The first argument of every tool activity: who calls, and the keys to use.

    Computed in the workflow by ``kernel_call``; an activity retry resends the same keys.
    """

    tenant_id: str
    workflow_id: str
    run_id: str
    workflow_type: str
    principal: str
    step: str
    tool: str
    version: str
    side_effect: SideEffect
    provider: str
    internal_key: str
    external_key: str
    request_hash: str
    # Attempts on which a provider not-found means "not there yet" (retryable); 0: a
    # not-found is decisive at once. Set by ``kernel_call`` from the contract.
    not_found_grace: int = Field(default=0, ge=0)
    # The run's projection row, written by the worker before the tool runs (None: none).
    projection: ProjectionWrite | None = None

    @property
    def ref(self) -> str:
        return f"{self.tool}@{self.version}"
