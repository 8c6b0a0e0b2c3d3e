"""The local stack as a whole: start in order, report, stop what we started."""

from __future__ import annotations

from collections.abc import Callable

from autobiz.db.dsn import admin_dsn
from autobiz.db.migrate import MigrationReport, migrate
from autobiz.devstack.process import PidFiles
from autobiz.devstack.services import (
    EmbeddedPostgres,
    ExternalPostgres,
    Service,
    ServiceStatus,
    TemporalDevServer,
)
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
        # Start order; stop runs in reverse. Later services (sandbox, worker, ingress)
        # append here.
        self.services: list[Service] = [postgres, TemporalDevServer(settings, self.pidfiles)]

    def up(self, progress: Progress = _quiet) -> tuple[list[ServiceStatus], MigrationReport]:
        self.home.mkdir(parents=True, exist_ok=True)
        to_start = [s for s in self.services if s.status().state in ("stopped", "unreachable")]
        # Check every port before starting anything, so a conflict starts nothing.
        for service in to_start:
            service.check_ports()
        started: list[Service] = []
        try:
            for service in self.services:
                if service in to_start:
                    progress(f"starting {service.name}")
                    service.start()
                    started.append(service)
                else:
                    progress(f"{service.name} already running")
            progress("applying database migrations")
            report = migrate(admin_dsn(self.settings))
        except BaseException:
            for service in reversed(started):
                service.stop()
            raise
        return self.status(), report

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]

    def down(self, progress: Progress = _quiet) -> list[str]:
        stopped = []
        for service in reversed(self.services):
            progress(f"stopping {service.name}")
            if service.stop():
                stopped.append(service.name)
        return stopped
