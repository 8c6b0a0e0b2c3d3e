"""Session fixtures: a real Temporal dev server, a fresh PostgreSQL database, and the
network guard that fails any test reaching beyond loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from autobiz.db.database import Database
from autobiz.db.migrate import migrate
from autobiz.devstack.services import temporal_binary
from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, ORDER_ID, TENANT_ID
from tests.support.netguard import NetGuard, guarded
from tests.support.postgres import (
    ProvisionedDatabase,
    create_database,
    drop_database,
    provide_server,
)

# CI stages (`--stage`) and the flake quarantine (tests/quarantine.yaml).
pytest_plugins = ["tests.support.pipeline"]


@pytest.fixture(autouse=True)
def network_guard(request: pytest.FixtureRequest) -> Iterator[NetGuard]:
    with guarded() as guard:
        yield guard
    if guard.violations and not request.node.get_closest_marker("allow_network_violation"):
        pytest.fail(f"test opened non-loopback connections: {guard.violations}", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_network_violation: the test provokes the guard on purpose"
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[ProvisionedDatabase]:
    """A fresh, migrated database for this test session, dropped at the end."""
    server, origin, cleanup = provide_server()
    db = create_database(server)
    db.origin = origin
    try:
        migrate(db.admin_dsn)
        yield db
    finally:
        drop_database(db)
        cleanup()


@pytest.fixture(scope="session")
async def database(pg_database: ProvisionedDatabase) -> AsyncIterator[Database]:
    async with Database(pg_database.app_dsn, pg_database.admin_dsn, max_size=8) as db:
        yield db


@pytest.fixture
async def tenant(database: Database) -> AsyncIterator[str]:
    """A tenant of its own for each test: RLS keeps tests apart. The provider ids its test
    made up (``pi_r``, order ``41``) are released afterwards: real ones are unique across
    accounts, so the ingress would take the next test's reuse for another tenant's."""
    tenant_id = await new_tenant(database)
    yield tenant_id
    async with database.admin("test teardown: release made-up provider ids") as s:
        await s.execute("DELETE FROM provider_object_owners WHERE owner_tenant = %s", (tenant_id,))


async def new_tenant(database: Database, prefix: str = "t") -> str:
    tenant_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    async with database.admin("test setup: create tenant") as s:
        await s.execute(
            "INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)",
            (tenant_id, f"Tenant {tenant_id}"),
        )
    return tenant_id


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=[TENANT_ID, ORDER_ID, FLOW_STATE, APPROVAL_PENDING],
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
