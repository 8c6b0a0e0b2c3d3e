"""The fast layer: the real workflows on the session's Temporal dev server, with
in-memory stand-ins for every activity (``fakes.Fakes``) on one uuid task queue per
test. No PostgreSQL, no provider sandbox: a branch test runs in a fraction of a second.
The full-stack tests (``tests/workflows/<context>/test_*.py``) keep proving the parts together."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from autobiz.approver_keys import LocalKey, generate_key
from autobiz.business_config import load_business_config
from autobiz.settings import Settings
from autobiz.temporal_client import connect
from kernel.config import BusinessConfig
from kernel.policy import RetryTiming
from starters.decisions import sign_decision
from starters.flows import decide
from tests.workflows.fast.fakes import Fakes
from tests.workflows.support import DEMO_CONFIG
from workers.worker import WORKFLOWS
from workflows.common.models import ApprovalTiming, DecisionResult

# Approvals wait at most a minute, no reminders or escalations fire in a test.
TIMING = ApprovalTiming(
    timeout=timedelta(seconds=60), remind_before=timedelta(0), escalate_after=timedelta(0)
)
# Retry waits a thousandth of production's (same attempts).
RETRIES = RetryTiming(interval_scale=0.001)
ROSTER = ("ana", "omar")  # the approvers of config/demo-shop.yaml


@dataclass
class Fast:
    client: Client
    task_queue: str
    config: BusinessConfig
    fakes: Fakes
    keys: dict[str, LocalKey]

    @property
    def tenant(self) -> str:
        return self.config.tenant

    async def decide(
        self, workflow_id: str, approver: str, approve: bool, *, index: int = 0
    ) -> DecisionResult:
        """Sign and send a decision on the ``index``-th request the flows opened."""
        request = await self.fakes.opened_request(index)
        assert request.workflow_id == workflow_id
        decision = sign_decision(
            self.keys[approver],
            tenant_id=self.tenant,
            workflow_id=workflow_id,
            request_id=request.request_id,
            approver=approver,
            approve=approve,
            reason=None if approve else "not this one",
        )
        return await decide(self.client, workflow_id, decision)


_BASE_CONFIG = load_business_config(DEMO_CONFIG)


@pytest.fixture
async def fast(temporal_env: WorkflowEnvironment) -> AsyncIterator[Fast]:
    tenant = f"fast-{uuid.uuid4().hex[:10]}"
    config = _BASE_CONFIG.model_copy(update={"tenant": tenant, "retries": RETRIES})
    keys = {approver: generate_key() for approver in ROSTER}
    fakes = Fakes(config, public_keys={a: (k.key_id, k.public_key) for a, k in keys.items()})
    client = await connect(
        Settings(), target_host=temporal_env.client.service_client.config.target_host
    )
    task_queue = f"fast-{uuid.uuid4()}"
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=fakes.activities(),
        interceptors=fakes.interceptors(),
    )
    async with worker:
        yield Fast(client, task_queue, config, fakes, keys)
