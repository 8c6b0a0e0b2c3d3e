from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
