"""WF06 FulfillmentException's plumbing: the tenant's ``fulfillment_exception`` settings
from the worker's compiled configs (never from the workflow's input, so whoever starts
one cannot pick who approves or how often it re-submits)."""

from __future__ import annotations

from temporalio import activity

from activities.config_activities import TenantConfigs
from workflows.orders.models import EXCEPTION_SETTINGS, ExceptionSettings, ExceptionSettingsRequest


class ExceptionActivities(TenantConfigs):
    @activity.defn(name=EXCEPTION_SETTINGS)
    async def exception_settings(self, req: ExceptionSettingsRequest) -> ExceptionSettings:
        config = self._config(req.tenant_id)
        fe = config.fulfillment_exception
        return ExceptionSettings(
            escalation_roles=fe.escalation_roles,
            escalation_timeout=fe.escalation_timeout,
            max_retries=fe.max_retries,
            release_wait=fe.release_wait,
        )
