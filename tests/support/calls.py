"""The :class:`CallContext` a tool activity receives, built the way ``kernel_call`` builds
it in the workflow (keys and request hash from the tool's ref and the input), for tests
that run activities or the side-effect runner directly."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kernel.contracts import CallContext, ToolContract
from kernel.idempotency import keys_for, request_hash


def call_context(
    tenant: str,
    contract: ToolContract[Any, Any],
    input: BaseModel,
    *,
    workflow_id: str = "wf-1",
    step: str = "s",
    workflow_type: str = "order_fulfill",
    principal: str = "test",
    run_id: str = "run-1",
    not_found_grace: int = 0,
) -> CallContext:
    """``contract`` called with ``input`` at ``step`` of ``workflow_id``."""
    data = input.model_dump(mode="json")
    keys = keys_for(
        tenant=tenant, workflow_id=workflow_id, step=step, tool=contract.ref, input=data
    )
    return CallContext(
        tenant_id=tenant,
        workflow_id=workflow_id,
        run_id=run_id,
        workflow_type=workflow_type,
        principal=principal,
        step=step,
        tool=contract.name,
        version=contract.version,
        side_effect=contract.side_effect,
        provider=contract.provider,
        internal_key=keys.internal,
        external_key=keys.external,
        request_hash=request_hash(contract.ref, data),
        not_found_grace=not_found_grace,
    )
