"""Human approval inside a workflow (DESIGN §4, INV-07): one desk per run.

- The ``decide`` **update** (validated first: known approver of this tenant, holding a
  role the rule names, a request pending, not decided, not expired, and a **proof** — a
  statement signed with a key registered for that approver, checked against the registry
  snapshot the run holds (``kernel.decision_proof``) — otherwise rejected before anything
  reaches history); ``decide_signal`` is the fire-and-forget form (an invalid signal is
  dropped and counted).
- ``obtain`` opens the ``hitl_requests`` row (the activity answers with the tenant's
  approver key registry: the snapshot proofs are checked against), waits with
  ``wait_condition`` until a decision or the deadline, sends a reminder before expiry and
  escalates after ``escalate_after``, then closes the row (approved / denied / expired).
  ``approver_keys_changed`` (no argument, harmless from anyone) makes a waiting request
  re-read the registry, so a rotation or a revocation applies to it.
- The first decision wins: duplicates (same update id: Temporal returns the first
  outcome) and approve/deny races (the second handler is refused) give one outcome.

Replay: decisions recorded before proofs existed carry none. The update's validator does
not run on replay, and its handler re-checks a proof only when there is one; the signal
path checks proofs behind ``workflow.patched(PROOF_PATCH)``.

Deterministic: time is ``workflow.now()``; I/O only through activities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from autobiz.search_attributes import APPROVAL_PENDING
    from kernel.call import internal_activity, kernel_call, preview
    from kernel.codes import ErrorCode
    from kernel.contracts import ToolContract
    from kernel.decision_proof import (
        ApproverKeyRegistry,
        ProofRejected,
        check_proof,
        statement_for,
    )
    from kernel.metrics import (
        record_approval_notice,
        record_approval_outcome,
        record_approval_requested,
        record_approval_signal_dropped,
        record_gate,
    )
    from kernel.state import Approval, RunState
    from workflows.common.models import (
        HITL_CLOSE,
        HITL_NOTE,
        HITL_OPEN,
        ApprovalTiming,
        ApprovalView,
        ApproverInfo,
        Decision,
        DecisionResult,
        FlowContext,
        HitlClose,
        HitlNote,
        HitlOpen,
    )

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
DB_ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Signals are checked for proofs from here on (runs recorded before replay unchecked).
PROOF_PATCH = "approval-proofs"
# Registry re-reads one request may do (each is an activity in history; the signal that
# asks for one can come from anyone).
MAX_KEY_REFRESHES = 20
Notifier = Callable[
    [Literal["reminder", "escalation", "expired"], ApprovalView, list[str]], Awaitable[None]
]


class ApprovalDenied(Exception):
    def __init__(self, view: ApprovalView) -> None:
        super().__init__(f"approval {view.request_id} {view.status}")
        self.view = view


# Who closes a request whose flow was cancelled while it waited.
FLOW_CANCELLED = "system:flow-cancelled"
# A cancel that lands while the request's row is being written (or a notice's, or a key
# refresh's activity runs) closes the row too.
CANCEL_WHILE_OPENING = "approval-cancel-while-opening"


def _is_cancel(exc: BaseException) -> bool:
    """The flow was cancelled: in a wait (asyncio's error) or during an activity (the
    activity's error, caused by Temporal's cancellation)."""
    return isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError)
    )


def rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorCode.DECISION_REJECTED, non_retryable=True)


def _check_pick(view: ApprovalView, d: Decision) -> None:
    """A pick only among the request's options (one is required to approve a request
    that has them); an edit only of a request with a draft."""
    if d.choice is not None and d.choice not in view.options:
        offered = ", ".join(view.options) if view.options else "none (approve or deny only)"
        raise rejected(f"choice {d.choice!r} is not an option of this request: {offered}")
    if d.approve and view.options and d.choice is None:
        raise rejected(f"approving this request needs a choice: {', '.join(view.options)}")
    if d.edited_text is not None and view.draft is None:
        raise rejected("this request has no draft to edit")


class ApprovalDesk:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.current: ApprovalView | None = None
        self.history: list[ApprovalView] = []
        self.dropped_signals = 0
        self._roster: dict[str, ApproverInfo] = {}
        self._timing_remind = timedelta(hours=1)
        self._timing_escalate = timedelta(hours=4)
        self._ops_email: str | None = None
        self._count = 0
        self._timing = ApprovalTiming()
        self._keys: ApproverKeyRegistry | None = None
        self._opening = False  # the request row and key registry are being fetched
        self._nonces: set[str] = set()
        self._refresh_wanted = False
        self.key_refreshes = 0

    def configure(self, context: FlowContext) -> None:
        self._roster = {a.id: a for a in context.approvers}
        self._timing_remind = context.timing.remind_before
        self._timing_escalate = context.timing.escalate_after
        self._timing = context.timing
        self._ops_email = context.ops_email

    @property
    def pending(self) -> bool:
        return self.current is not None and self.current.status == "pending"

    # -- the update / signal ----------------------------------------------------------

    def validate(self, d: Decision) -> None:
        """Raise to reject the update before it is written to history."""
        self._check_state(d)
        self._check_proof(d)

    def _check_proof(self, d: Decision) -> None:
        view = self.current
        assert view is not None  # _check_state ran first
        if d.proof is None:
            raise rejected(
                "the decision carries no proof: sign it with your approver key "
                "(`autobiz approvals approve|deny|sign`)"
            )
        if d.request_id is None:
            raise rejected("a signed decision names its request_id")
        if self._opening:
            # Shown pending, its row written, but the registry not back yet: a moment.
            raise ApplicationError(
                f"request {view.request_id} is still opening; decide again in a moment",
                type=ErrorCode.DECISION_NOT_READY,  # starters.decide sends it again
                non_retryable=True,
            )
        statement = statement_for(
            tenant_id=self.tenant_id,
            workflow_id=workflow.info().workflow_id,
            request_id=view.request_id,
            approve=d.approve,
            reason=d.reason,
            approver=d.approver,
            proof=d.proof,
            choice=d.choice,
            edited_text=d.edited_text,
        )
        try:
            # cryptography imports its Rust backend lazily; inside the sandbox that import
            # must reach the already-loaded module (a second load aborts the process).
            with workflow.unsafe.imports_passed_through():
                check_proof(
                    statement,
                    d.proof.signature,
                    self._keys,
                    now=workflow.now(),
                    requested_at=view.requested_at,
                    seen_nonces=self._nonces,
                    max_age=self._timing.proof_max_age,
                    max_skew=self._timing.proof_max_skew,
                )
        except ProofRejected as exc:
            raise rejected(f"proof rejected: {exc}") from None

    def _check_state(self, d: Decision) -> None:
        view = self.current
        if d.tenant_id != self.tenant_id:
            raise rejected(f"decision for tenant {d.tenant_id} sent to a {self.tenant_id} flow")
        approver = self._roster.get(d.approver)
        if approver is None:
            raise rejected(f"{d.approver} is not an approver of tenant {self.tenant_id}")
        if view is None:
            if d.request_id and any(h.request_id == d.request_id for h in self.history):
                raise rejected(f"request {d.request_id} was already decided")
            raise rejected("no approval is pending")
        if d.request_id is not None and d.request_id != view.request_id:
            raise rejected(f"request {d.request_id} is not the pending request")
        if view.status != "pending":
            raise rejected(f"request {view.request_id} was already {view.status}")
        if workflow.now() >= view.expires_at:
            raise rejected(f"request {view.request_id} has expired")
        if view.roles and not set(approver.roles) & set(view.roles):
            raise rejected(
                f"{d.approver} has none of the roles {', '.join(view.roles)} this action needs"
            )
        _check_pick(view, d)

    def apply(self, d: Decision) -> DecisionResult:
        """The handler: revalidate (a racing decision may have landed first), then decide.

        The proof was checked by the validator; it is checked again when present (same
        inputs, same answer). Only a decision recorded before proofs existed has none: the
        validator does not run on replay, so such histories replay unchanged."""
        self._check_state(d)
        if d.proof is not None:
            self._check_proof(d)
            self._nonces.add(d.proof.nonce)
        view = self.current
        assert view is not None
        roles = self._roster[d.approver].roles
        role = next((r for r in view.roles if r in roles), roles[0])
        self.current = view.model_copy(
            update={
                "status": "approved" if d.approve else "denied",
                "decided_by": d.approver,
                "decided_role": role,
                "decided_at": workflow.now(),
                "reason": d.reason,
                "choice": d.choice if d.approve else None,
                "edited_text": d.edited_text if d.approve else None,
            }
        )
        return DecisionResult(
            request_id=view.request_id,
            status=self.current.status,
            decided_by=d.approver,
            decided_at=self.current.decided_at,
        )

    def signal(self, d: Decision) -> None:
        try:
            if workflow.patched(PROOF_PATCH):
                self.validate(d)
            self.apply(d)
        except ApplicationError as exc:
            self.dropped_signals += 1
            record_approval_signal_dropped(self.tenant_id)
            workflow.logger.warning("approval signal dropped: %s", exc.message)

    def keys_changed(self) -> None:
        """The ``approver_keys_changed`` signal: re-read the registry while a request waits
        (a new key, a rotation, a revocation); the next request reads it anyway."""
        if self.pending:
            self._refresh_wanted = True

    async def _refresh_keys(self, opened: HitlOpen) -> None:
        self._refresh_wanted = False
        if self.key_refreshes >= MAX_KEY_REFRESHES or not workflow.patched(PROOF_PATCH):
            return
        self.key_refreshes += 1
        self._keys = await self._open(opened)

    async def _open(self, opened: HitlOpen) -> ApproverKeyRegistry | None:
        """The request row (idempotent), and the tenant's approver key registry as of now
        (None: recorded by a worker from before proofs, whose activity returned nothing)."""
        raw = await internal_activity(
            HITL_OPEN, opened, result_type=dict, limit=DB_ACTIVITY_TIMEOUT
        )
        return None if raw is None else ApproverKeyRegistry.model_validate(raw)

    def withdraw(self, by: str, reason: str) -> bool:
        """Close the pending request without a human decision because the flow no longer
        needs it (its order is being cancelled). It ends ``denied`` — nothing moves — with
        ``by`` (a system principal) and the reason on the row. False: nothing was pending."""
        view = self.current
        if view is None or view.status != "pending":
            return False
        self.current = view.model_copy(
            update={
                "status": "denied",
                "decided_by": by,
                "decided_at": workflow.now(),
                "reason": reason[:500],
            }
        )
        return True

    # -- the wait ---------------------------------------------------------------------

    def approval_for(self, internal_key: str | None) -> Approval:
        view = self.current
        assert view is not None and view.status == "approved" and view.decided_at is not None
        return Approval(
            approved=True,
            approver=view.decided_by or "",
            role=view.decided_role or "",
            request_id=view.request_id,
            decided_at=view.decided_at,
            internal_key=internal_key,
        )

    def _recipients(self, roles: tuple[str, ...]) -> list[str]:
        return sorted(
            a.email
            for a in self._roster.values()
            if a.email and (not roles or set(a.roles) & set(roles))
        )

    async def obtain(
        self,
        *,
        action: str,
        roles: tuple[str, ...],
        expires_in: timedelta,
        amount_minor: int | None,
        currency: str | None,
        notify: Notifier,
        details: dict[str, Any] | None = None,
        options: tuple[str, ...] = (),
        draft: str | None = None,
    ) -> ApprovalView:
        """Open a request and wait for its outcome (approved, denied or expired).

        ``options``: the approver approves by picking one (``view.choice``); ``draft``:
        text the approver may replace (``view.edited_text``; ``view.final_text``)."""
        opened = self._new_request(action, roles, expires_in, amount_minor, currency, details)
        if options or draft is not None:
            assert self.current is not None
            self.current = self.current.model_copy(update={"options": options, "draft": draft})
            opened = opened.model_copy(
                update={"details": {**opened.details, "options": list(options), "draft": draft}}
            )
        cancelled: BaseException | None
        try:
            await self._open_request(opened)
        except (asyncio.CancelledError, ActivityError) as exc:
            if not (_is_cancel(exc) and workflow.patched(CANCEL_WHILE_OPENING)):
                raise
            cancelled = await self._cancelled_opening(opened, exc)
        else:
            cancelled = await self._await_outcome(opened, expires_in, notify)
        final = self.current
        assert final is not None and final.status != "pending"
        await self._close_request(final, opened.requested_at)
        if cancelled is not None:
            self.history.append(final)
            raise cancelled
        if final.status == "expired":
            recipients = self._recipients(final.roles)
            if self._ops_email:
                recipients.append(self._ops_email)
            await notify("expired", final, sorted(set(recipients)))
        self.history.append(final)
        return final

    def _new_request(
        self,
        action: str,
        roles: tuple[str, ...],
        expires_in: timedelta,
        amount_minor: int | None,
        currency: str | None,
        details: dict[str, Any] | None,
    ) -> HitlOpen:
        """The request as the ``status`` query shows it (``current``) and as its row."""
        info = workflow.info()
        self._count += 1
        now = workflow.now()
        view = ApprovalView(
            request_id=f"{info.workflow_id}#{action}#{self._count}",
            action=action,
            roles=roles,
            amount_minor=amount_minor,
            currency=currency,
            requested_at=now,
            expires_at=now + expires_in,
        )
        self.current = view
        return HitlOpen(
            tenant_id=self.tenant_id,
            request_id=view.request_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            action=action,
            required_role=",".join(roles) or "*",
            amount_minor=amount_minor,
            currency=currency,
            requested_at=now,
            expires_at=view.expires_at,
            details=details or {},
        )

    async def _open_request(self, opened: HitlOpen) -> None:
        """Write the row and read the approvers' keys; mark the run as waiting."""
        self._refresh_wanted = False
        self.key_refreshes = 0
        self._opening = True
        try:
            self._keys = await self._open(opened)
        finally:
            self._opening = False
        workflow.upsert_search_attributes([APPROVAL_PENDING.value_set(True)])
        record_approval_requested(self.tenant_id, opened.action)

    async def _cancelled_opening(self, opened: HitlOpen, exc: BaseException) -> BaseException:
        """Cancelled while the row was being written: write it again (idempotent; the
        cancelled write may or may not have happened), so the close that follows finds
        it and the backlog never keeps a request nobody can answer."""
        await self._open(opened)
        self.withdraw(FLOW_CANCELLED, "the flow was cancelled while this request opened")
        return exc

    def _notices(
        self, opened: HitlOpen, expires_in: timedelta
    ) -> list[tuple[datetime, Literal["reminder", "escalation"]]]:
        """When to escalate and when to remind, soonest first (each only if it falls
        inside the request's life)."""
        events: list[tuple[datetime, Literal["reminder", "escalation"]]] = []
        if timedelta(0) < self._timing_escalate < expires_in:
            events.append((opened.requested_at + self._timing_escalate, "escalation"))
        if timedelta(0) < self._timing_remind < expires_in:
            events.append((opened.expires_at - self._timing_remind, "reminder"))
        events.sort(key=lambda e: e[0])
        return events

    async def _await_outcome(
        self, opened: HitlOpen, expires_in: timedelta, notify: Notifier
    ) -> BaseException | None:
        """Wait for a decision, sending reminders and escalations on time, until decided
        or expired. A cancelled flow withdraws the request (returned, to re-raise)."""
        events = self._notices(opened, expires_in)
        try:
            while self.pending:
                due, kind = events[0] if events else (opened.expires_at, None)
                remaining = (due - workflow.now()).total_seconds()
                try:
                    await workflow.wait_condition(
                        lambda: not self.pending or self._refresh_wanted,
                        timeout=max(remaining, 0.001),
                    )
                    if self.pending and self._refresh_wanted:
                        await self._refresh_keys(opened)
                except TimeoutError:
                    if kind is None:
                        assert self.current is not None
                        self.current = self.current.model_copy(update={"status": "expired"})
                        break
                    events.pop(0)
                    await self._note(kind, notify)
        except (asyncio.CancelledError, ActivityError) as exc:
            # The flow itself was cancelled (an operator): the request is withdrawn, its
            # row closed, so the backlog never shows a request nobody can answer. (A
            # cancel during a reminder's or a key refresh's activity too, since the patch.)
            if isinstance(exc, ActivityError) and not (
                _is_cancel(exc) and workflow.patched(CANCEL_WHILE_OPENING)
            ):
                raise
            self.withdraw(FLOW_CANCELLED, "the flow was cancelled while this request waited")
            return exc
        return None

    async def _close_request(self, final: ApprovalView, requested_at: datetime) -> None:
        assert final.status != "pending"
        closed: Literal["approved", "denied", "expired"] = final.status
        await internal_activity(
            HITL_CLOSE,
            HitlClose(
                tenant_id=self.tenant_id,
                request_id=final.request_id,
                status=closed,
                decided_by=final.decided_by,
                decided_at=final.decided_at or workflow.now(),
                reason=final.reason if final.status != "expired" else "timeout",
            ),
            limit=DB_ACTIVITY_TIMEOUT,
        )
        workflow.upsert_search_attributes([APPROVAL_PENDING.value_set(False)])
        decided_after = (final.decided_at or workflow.now()) - requested_at
        record_approval_outcome(self.tenant_id, final.action, closed, decided_after)

    async def _note(self, kind: Literal["reminder", "escalation"], notify: Notifier) -> None:
        view = self.current
        assert view is not None
        level = view.escalation_level + (1 if kind == "escalation" else 0)
        if kind == "escalation":
            # The next group: every approver of any listed role, and the ops address.
            recipients = self._recipients(())
            if self._ops_email:
                recipients.append(self._ops_email)
        else:
            recipients = self._recipients(view.roles[level : level + 1] or view.roles)
        recipients = sorted(set(recipients))
        self.current = view.model_copy(update={"escalation_level": level})
        record_approval_notice(self.tenant_id, view.action, kind)
        await notify(kind, self.current, recipients)
        await internal_activity(
            HITL_NOTE,
            HitlNote(
                tenant_id=self.tenant_id,
                request_id=view.request_id,
                kind=kind,
                escalation_level=level,
                at=workflow.now(),
                notified=tuple(recipients),
            ),
            limit=DB_ACTIVITY_TIMEOUT,
        )


