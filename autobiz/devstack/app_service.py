"""Base for our own HTTP processes in the stack (sandbox, ingress, worker)."""

from __future__ import annotations

import sys
import time
from abc import abstractmethod
from pathlib import Path

import httpx

from autobiz.devstack.dev_secrets import dev_secrets_tenants
from autobiz.devstack.process import spawn
from autobiz.devstack.services import Service, ServiceStatus
from autobiz.errors import ServiceStartError


class HttpAppService(Service):
    """An ``autobiz <subcommand>`` process that is up when ``health_path`` answers 200."""

    subcommand: str
    health_path: str
    startup_timeout = 30.0
    # Extra environment for the process (the stack points webhooks at the ingress).
    env: dict[str, str] | None = None
    # The tenants' credentials file the process reads (a new tenant there restarts it).
    tenants_file: Path | None = None

    @abstractmethod
    def listens_on(self) -> tuple[str, int]:
        """The host and port the process serves on (its settings say)."""

    @property
    def host(self) -> str:
        return self.listens_on()[0]

    @property
    def port(self) -> int:
        return self.listens_on()[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "autobiz.cli.main", self.subcommand]

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.base_url}{self.health_path}", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def details(self) -> dict[str, str]:
        return {}

    def fingerprint(self) -> dict[str, str]:
        """What the running process was started with that matters (kept in its pid file);
        a running process whose fingerprint differs is restarted by ``Stack.up``."""
        if self.tenants_file is None:
            return {}
        return {"tenants": ",".join(dev_secrets_tenants(self.tenants_file))}

    def outdated(self) -> bool:
        rec = self.record()
        return rec is not None and rec.info != self.fingerprint()

    def changes(self) -> list[str]:
        """What differs between the running process and the one ``start`` would start
        (``name: old → new``), so a restart can say why."""
        rec = self.record()
        old = rec.info if rec is not None else {}
        new = self.fingerprint()
        return [
            f"{key}: {old.get(key, '-')} → {new.get(key, '-')}"
            for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)
        ]

    def status(self) -> ServiceStatus:
        """Running only while our process is alive and answers ``health_path``; a live
        process that does not answer is ``unhealthy``."""
        status = self._status(
            f"{self.host}:{self.port}", f"{self.base_url}{self.health_path}", self.details()
        )
        if status.state == "running" and not self.healthy():
            status.state = "unhealthy"
        return status

    def start(self) -> ServiceStatus:
        rec = spawn(
            self.name,
            self.command(),
            log_file=self.log_file,
            env=self.env,
            info=self.fingerprint(),
        )
        self.pidfiles.write(rec)
        deadline = time.monotonic() + self.startup_timeout
        while not self.healthy():
            if not rec.alive():
                self.stop()
                raise ServiceStartError(
                    f"the {self.name} exited during start-up:\n" + self._tail_log()
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError(
                    f"the {self.name} did not become healthy in {self.startup_timeout:.0f}s"
                )
            time.sleep(0.2)
        return self.status()
