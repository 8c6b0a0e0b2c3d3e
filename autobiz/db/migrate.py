"""Versioned SQL migrations.

Files are ``NNNN_name.sql`` in one folder, applied in order, each in its own transaction
(PostgreSQL DDL is transactional, so a failing file leaves no trace), and recorded in
``schema_migrations`` with a checksum. A concurrent migrator waits on an advisory lock.
An applied file whose text changed is an error, never silently re-applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from autobiz.errors import MigrationError
from kernel.codes import ErrorCode

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x4155_544F_4249_5A00 & 0x7FFF_FFFF_FFFF_FFFF  # "AUTOBIZ\0"


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    applied: list[str]
    already_applied: list[str]


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(
                f"migration file name {path.name!r} is not NNNN_name.sql",
                code=ErrorCode.MIGRATION_NAME_INVALID,
            )
        migrations.append(Migration(match[1], match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(
            "two migration files share a version", code=ErrorCode.MIGRATION_DUPLICATE
        )
    return migrations


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def migrate(dsn: str, folder: Path = MIGRATIONS_DIR) -> MigrationReport:
    """Apply every pending migration; return what was applied and what already was."""
    migrations = load_migrations(folder)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise MigrationError(
            f"cannot connect to the database: {_first_line(exc)}",
            code=ErrorCode.DATABASE_UNREACHABLE,
        ) from None
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(_BOOKKEEPING)
            done = {
                row[0]: row[1]
                for row in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            applied, skipped = [], []
            for mig in migrations:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version}_{mig.name} changed after it was applied",
                            code=ErrorCode.MIGRATION_CHECKSUM_MISMATCH,
                            hint="add a new migration instead of editing an applied one",
                        )
                    skipped.append(f"{mig.version}_{mig.name}")
                    continue
                try:
                    with conn.transaction():
                        conn.execute(mig.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES (%s, %s, %s)",
                            (mig.version, mig.name, mig.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {mig.version}_{mig.name} failed and was rolled back: "
                        f"{_first_line(exc)}",
                    ) from None
                applied.append(f"{mig.version}_{mig.name}")
            return MigrationReport(applied=applied, already_applied=skipped)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
