from tests.autobiz.cli.support import cli, offline  # noqa: F401
from tests.support.plain_temporal import codec_server, temporal  # noqa: F401
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workflows.support import harness  # noqa: F401
