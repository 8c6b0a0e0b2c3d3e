"""Find a PostgreSQL server for the test session and make a fresh database on it.

Order: ``AUTOBIZ_TEST_DATABASE_URL``; the local server on 127.0.0.1:5432; testcontainers'
PostgreSQL when a Docker engine answers; an embedded server (pgserver's binaries) in a
temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@dataclass
class ProvisionedDatabase:
    admin_dsn: str
    app_dsn: str
    name: str
    server_dsn: str
    origin: str


def _local_server() -> str | None:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", 5432)) != 0:
            return None
    dsn = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return dsn
    except psycopg.OperationalError:
        return None


def _docker_server() -> tuple[str, Callable[[], None]] | None:
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.postgres import PostgresContainer

        docker.from_env().ping()
    except Exception:
        return None
    container = PostgresContainer("postgres:15", driver=None)
    container.start()
    return container.get_connection_url(), container.stop


def _embedded_server() -> tuple[str, Callable[[], None]]:
    from autobiz.devstack.process import PidFiles
    from autobiz.devstack.services import EmbeddedPostgres
    from autobiz.settings import PostgresSettings, Settings

    home = Path(tempfile.mkdtemp(prefix="autobiz-test-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(home=home, postgres=PostgresSettings(port=port))
    service = EmbeddedPostgres(settings, PidFiles(home / "run"))
    service.start()

    def cleanup() -> None:
        service.stop()
        shutil.rmtree(home, ignore_errors=True)

    return make_conninfo(host="127.0.0.1", port=port, user="postgres", dbname="postgres"), cleanup


def provide_server() -> tuple[str, str, Callable[[], None]]:
    """(server dsn, origin, cleanup)"""
    if url := os.environ.get("AUTOBIZ_TEST_DATABASE_URL"):
        return url, "AUTOBIZ_TEST_DATABASE_URL", lambda: None
    if dsn := _local_server():
        return dsn, "local 127.0.0.1:5432", lambda: None
    if found := _docker_server():
        return found[0], "testcontainers", found[1]
    dsn, cleanup = _embedded_server()
    return dsn, "embedded", cleanup


def create_database(server_dsn: str, app_role: str = "autobiz_app") -> ProvisionedDatabase:
    name = f"autobiz_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = name
    admin = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    params["user"] = app_role
    params.pop("password", None)
    app = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    return ProvisionedDatabase(
        admin_dsn=admin, app_dsn=app, name=name, server_dsn=server_dsn, origin=""
    )


def drop_database(db: ProvisionedDatabase) -> None:
    with psycopg.connect(db.server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name))
        )
