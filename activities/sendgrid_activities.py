"""SendGrid tool: one templated email per call, at most once per message identity.

The identity is the call's internal key. Before SendGrid is called the message is
claimed in the email outbox (:mod:`autobiz.ledger.email_outbox`, its own committed
transaction), and SendGrid's answer is recorded there before the receipt:

- a retry after SendGrid answered ``202`` and the outbox recorded it returns that
  message id (nothing is sent);
- a retry that finds the claim but no recorded answer (the worker was killed between
  SendGrid's answer and the record, or the answer never came) does not send: the
  message may have gone out, so its outcome is ``unknown``, an ops note is written to
  ``audit_log`` and the flow goes on;
- an answer that says the message was not accepted (a 4xx/5xx/429, a connection that
  never opened, a refusal before the call) lets the next attempt send it.
"""

from __future__ import annotations

import httpx
from temporalio import activity

from activities.errors import run_side_effect
from autobiz.db.database import Database
from autobiz.ledger.email_outbox import EmailOutbox
from autobiz.ledger.executor import ProviderResult, SideEffectRunner
from autobiz.ledger.receipts import ReceiptStore
from autobiz.providers.errors import ProviderError
from autobiz.providers.sendgrid_client import Email
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.contracts import CallContext
from kernel.tools.sendgrid import SendEmailInput, SendEmailOutput

# Transport failures after which the request surely never reached SendGrid.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _maybe_delivered(exc: BaseException) -> bool:
    """Whether SendGrid may have accepted the message although no answer came back."""
    if isinstance(exc, ProviderError):
        if exc.http_status is not None:
            return False  # SendGrid answered: not accepted
        return exc.provider_code in ("timeout", "transport") and not isinstance(
            exc.__cause__, _NEVER_SENT
        )
    return False  # our own refusals (templates, hygiene) happen before the call


class SendGridActivities:
    def __init__(self, clients: TenantClients, db: Database) -> None:
        self._clients = clients
        self._runner = SideEffectRunner(db)
        self._receipts = ReceiptStore(db)
        self._outbox = EmailOutbox(db)

    @activity.defn(name=tools.sendgrid.SEND_EMAIL.activity_name)
    async def send_email(self, ctx: CallContext, input: SendEmailInput) -> SendEmailOutput:
        async def execute() -> ProviderResult[SendEmailOutput]:
            mailer = await self._clients.mailer(ctx.tenant_id)
            sent = await self._receipts.get(ctx.tenant_id, ctx.internal_key)
            if sent is not None:
                out = SendEmailOutput(message_id=sent.provider_object_id or "", status=sent.status)
                return ProviderResult(output=out, provider_object_id=out.message_id)
            claim = await self._outbox.claim(
                ctx.tenant_id,
                internal_key=ctx.internal_key,
                external_key=ctx.external_key,
                workflow_id=ctx.workflow_id,
                template=input.template,
            )
            if not claim.may_send:  # sent before, or maybe sent: never again
                return _outcome(claim.status, claim.message_id, input)
            try:
                result = await mailer.send(
                    Email(
                        kind=input.template,
                        to=[input.to],
                        data={"subject": input.subject, **input.variables},
                        reference=ctx.external_key,
                        headers=_reply_headers(input),
                    )
                )
            except BaseException as exc:
                if isinstance(exc, Exception) and not _maybe_delivered(exc):
                    await self._outbox.settle(ctx.tenant_id, ctx.internal_key, "not_sent")
                    raise
                if isinstance(exc, Exception):  # no answer: it may have gone out
                    note = f"no answer from SendGrid ({type(exc).__name__}); not resent"
                    await self._outbox.settle(ctx.tenant_id, ctx.internal_key, "unknown", note=note)
                    return _outcome("unknown", None, input)
                raise  # cancelled mid-call: the claim stays, the next attempt decides
            await self._outbox.settle(
                ctx.tenant_id, ctx.internal_key, "sent", message_id=result.message_id
            )
            status = "sandboxed" if result.sandbox_mode else "accepted"
            return _outcome(status, result.message_id, input)

        return await run_side_effect(self._runner, ctx, input, SendEmailOutput, execute)


def _reply_headers(input: SendEmailInput) -> dict[str, str]:
    """A reply names the message it answers, so the customer's mail client threads it."""
    if input.in_reply_to is None:
        return {}
    return {"In-Reply-To": input.in_reply_to, "References": input.in_reply_to}


def _outcome(
    status: str, message_id: str | None, input: SendEmailInput
) -> ProviderResult[SendEmailOutput]:
    """``accepted``/``sandboxed`` (this attempt sent it), ``sent`` (an earlier one did),
    ``unknown`` (maybe sent; not resent)."""
    out = SendEmailOutput(message_id=message_id or "", status=status)
    return ProviderResult(
        output=out,
        provider_object_id=message_id or None,
        status=status,
        details={"template": input.template, "category": input.category},
    )
