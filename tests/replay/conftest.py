from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workflows.support import harness  # noqa: F401
