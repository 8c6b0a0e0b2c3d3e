"""The AutoBiz worker as a service of the local stack.

Healthy when its Prometheus endpoint answers (the SDK runtime serves it once the worker
has loaded and compiled every tenant config and connected). It is started with the
stack's config directory (``Stack`` decides which: asked for, else the running worker's,
else ``settings.config_dir``); ``autobiz demo`` asks for the demo's config (short
durations), so a worker running on another directory is restarted, and says so.
"""

from __future__ import annotations

from autobiz.devstack.app_service import HttpAppService
from autobiz.devstack.process import PidFiles, ProcessRecord
from autobiz.devstack.services import PortSpec
from autobiz.settings import Settings

DEFAULT_METRICS_BIND = "127.0.0.1:9464"


class WorkerService(HttpAppService):
    name = "worker"
    subcommand = "worker"
    health_path = "/metrics"
    startup_timeout = 60.0

    def __init__(self, settings: Settings, pidfiles: PidFiles) -> None:
        super().__init__(settings, pidfiles)
        bind = settings.worker.metrics_bind or DEFAULT_METRICS_BIND
        host, _, port = bind.rpartition(":")
        self._host, self._port = host or "127.0.0.1", int(port)
        self.env = {
            "AUTOBIZ_WORKER__METRICS_BIND": f"{self._host}:{self._port}",
            "AUTOBIZ_CONFIG_DIR": str(self.config_dir),
        }

    @property
    def config_dir(self) -> str:
        return str(self.settings.config_dir.expanduser().resolve())

    def record(self) -> ProcessRecord | None:
        """The live worker's record. A dead worker's pid file is kept (until ``dev down``):
        the config directory in it is the one ``dev up`` starts the worker on again."""
        rec = self.pidfiles.read(self.name)
        return rec if rec is not None and rec.alive() else None

    def listens_on(self) -> tuple[str, int]:
        return self._host, self._port

    def ports(self) -> list[PortSpec]:
        return [PortSpec(self.host, self.port, "worker metrics", "AUTOBIZ_WORKER__METRICS_BIND")]

    def fingerprint(self) -> dict[str, str]:
        return {
            **super().fingerprint(),
            "config_dir": self.config_dir,
            "task_queue": self.settings.temporal.task_queue,
        }

    def details(self) -> dict[str, str]:
        return {"config_dir": self.config_dir, "task_queue": self.settings.temporal.task_queue}
