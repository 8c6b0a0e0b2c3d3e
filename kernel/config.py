"""BusinessConfig: one tenant's policy, written as YAML (see config/demo-shop.yaml).

The model is deliberately lenient where the compiler has a better message: missing
bounds and scopes parse, and ``kernel.compiler`` reports them as CC-02 / CC-03 with a
line number. ``policy_for`` turns a *compiled* config into the ``RunPolicy`` the gate
enforces for one workflow type.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from kernel.cost import DEFAULT_PRICES, PriceTable
from kernel.frozen import Frozen
from kernel.policy import Bounds, Duration, HitlRule, LoopPolicy, RetryTiming, RunPolicy

Channel = Literal["email", "slack", "log"]


class BoundsConfig(Frozen):
    """All five are required; a missing one is CC-02, not a schema error."""

    max_steps: int | None = Field(default=None, gt=0)
    max_tool_calls: int | None = Field(default=None, gt=0)
    max_wall_time: Duration | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: Decimal | None = Field(default=None, ge=0, decimal_places=6)

    def missing(self) -> list[str]:
        return [name for name, value in self if value is None]


class WorkflowConfig(Frozen):
    enabled: bool = True
    # The tools this workflow type may call (NAME@VERSION); CC-01 checks the closure.
    tools: list[str] = Field(default_factory=list)
    # Scopes granted to this workflow type; deny by default (CC-03).
    scopes: list[str] | None = None
    bounds: BoundsConfig | None = None
    loop: LoopPolicy = LoopPolicy()
    hitl: list[HitlRule] = Field(default_factory=list)


class Approver(Frozen):
    id: str = Field(min_length=1)
    name: str | None = None
    roles: list[str] = Field(min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Notifications(Frozen):
    from_email: str | None = None
    ops_email: str | None = None
    channels: list[Channel] = Field(default_factory=lambda: list[Channel](["log"]))
    # Approvals: remind before expiry, escalate after.
    remind_before: Duration = timedelta(hours=1)
    escalate_after: Duration = timedelta(hours=4)
    customer_emails: bool = True


DEFAULT_DUNNING = (timedelta(days=1), timedelta(days=2), timedelta(days=4))


class DunningConfig(Frozen):
    """WF02 PaymentFailure's dunning schedule: the waits before each reminder, the last
    one before the unpaid order is cancelled. ``[1d, 2d, 4d]``: the failure notice at
    once, reminders after 1 and 3 days, the PaymentIntent voided and the order cancelled
    after 7 days (unless the customer paid in between)."""

    schedule: tuple[Duration, ...] = Field(default=DEFAULT_DUNNING, min_length=1, max_length=10)

    @field_validator("schedule")
    @classmethod
    def _positive(cls, value: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if any(wait <= timedelta(0) for wait in value):
            raise ValueError("every dunning wait must be longer than zero")
        return value

    @property
    def total(self) -> timedelta:
        return sum(self.schedule, timedelta(0))


class ReconciliationConfig(Frozen):
    """The Reconciliation workflow's schedule (``autobiz reconcile schedule``): a run every
    ``every`` over the ``window`` before it (the window should overlap the interval, so
    nothing falls between two runs; rows are idempotent, so overlap costs nothing), at most
    ``max_orders`` orders per run. Financial drift no tool can repair (capture, amount) is
    acknowledged by ``acknowledge_roles`` within ``acknowledge_timeout`` (else it stays open:
    fail closed)."""

    every: Duration = timedelta(hours=1)
    window: Duration = timedelta(hours=24)
    max_orders: int = Field(default=100, ge=1, le=1000)
    acknowledge_roles: tuple[str, ...] = Field(default=("finance",), min_length=1)
    acknowledge_timeout: Duration = timedelta(hours=24)

    @model_validator(mode="after")
    def _window_covers_interval(self) -> ReconciliationConfig:
        if self.every < timedelta(minutes=1):
            raise ValueError("reconciliation.every must be at least 1m")
        if self.window < self.every:
            raise ValueError(
                f"reconciliation.window ({self.window}) must cover reconciliation.every "
                f"({self.every}), or drift between two windows is never looked at"
            )
        return self


# The monitor's defaults (the workflow's input repeats them for runs started by hand).
STUCK_AFTER_BY_STATE: dict[str, timedelta] = {"in_production": timedelta(days=14)}
TERMINAL_STATES: tuple[str, ...] = (
    "completed",
    "cancelled",
    "failed",
    "rejected",
    "refunded",
    "closed",
    "recovered",
)


class MonitorConfig(Frozen):
    """The InvariantMonitor's schedule (a run every ``every``) and its thresholds: an order
    projection not terminal and unchanged for longer than its state's SLA
    (``stuck_after_by_state``, else ``stuck_after``) is stuck; an approval still pending
    ``approval_grace`` after its expiry is overdue."""

    every: Duration = timedelta(hours=1)
    stuck_after: Duration = timedelta(hours=48)
    stuck_after_by_state: dict[str, Duration] = Field(
        default_factory=lambda: dict(STUCK_AFTER_BY_STATE)
    )
    terminal_states: tuple[str, ...] = TERMINAL_STATES
    approval_grace: Duration = timedelta(minutes=15)
    max_findings: int = Field(default=500, ge=1, le=5000)

    @model_validator(mode="after")
    def _not_too_often(self) -> MonitorConfig:
        if self.every < timedelta(minutes=1):
            raise ValueError("monitor.every must be at least 1m")
        return self

    def sla(self, state: str) -> timedelta:
        return self.stuck_after_by_state.get(state, self.stuck_after)


class ExceptionConfig(Frozen):
    """WF06 FulfillmentException's settings: who decides an escalated Printful hold or
    failure (``escalation_roles``) and for how long (``escalation_timeout``; unanswered it
    fails closed: nothing financial happens, ops are told); how many times a transient
    failure is re-submitted per order (``max_retries``); how long a fixed hold may take to
    be released by Printful (``release_wait``)."""

    escalation_roles: tuple[str, ...] = Field(default=("ops_lead",), min_length=1)
    escalation_timeout: Duration = timedelta(hours=24)
    max_retries: int = Field(default=2, ge=0, le=5)
    release_wait: Duration = timedelta(hours=4)


class CloseoutConfig(Frozen):
    """The DailyCloseout's schedule and report: a run every day at ``at`` (HH:MM) in
    ``timezone`` (IANA) closes the last local day that has ended — so ``at`` just after
    local midnight counts the day's last minutes — and each of the ``catchup_days`` before
    it that has no report yet (a missed day caught up). Orders per day up to
    ``max_orders``; the report's link works for ``link_ttl``; a captured/refunded total
    off by more than ``tolerance_minor`` is drift, acknowledged by ``acknowledge_roles``
    within ``acknowledge_timeout``."""

    timezone: str = "UTC"
    at: str = Field(default="00:10", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    catchup_days: int = Field(default=7, ge=0, le=60)
    max_orders: int = Field(default=250, ge=1, le=250)
    link_ttl: Duration = timedelta(days=7)
    tolerance_minor: int = Field(default=0, ge=0)
    acknowledge_roles: tuple[str, ...] = Field(default=("finance",), min_length=1)
    acknowledge_timeout: Duration = timedelta(hours=24)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"closeout.timezone {value!r} is not an IANA time zone") from None
        return value

    @property
    def hour(self) -> int:
        return int(self.at[:2])

    @property
    def minute(self) -> int:
        return int(self.at[3:])


class WismoConfig(Frozen):
    """WF05 WISMO's settings: the model that drafts (pinned per run, with its fallback),
    the prompt version, the tokens one draft may use; a draft below
    ``confidence_threshold``, or any email that asks for a refund or a cancellation, goes
    to ``review_roles`` for ``review_timeout`` (unanswered: nothing is sent, ops are told)."""

    model: str = Field(default="template-v1", min_length=1, max_length=100)
    fallback_model: str | None = Field(default=None, min_length=1, max_length=100)
    prompt_version: str = Field(default="1", pattern=r"^[0-9]{1,4}$")
    max_tokens: int = Field(default=600, gt=0, le=8192)
    confidence_threshold: float = Field(default=0.75, ge=0, le=1)
    review_roles: tuple[str, ...] = Field(default=("ops_lead",), min_length=1)
    review_timeout: Duration = timedelta(hours=24)


class BusinessConfig(Frozen):
    version: Literal[1] = 1
    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str | None = None
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    workflows: dict[str, WorkflowConfig]
    approvers: list[Approver] = Field(default_factory=list)
    notifications: Notifications = Notifications()
    prices: PriceTable = DEFAULT_PRICES
    dunning: DunningConfig = DunningConfig()
    reconciliation: ReconciliationConfig = ReconciliationConfig()
    monitor: MonitorConfig = MonitorConfig()
    closeout: CloseoutConfig = CloseoutConfig()
    fulfillment_exception: ExceptionConfig = ExceptionConfig()
    wismo: WismoConfig = WismoConfig()
    # The waits between a tool's attempts (kernel.policy.RetryTiming).
    retries: RetryTiming = RetryTiming()

    @model_validator(mode="after")
    def _dunning_fits_the_run(self) -> BusinessConfig:
        """A schedule longer than the flow's wall-time bound would end the run before it
        cancels (RUN_TERMINATED): refuse it here instead."""
        wf = self.workflows.get("payment_failure")
        limit = wf.bounds.max_wall_time if wf and wf.enabled and wf.bounds else None
        if limit is not None and self.dunning.total >= limit:
            raise ValueError(
                f"dunning.schedule waits {self.dunning.total} in all, not less than "
                f"workflows.payments.payment_failure.bounds.max_wall_time ({limit})"
            )
        return self

    @model_validator(mode="after")
    def _wismo_draft_fits_the_run(self) -> BusinessConfig:
        """A draft's ``wismo.max_tokens`` over the flow's token bound would have every
        run refused at the gate: refuse the config instead."""
        wf = self.workflows.get("wismo")
        limit = wf.bounds.max_tokens if wf and wf.enabled and wf.bounds else None
        if limit is not None and self.wismo.max_tokens > limit:
            raise ValueError(
                f"wismo.max_tokens ({self.wismo.max_tokens}) is more than "
                f"workflows.wismo.bounds.max_tokens ({limit}): no draft could be made"
            )
        return self

    def roles(self) -> set[str]:
        return {role for approver in self.approvers for role in approver.roles}

    def policy_for(self, workflow_type: str) -> RunPolicy:
        """The gate's policy for one workflow type (the config must compile cleanly)."""
        wf = self.workflows.get(workflow_type)
        if wf is None or not wf.enabled:
            raise KeyError(f"workflow type {workflow_type!r} is not enabled for {self.tenant}")
        if wf.bounds is None or wf.bounds.missing():
            raise ValueError(f"workflow type {workflow_type!r} has incomplete bounds (CC-02)")
        bounds = Bounds.model_validate(wf.bounds.model_dump())
        return RunPolicy(
            tenant_id=self.tenant,
            workflow_type=workflow_type,
            tools=frozenset(wf.tools),
            scopes=frozenset(wf.scopes or ()),
            bounds=bounds,
            loop=wf.loop,
            hitl=tuple(wf.hitl),
            prices=self.prices,
            retries=self.retries,
        )
