"""Migrations: idempotent, recorded, and all-or-nothing per file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from autobiz.db.migrate import MIGRATIONS_DIR, migrate
from autobiz.errors import MigrationError
from tests.support.postgres import ProvisionedDatabase, create_database, drop_database

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_db(pg_database: ProvisionedDatabase) -> Iterator[ProvisionedDatabase]:
    db = create_database(pg_database.server_dsn)
    try:
        yield db
    finally:
        drop_database(db)


def _schema(dsn: str) -> list[tuple[str, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT c.relname, c.relkind::text, coalesce(string_agg(a.attname || ':' || "
            "format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum), '') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE n.nspname = 'public' GROUP BY c.relname, c.relkind ORDER BY 1"
        ).fetchall()


def _applied(dsn: str) -> list[tuple[str, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()


def test_applying_twice_changes_nothing(scratch_db: ProvisionedDatabase) -> None:
    first = migrate(scratch_db.admin_dsn)
    assert first.applied and not first.already_applied
    schema, applied = _schema(scratch_db.admin_dsn), _applied(scratch_db.admin_dsn)
    second = migrate(scratch_db.admin_dsn)
    assert second.applied == []
    assert second.already_applied == first.applied
    assert _schema(scratch_db.admin_dsn) == schema
    assert _applied(scratch_db.admin_dsn) == applied


def test_broken_migration_leaves_schema_as_it_was(
    scratch_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    for f in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(f, tmp_path / f.name)
    migrate(scratch_db.admin_dsn, tmp_path)
    before_schema, before_applied = _schema(scratch_db.admin_dsn), _applied(scratch_db.admin_dsn)
    (tmp_path / "9000_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\n"
        "ALTER TABLE receipts ADD COLUMN oops text;\n"
        "SELEC broken syntax;\n"
    )
    with pytest.raises(MigrationError) as info:
        migrate(scratch_db.admin_dsn, tmp_path)
    assert "9000_broken" in info.value.message
    assert info.value.code == "MIGRATION_FAILED"
    assert _schema(scratch_db.admin_dsn) == before_schema
    assert _applied(scratch_db.admin_dsn) == before_applied


def test_edited_applied_migration_is_refused(
    scratch_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_t (id int);")
    migrate(scratch_db.admin_dsn, tmp_path)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_t (id bigint);")
    with pytest.raises(MigrationError) as info:
        migrate(scratch_db.admin_dsn, tmp_path)
    assert info.value.code == "MIGRATION_CHECKSUM_MISMATCH"


def test_badly_named_file_is_refused(tmp_path: Path, scratch_db: ProvisionedDatabase) -> None:
    (tmp_path / "first.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError) as info:
        migrate(scratch_db.admin_dsn, tmp_path)
    assert info.value.code == "MIGRATION_NAME_INVALID"


def test_unreachable_database_gives_a_clear_error() -> None:
    with pytest.raises(MigrationError) as info:
        migrate("host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=2")
    assert info.value.code == "DATABASE_UNREACHABLE"
