"""Hands a workflow started without its policy (by the ingress) the tenant's compiled
BusinessConfig slice. The configs are loaded and compiled once, when the worker starts."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kernel.codes import ErrorCode
from kernel.config import BusinessConfig
from workflows.common.models import (
    LOAD_FLOW_CONTEXT,
    ApprovalTiming,
    ApproverInfo,
    FlowContext,
    FlowContextRequest,
)


def flow_context(
    config: BusinessConfig, workflow_type: str, timing: ApprovalTiming | None = None
) -> FlowContext:
    """The flow's slice of the tenant's config; ``timing``: the approval waits a starter
    asks for instead of the config's (tests, the demo)."""
    return FlowContext(
        policy=config.policy_for(workflow_type),
        approvers=tuple(
            ApproverInfo(id=a.id, roles=tuple(a.roles), email=a.email) for a in config.approvers
        ),
        ops_email=config.notifications.ops_email,
        customer_emails=config.notifications.customer_emails,
        timing=timing
        or ApprovalTiming(
            remind_before=config.notifications.remind_before,
            escalate_after=config.notifications.escalate_after,
        ),
        dunning=config.dunning,
    )


class TenantConfigs:
    """What every activity that hands a flow its settings starts from: the worker's
    compiled configs, one per tenant, and the tenant's looked up (non-retryable
    ``TENANT_UNKNOWN`` for a tenant the worker has none for)."""

    def __init__(self, configs: Mapping[str, BusinessConfig]) -> None:
        self._configs = dict(configs)

    def _config(self, tenant_id: str) -> BusinessConfig:
        config = self._configs.get(tenant_id)
        if config is None:
            raise ApplicationError(
                f"no BusinessConfig for tenant {tenant_id}",
                type=ErrorCode.TENANT_UNKNOWN,
                non_retryable=True,
            )
        return config


class ConfigActivities(TenantConfigs):
    @activity.defn(name=LOAD_FLOW_CONTEXT)
    async def load_flow_context(self, req: FlowContextRequest) -> FlowContext:
        config = self._config(req.tenant_id)
        try:
            return flow_context(config, req.workflow_type)
        except (KeyError, ValueError) as exc:
            raise ApplicationError(
                str(exc), type=ErrorCode.WORKFLOW_DISABLED, non_retryable=True
            ) from exc
