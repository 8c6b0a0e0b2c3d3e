"""SendGrid tool: one templated email per call, never two.

Before sending, the activity looks for a receipt for this call's key: one exists only if
the mail was already accepted, so a replay after the idempotency window sends nothing.
"""

from __future__ import annotations

from temporalio import activity

from activities.errors import run_side_effect
from autobiz.db.database import Database
from autobiz.ledger.executor import ProviderResult, SideEffectRunner
from autobiz.ledger.receipts import ReceiptStore
from autobiz.providers.sendgrid_client import Email
from autobiz.providers.tenant_clients import TenantClients
from kernel.catalog import SENDGRID_SEND_EMAIL, SendEmailInput, SendEmailOutput
from kernel.contracts import CallContext


class EmailActivities:
    def __init__(self, clients: TenantClients, db: Database) -> None:
        self._clients = clients
        self._runner = SideEffectRunner(db)
        self._receipts = ReceiptStore(db)

    @activity.defn(name=SENDGRID_SEND_EMAIL.activity_name)
    async def send_email(self, ctx: CallContext, input: SendEmailInput) -> SendEmailOutput:
        async def execute() -> ProviderResult[SendEmailOutput]:
            mailer = await self._clients.mailer(ctx.tenant_id)
            sent = await self._receipts.get(ctx.tenant_id, ctx.internal_key)
            if sent is not None:
                out = SendEmailOutput(message_id=sent.provider_object_id or "", status="sent")
                return ProviderResult(output=out, provider_object_id=out.message_id)
            result = await mailer.send(
                Email(
                    kind=input.template,
                    to=[input.to],
                    data={"subject": input.subject, **input.variables},
                    reference=ctx.external_key,
                )
            )
            status = "sandboxed" if result.sandbox_mode else "accepted"
            out = SendEmailOutput(message_id=result.message_id or "", status=status)
            return ProviderResult(
                output=out, provider_object_id=result.message_id, status=status,
                details={"template": input.template, "category": input.category},
            )  # fmt: skip

        return await run_side_effect(self._runner, ctx, input, SendEmailOutput, execute)