async def call_with_approval(
    desk: ApprovalDesk,
    state: RunState,
    tool: ToolContract[InT, OutT],
    input: InT,
    *,
    step: str,
    action: str,
    amount_minor: int | None,
    currency: str | None,
    notify: Notifier,
    timeout_override: timedelta | None = None,
) -> OutT:
    """``kernel_call`` that first obtains a human decision when the gate demands one.

    Raises :class:`ApprovalDenied` when the request is denied or expires (fail closed).
    A request already approved in this run for the same action is reused, bound to this
    call's own idempotency key.
    """
    decision = preview(state, tool, input, step=step)
    approval: Approval | None = None
    if decision.code is ErrorCode.APPROVAL_REQUIRED:
        assert decision.hitl is not None and decision.keys is not None
        record_gate(state, decision)  # counted as needs_approval; the call itself follows
        rule = decision.hitl.rule
        reusable = (
            desk.current is not None
            and desk.current.status == "approved"
            and desk.current.action == action
        )
        if not reusable:
            timeout = timeout_override or (rule.timeout if rule else timedelta(hours=24))
            view = await desk.obtain(
                action=action,
                roles=decision.hitl.approver_roles,
                expires_in=timeout,
                amount_minor=amount_minor,
                currency=currency,
                notify=notify,
                details={"tool": tool.ref, "step": step},
            )
            if view.status != "approved":
                state.decision(
                    workflow.now(),
                    f"approval_{view.status}",
                    {
                        "request_id": view.request_id,
                        "tool": tool.ref,
                        "decided_by": view.decided_by,
                    },
                )
                raise ApprovalDenied(view)
        approval = desk.approval_for(decision.keys.internal)
    return await kernel_call(state, tool, input, step=step, approval=approval)
