"""The local stack as a whole: start in order, report, stop what we started."""

from __future__ import annotations

from collections.abc import Callable

from autobiz.business_config import load_configs
from autobiz.db.dsn import admin_dsn
from autobiz.db.migrate import MigrationReport, migrate
from autobiz.db.tenants import sync_tenants
from autobiz.devstack.app_service import HttpAppService
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
    TemporalDevServer,
)
from autobiz.devstack.worker_service import WorkerService
from autobiz.settings import Settings

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home_dir
        self.pidfiles = PidFiles(self.home / "run")
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
        self.infrastructure: list[Service] = [postgres, TemporalDevServer(settings, self.pidfiles)]
        self.worker = WorkerService(settings, self.pidfiles)
        self.worker.env = {
            **(self.worker.env or {}),
            "AUTOBIZ_SECRETS_FILE": str(self.secrets_file),
        }
        for app in (sandbox, ingress, self.worker):
            app.tenants_file = self.secrets_file
        self.applications: list[Service] = [sandbox, ingress, self.worker]

    @property
    def services(self) -> list[Service]:
        return [*self.infrastructure, *self.applications]

    def up(self, progress: Progress = _quiet) -> tuple[list[ServiceStatus], MigrationReport]:
        require_sandbox("the local stack")  # before anything starts
        self.home.mkdir(parents=True, exist_ok=True)
        configs = load_configs(self.settings.config_dir)
        ensure_dev_secrets(self.settings, configs)
        for service in self.applications:
            if isinstance(service, HttpAppService) and service.outdated():
                progress(f"restarting {service.name} (its settings changed)")
                service.stop()
        to_start = [s for s in self.services if s.status().state in ("stopped", "unreachable")]
        # Check every port before starting anything, so a conflict starts nothing.
        for service in to_start:
            service.check_ports()
        started: list[Service] = []
        try:
            self._start(self.infrastructure, to_start, started, progress)
            progress("applying database migrations")
            report = migrate(admin_dsn(self.settings))
            created = sync_tenants(admin_dsn(self.settings), configs.values())
            progress(
                f"tenants from {self.settings.config_dir}: {', '.join(sorted(configs))}"
                + (f" ({', '.join(created)} new)" if created else "")
            )
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
