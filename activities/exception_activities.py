"""WF06 FulfillmentException's plumbing: the tenant's ``fulfillment_exception`` settings
from the worker's compiled configs (never from the workflow's input, so whoever starts
one cannot pick who approves or how often it re-submits)."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kernel.codes import ErrorCode
from kernel.config import BusinessConfig
from workflows.orders.models import EXCEPTION_SETTINGS, ExceptionSettings, ExceptionSettingsRequest


class ExceptionActivities:
    def __init__(self, configs: Mapping[str, BusinessConfig]) -> None:
        self._configs = dict(configs)

    @activity.defn(name=EXCEPTION_SETTINGS)
    async def exception_settings(self, req: ExceptionSettingsRequest) -> ExceptionSettings:
        config = self._configs.get(req.tenant_id)
        if config is None:
            raise ApplicationError(
                f"no BusinessConfig for tenant {req.tenant_id}",
                type=ErrorCode.TENANT_UNKNOWN,
                non_retryable=True,
            )
        fe = config.fulfillment_exception
        return ExceptionSettings(
            escalation_roles=fe.escalation_roles,
            escalation_timeout=fe.escalation_timeout,
            max_retries=fe.max_retries,
            release_wait=fe.release_wait,
        )
