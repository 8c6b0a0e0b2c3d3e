"""Database down → 5xx, never 2xx; back up → the provider's redelivery is stored once.

The outage is real from the app's side: a dedicated database stops accepting
connections and its existing ones are terminated (the shared test server stays up).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from autobiz.db.database import Database
from autobiz.db.migrate import migrate
from autobiz.settings import IngressSettings
from tests.ingress.conftest import HarnessFactory
from tests.ingress.support import dumps, shopify_order
from tests.support.postgres import ProvisionedDatabase, create_database, drop_database

pytestmark = pytest.mark.integration


def set_available(db: ProvisionedDatabase, available: bool) -> None:
    with psycopg.connect(db.server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(db.name), sql.SQL("true" if available else "false")
            )
        )
        if not available:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (db.name,),
            )


@pytest.fixture
def outage_db(pg_database: ProvisionedDatabase) -> Iterator[ProvisionedDatabase]:
    db = create_database(pg_database.server_dsn)
    migrate(db.admin_dsn)
    yield db
    set_available(db, True)
    drop_database(db)


async def test_database_down_answers_503_then_stores_redelivery_once(
    make_ingress: HarnessFactory, outage_db: ProvisionedDatabase, tenant: str
) -> None:
    async with Database(outage_db.app_dsn, outage_db.admin_dsn, timeout=1.0, max_size=2) as db:
        async with db.admin("test setup: tenant in the outage database") as s:
            await s.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 't')", (tenant,))
        h = await make_ingress(db=db, settings=IngressSettings(db_timeout_seconds=1.0))
        body = dumps(shopify_order(9001))
        assert (await h.http.get("/readyz")).status_code == 200

        set_available(outage_db, False)
        down = await h.shopify(body, "orders/paid")
        assert down.status_code == 503 and down.headers["retry-after"] == "5"
        assert (await h.http.get("/readyz")).status_code == 503
        assert (
            h.metric("autobiz_ingress_events_total", source="shopify", outcome="unavailable") == 1
        )

        set_available(outage_db, True)
        statuses = []
        for _ in range(30):  # the provider keeps redelivering until it gets a 2xx
            resp = await h.shopify(body, "orders/paid")
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                break
        assert statuses[-1] == 200 and set(statuses) <= {200, 503}
        assert (await h.shopify(body, "orders/paid")).json()["status"] == "duplicate"
        rows = await h.rows()
        assert len(rows) == 1 and rows[0]["status"] == "pending"
