from collections.abc import AsyncIterator

import pytest

from autobiz.providers.tenant_clients import TenantClients
from tests.support.sandbox import Sandbox, sandbox, sandbox_server  # noqa: F401


@pytest.fixture
async def clients(sandbox: Sandbox, tenant: str) -> AsyncIterator[TenantClients]:  # noqa: F811
    """The test tenant's provider clients, pointed at the sandbox."""
    built = await sandbox.tenant_clients(tenant)
    try:
        yield built
    finally:
        await built.aclose()
