"""The codec server as a service of the local stack, so the dev server's Web UI shows
decoded payloads.

``autobiz dev up`` starts ``autobiz codec-server`` on ``codec_server_host:port`` and the
Temporal dev server with ``--ui-codec-endpoint`` pointing at it. The dev server's UI has
no login, so it has no token to send: the stack's codec server runs with auth ``none``
unless ``AUTOBIZ_KERNEL__CODEC_SERVER_AUTH`` says otherwise, which the codec server
allows on a loopback address only (checked by :meth:`CodecService.check` before anything
starts).
"""

from __future__ import annotations

from autobiz.codec_server import cors_origins
from autobiz.codec_server_auth import build_authoriser
from autobiz.devstack.app_service import HttpAppService
from autobiz.devstack.process import PidFiles
from autobiz.devstack.services import PortSpec, TemporalDevServer
from autobiz.settings import CodecServerAuth, Settings


class CodecService(HttpAppService):
    name = "codec"
    subcommand = "codec-server"
    health_path = "/healthz"

    def __init__(self, settings: Settings, pidfiles: PidFiles) -> None:
        kernel = settings.kernel
        auth = kernel.codec_server_auth or CodecServerAuth.NONE
        # What the process will run with: the settings, with the stack's auth default.
        settings = settings.model_copy(
            update={"kernel": kernel.model_copy(update={"codec_server_auth": auth})}
        )
        super().__init__(settings, pidfiles)
        self.auth = auth
        t = settings.temporal
        # The process serves where this service checks its health, for the UI it derives
        # its CORS origins from, whatever the environment it inherits says.
        self.env = {
            "AUTOBIZ_KERNEL__CODEC_SERVER_AUTH": auth.value,
            "AUTOBIZ_KERNEL__CODEC_SERVER_HOST": kernel.codec_server_host,
            "AUTOBIZ_KERNEL__CODEC_SERVER_PORT": str(kernel.codec_server_port),
            "AUTOBIZ_TEMPORAL__HOST": t.host,
            "AUTOBIZ_TEMPORAL__UI_PORT": str(t.ui_port),
        }

    def listens_on(self) -> tuple[str, int]:
        kernel = self.settings.kernel
        return kernel.codec_server_host, kernel.codec_server_port

    @property
    def endpoint(self) -> str:
        """What the Web UI (in the user's browser) posts ``/decode`` to."""
        return self.base_url

    def check(self) -> None:
        """Refuse settings the codec server would refuse (a ConfigError), before ``up``
        starts or stops anything."""
        build_authoriser(self.settings)
        cors_origins(self.settings)

    def ports(self) -> list[PortSpec]:
        return [PortSpec(self.host, self.port, "codec server", "AUTOBIZ_KERNEL__CODEC_SERVER_PORT")]

    def fingerprint(self) -> dict[str, str]:
        return {"auth": self.auth.value, "cors_origins": ",".join(cors_origins(self.settings))}

    def details(self) -> dict[str, str]:
        return {"auth": self.auth.value, "endpoint": self.endpoint}


def decoding_ui(settings: Settings, pidfiles: PidFiles) -> tuple[CodecService, TemporalDevServer]:
    """The codec server, and the dev server whose Web UI decodes through it."""
    codec = CodecService(settings, pidfiles)
    temporal = TemporalDevServer(settings, pidfiles)
    temporal.codec_endpoint = codec.endpoint
    return codec, temporal
