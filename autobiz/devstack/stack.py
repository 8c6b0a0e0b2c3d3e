"""The local stack as a whole: start in order, report, stop what we started.

Which config directory the worker runs on: the one asked for (``dev up --config DIR``,
``autobiz demo``), else the one the stack's worker runs on (or last ran on, until
``dev down``: a plain ``dev up`` after ``autobiz demo`` keeps the demo's worker), else
``settings.config_dir``. Everything that can fail without a process starting (the
configs compile, the ports are free) is checked before a running service is touched: a
failed ``up`` stops no healthy service.

The codec server runs beside the dev server, whose Web UI is started with it as codec
endpoint (autobiz.devstack.codec_service); a dev server running with another endpoint
(or none: one started before the stack had a codec server) is restarted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autobiz.business_config import load_configs
from autobiz.db.dsn import admin_dsn
from autobiz.db.migrate import MigrationReport, migrate
from autobiz.db.tenants import sync_tenants
from autobiz.devstack.app_service import HttpAppService
from autobiz.devstack.codec_service import decoding_ui
from autobiz.devstack.dev_secrets import dev_secrets_path, ensure_dev_secrets
from autobiz.devstack.ingress_service import IngressService
from autobiz.devstack.process import PidFiles
from autobiz.devstack.sandbox_package import require_sandbox
from autobiz.devstack.sandbox_service import SandboxService
from autobiz.devstack.services import (
    EmbeddedPostgres,
    ExternalPostgres,
    Service,
    ServiceStatus,
)
from autobiz.devstack.worker_service import WorkerService
from autobiz.errors import ConfigError
from autobiz.settings import Settings
from kernel.codes import ErrorCode
from kernel.config import BusinessConfig

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class Stack:
    def __init__(self, settings: Settings, config_dir: Path | None = None) -> None:
        self.home = settings.home_dir
        self.pidfiles = PidFiles(self.home / "run")
        # Where the configs come from, and why (shown by ``up``).
        self.config_source = "settings"
        if config_dir is not None:
            settings = settings.model_copy(
                update={"config_dir": config_dir.expanduser().absolute()}
            )
            self.config_source = "asked"
        elif (running := self._worker_config()) is not None:
            settings = settings.model_copy(update={"config_dir": running})
            self.config_source = "worker"
        self.settings = settings
        postgres: Service = (
            ExternalPostgres(settings, self.pidfiles)
            if settings.database_url is not None
            else EmbeddedPostgres(settings, self.pidfiles)
        )
        ingress = IngressService(settings, self.pidfiles)
        sandbox = SandboxService(settings, self.pidfiles)
        # Each tenant has its own provider accounts: one credentials file is the sandbox's
        # account list and the worker's and ingress's secrets (autobiz.devstack.dev_secrets).
        self.secrets_file = dev_secrets_path(settings)
        # The sandbox delivers its signed webhooks to our ingress, as the providers would.
        sandbox.env = {
            "AUTOBIZ_SANDBOX__WEBHOOK_TARGET": ingress.webhook_target,
            "AUTOBIZ_SANDBOX__ACCOUNTS_FILE": str(self.secrets_file),
        }
        ingress.env = {**(ingress.env or {}), "AUTOBIZ_SECRETS_FILE": str(self.secrets_file)}
        # Infrastructure first, then migrations, then the application processes (which
        # need the schema). Stop runs in reverse.
        self.codec, self.temporal = decoding_ui(settings, self.pidfiles)
        self.infrastructure: list[Service] = [postgres, self.temporal]
        self.worker = WorkerService(settings, self.pidfiles)
        self.worker.env = {
            **(self.worker.env or {}),
            "AUTOBIZ_SECRETS_FILE": str(self.secrets_file),
        }
        for app in (sandbox, ingress, self.worker):
            app.tenants_file = self.secrets_file
        self.applications: list[Service] = [self.codec, sandbox, ingress, self.worker]

    def _worker_config(self) -> Path | None:
        """The config directory the stack's worker runs on, or last ran on if it died
        (its pid file stays until ``dev down``)."""
        rec = self.pidfiles.read(WorkerService.name)
        if rec is None or not rec.info.get("config_dir"):
            return None
        return Path(rec.info["config_dir"])

    @property
    def services(self) -> list[Service]:
        return [*self.infrastructure, *self.applications]

    def load_configs(self) -> dict[str, BusinessConfig]:
        """The worker's tenant configs, compiled: the same check the worker makes at
        start, made before any running service is touched."""
        config_dir = self.settings.config_dir
        if not config_dir.is_dir():
            raise ConfigError(
                f"the config directory {config_dir} does not exist",
                code=ErrorCode.CONFIG_MISSING,
                hint="set AUTOBIZ_CONFIG_DIR or pass --config DIR (a relative path is "
                "resolved against the current directory)",
            )
        return load_configs(config_dir)

    def up(self, progress: Progress = _quiet) -> tuple[list[ServiceStatus], MigrationReport]:
        require_sandbox("the local stack")  # before anything starts
        configs = self.load_configs()
        if self.config_source == "worker":
            progress(
                f"worker keeps its config {self.settings.config_dir} "
                "(`dev up --config DIR` switches it)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.codec.check()
        ensure_dev_secrets(self.settings, configs)
        to_start = [s for s in self.services if s.status().state in ("stopped", "unreachable")]
        restart_temporal = self.temporal not in to_start and self.temporal.ui_codec_outdated()
        restart = [
            s
            for s in self.applications
            if s not in to_start and isinstance(s, HttpAppService) and s.outdated()
        ]
        # Check every port before starting (or stopping) anything, so a conflict starts
        # nothing and leaves every running service running.
        for service in to_start:
            service.check_ports()
        started: list[Service] = []
        try:
            if restart_temporal:
                progress(f"restarting temporal (its Web UI decodes through {self.codec.endpoint})")
                self.temporal.stop()
                to_start.append(self.temporal)
            self._start(self.infrastructure, to_start, started, progress)
            progress("applying database migrations")
            report = migrate(admin_dsn(self.settings))
            created = sync_tenants(admin_dsn(self.settings), configs.values())
            progress(
                f"tenants from {self.settings.config_dir}: {', '.join(sorted(configs))}"
                + (f" ({', '.join(created)} new)" if created else "")
            )
            for service in restart:
                assert isinstance(service, HttpAppService)
                progress(f"restarting {service.name} ({'; '.join(service.changes())})")
                service.stop()
                to_start.append(service)
            self._start(self.applications, to_start, started, progress)
        except BaseException:
            for service in reversed(started):
                service.stop()
            raise
        return self.status(), report

    @staticmethod
    def _start(
        services: list[Service], to_start: list[Service], started: list[Service], progress: Progress
    ) -> None:
        for service in services:
            if service in to_start:
                progress(f"starting {service.name}")
                service.start()
                started.append(service)
            else:
                progress(f"{service.name} already running")

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]

    def down(self, progress: Progress = _quiet) -> list[str]:
        stopped = []
        for service in reversed(self.services):
            progress(f"stopping {service.name}")
            if service.stop():
                stopped.append(service.name)
        return stopped
