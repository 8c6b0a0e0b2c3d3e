"""Pieces every order-to-cash workflow shares: the flow state (search attributes, trace),
the policy for runs started without one, emails through the kernel, and the saga.

Deterministic: imported by workflow modules only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
    from kernel import tools
    from kernel.call import internal_activity, kernel_call
    from kernel.codes import ErrorCode
    from kernel.state import RunState
    from kernel.tools.sendgrid import SendEmailInput, SendEmailOutput
    from workflows.common.approvals import ApprovalDenied
    from workflows.common.models import (
        LOAD_FLOW_CONTEXT,
        ApprovalView,
        FlowContext,
        FlowContextRequest,
    )

Compensation = Callable[[], Awaitable[Any]]


CONTEXT_FROM_WORKER = "flow-context-from-worker"


async def load_context(
    given: FlowContext | None, tenant_id: str, workflow_type: str, *, local: bool = False
) -> FlowContext:
    """The worker's compiled config for this tenant and flow: the policy (scopes, bounds,
    HITL rules), approvers and notifications are never taken from the input, so whoever
    can start a workflow cannot start it under a laxer policy (no approval for a refund).
    From a given context only the *waits* are kept — approval timeout, reminder,
    escalation, and the dunning schedule (tests and the demo shorten them); none of them
    can skip an approval (a void after dunning still asks for one above its threshold).
    Runs started before this rule (histories without the load) keep their input's.
    ``local``: the run's start patch says the load runs as a local activity, in the first
    workflow task (the rule is then the run's own, and not asked of its patch)."""
    if given is not None and (
        given.policy.tenant_id != tenant_id or given.policy.workflow_type != workflow_type
    ):
        raise ApplicationError(
            "the flow context is for another tenant or workflow type",
            type=ErrorCode.CONTEXT_MISMATCH,
            non_retryable=True,
        )
    if given is not None and not (local or workflow.patched(CONTEXT_FROM_WORKER)):
        return given
    context = await internal_activity(
        LOAD_FLOW_CONTEXT,
        FlowContextRequest(tenant_id=tenant_id, workflow_type=workflow_type),
        result_type=FlowContext,
        local=local,
    )
    assert context is not None
    if given is None:
        return context
    waits = given.timing.model_dump(include={"timeout", "remind_before", "escalate_after"})
    timing = context.timing.model_copy(update=waits)
    return context.model_copy(update={"timing": timing, "dunning": given.dunning})


def error_type(exc: BaseException) -> str | None:
    """The stable code of a failure: an activity's ``ApplicationError`` type, or the
    error's own ``type`` (None for anything else)."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    found = getattr(cause, "type", None)
    return found if isinstance(found, str) else None


def describe(exc: BaseException) -> str:
    """``CODE: message`` of a failure, for the status query's ``error``."""
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    kind = getattr(cause, "type", None) or type(cause).__name__
    return f"{kind}: {cause}"


def mark_started(
    tenant_id: str, order_id: str, state: str, *, skip_if_given: Callable[[], bool] | None = None
) -> None:
    """Make the run findable by tenant, order and state in the Web UI. A run whose start
    set all four already (the starters do; the ingress sets two) need not upsert them
    again, once ``skip_if_given`` (the flow's patch) says so: asked only then."""
    given = workflow.info().typed_search_attributes
    if (
        skip_if_given is not None
        and given.get(TENANT_ID) == tenant_id
        and given.get(ORDER_ID) == order_id
        and given.get(FLOW_STATE) == state
        and given.get(APPROVAL_PENDING) is False
        and skip_if_given()
    ):
        return
    workflow.upsert_search_attributes(
        [
            TENANT_ID.value_set(tenant_id),
            ORDER_ID.value_set(order_id),
            FLOW_STATE.value_set(state),
            APPROVAL_PENDING.value_set(False),
        ]
    )


def move(run: RunState, current: str, new: str, *, indexed: bool = True) -> str:
    """Record a business state change (trace + FlowState search attribute).
    ``indexed=False``: the trace only, for a state the run leaves in the same workflow
    task (an upsert there is replaced before anyone can filter on it)."""
    if new != current:
        run.state_change(workflow.now(), current, new)
        if indexed:
            workflow.upsert_search_attributes([FLOW_STATE.value_set(new)])
    return new


async def send_email(
    run: RunState,
    *,
    to: str,
    template: str,
    subject: str,
    step: str,
    variables: dict[str, str] | None = None,
    category: str = "transactional",
) -> SendEmailOutput:
    return await kernel_call(
        run,
        tools.sendgrid.SEND_EMAIL,
        SendEmailInput(
            to=to,
            template=template,
            subject=subject,
            variables=variables or {},
            category=category,
        ),
        step=step,
    )


async def email_ops(
    run: RunState,
    *,
    to: str,
    template: str,
    subject: str,
    step: str,
    variables: dict[str, str],
) -> str | None:
    """An email to ops, best effort: None once sent, else the failure's text. What the
    flow found or did is its record; a mail that cannot go out must neither undo it nor
    hide the outcome, so the caller notes the failure and goes on."""
    try:
        await send_email(
            run,
            to=to,
            template=template,
            category="ops",
            subject=subject,
            step=step,
            variables=variables,
        )
    except (ActivityError, ApplicationError) as exc:
        return str(exc)
    return None


def approval_notifier(
    run: RunState,
) -> Callable[[str, ApprovalView, list[str]], Awaitable[None]]:
    """Reminders, escalations and expiries go to people as emails, through the kernel."""
    templates = {
        "reminder": "approval_reminder",
        "escalation": "approval_escalated",
        "expired": "approval_expired",
    }

    async def notify(kind: str, view: ApprovalView, recipients: list[str]) -> None:
        for to in recipients:
            try:
                await send_email(
                    run,
                    to=to,
                    template=templates[kind],
                    category="approval",
                    subject=f"Approval {kind}: {view.action}",
                    step=f"notify:{kind}:{view.escalation_level}:{view.request_id}:{to}",
                    variables={
                        "request_id": view.request_id,
                        "action": view.action,
                        "expires_at": view.expires_at.isoformat(),
                    },
                )
            except (ActivityError, ApplicationError) as exc:
                # A notification that cannot be sent must not decide the money question.
                workflow.logger.warning("approval %s notification failed: %s", kind, exc)

    return notify


class Saga:
    """Undo steps registered as the flow goes; run in reverse on failure, after every
    in-flight update/signal handler has finished."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Compensation]] = []
        self.done: list[str] = []
        self.failed: list[str] = []

    def add(self, name: str, undo: Compensation) -> None:
        self._steps.append((name, undo))

    def clear(self) -> None:
        """The point of no return: what is done can no longer be undone here."""
        self._steps.clear()

    @property
    def pending(self) -> list[str]:
        return [name for name, _ in self._steps]

    async def compensate(self, run: RunState) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        while self._steps:
            name, undo = self._steps.pop()
            try:
                await undo()
                self.done.append(name)
                run.decision(workflow.now(), "compensated", {"step": name})
            except (ActivityError, ApplicationError, ApprovalDenied) as exc:
                self.failed.append(name)
                run.decision(
                    workflow.now(), "compensation_failed", {"step": name, "error": str(exc)}
                )
