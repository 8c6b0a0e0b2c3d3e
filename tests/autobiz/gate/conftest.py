from tests.support.stack import stack_env  # noqa: F401
