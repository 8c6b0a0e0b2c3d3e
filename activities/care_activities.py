"""WF05 WISMO's plumbing: the tenant's ``wismo`` settings from the worker's compiled
configs (never from the workflow's input, so whoever starts a run cannot pick the model,
the confidence threshold or who reviews)."""

from __future__ import annotations

from temporalio import activity

from activities.config_activities import TenantConfigs
from workflows.care.models import WISMO_SETTINGS, WismoSettings, WismoSettingsRequest


class CareActivities(TenantConfigs):
    @activity.defn(name=WISMO_SETTINGS)
    async def wismo_settings(self, req: WismoSettingsRequest) -> WismoSettings:
        config = self._config(req.tenant_id)
        w = config.wismo
        return WismoSettings(
            model=w.model,
            fallback_model=w.fallback_model,
            prompt_version=w.prompt_version,
            max_tokens=w.max_tokens,
            confidence_threshold=w.confidence_threshold,
            review_roles=w.review_roles,
            review_timeout=w.review_timeout,
        )
