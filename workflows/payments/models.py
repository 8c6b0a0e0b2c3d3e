"""The payments context's models: Refund (WF03) and PaymentFailure (WF02)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.config import DunningConfig
from kernel.frozen import Frozen
from workflows.common.models import ApprovalView, FlowContext

# --- Refund ---------------------------------------------------------------------------


class RefundInput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    refund_request_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    order_id: str
    payment_intent_id: str
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] = "requested_by_customer"
    note: str | None = Field(default=None, max_length=500)
    context: FlowContext | None = None
    principal: str = "system:refund"


class RefundResult(Frozen):
    workflow_id: str
    state: Literal["refunded", "denied", "expired", "rejected", "failed"]
    stripe_refund_id: str | None = None
    shopify_refund_id: str | None = None
    amount_minor: int = 0
    currency: str | None = None
    approval: ApprovalView | None = None
    cost_micros: int = 0
    reason: str | None = None


# --- PaymentFailure -------------------------------------------------------------------

DeclineClass = Literal["hard", "soft"]


class PaymentFailureInput(BaseModel):
    """Started by the starters (with ``context``) or by the ingress (a ``WorkflowTrigger``:
    ``payment_intent`` and maybe ``order_id``; its other fields are ignored, ``context``
    is loaded by the worker). ``dunning`` overrides the tenant's schedule."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    payment_intent: str | None = None
    order_id: str | None = None
    context: FlowContext | None = None
    dunning: DunningConfig | None = None
    principal: str = "system:payment_failure"


class PaymentFailureResult(Frozen):
    workflow_id: str
    state: str
    payment_intent_id: str
    order_id: str | None = None
    decline_class: DeclineClass | None = None
    decline_code: str | None = None
    reminders_sent: int = 0
    payment_status: str | None = None
    cost_micros: int = 0
    reason: str | None = None
