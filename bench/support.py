"""What the benchmarks share: free ports, waiting for a process's HTTP probe, and a
scratch PostgreSQL database (migrated, with the bench tenant, dropped afterwards)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def scratch_database(tenant: str) -> Iterator[tuple[str, str]]:
    """``AUTOBIZ_BENCH_DATABASE_URL``, or the server the tests would use (127.0.0.1:5432,
    Docker, embedded); yields (admin DSN, app DSN)."""
    from autobiz.db.migrate import migrate
    from tests.support.postgres import create_database, drop_database, provide_server

    def nothing() -> None:
        return None

    server, _, cleanup = (
        (os.environ["AUTOBIZ_BENCH_DATABASE_URL"], "env", nothing)
        if "AUTOBIZ_BENCH_DATABASE_URL" in os.environ
        else provide_server()
    )
    db = create_database(server)
    try:
        migrate(db.admin_dsn)
        with psycopg.connect(db.admin_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'bench')", (tenant,))
        yield db.admin_dsn, db.app_dsn
    finally:
        drop_database(db)
        cleanup()
