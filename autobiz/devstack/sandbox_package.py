"""The ``sandbox`` package is dev tooling: a source checkout has it, the production image
does not (infra/Dockerfile). The roof imports it only inside what needs it, under
:func:`sandbox_required`, so every other command works without it and those that need it
fail with one stable code instead of a traceback."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from autobiz.errors import AutobizError, ExitCode
from kernel.codes import ErrorCode

HINT = "the sandbox is dev tooling: install from a source checkout (pip install -e .)"


class SandboxNotInstalled(AutobizError):
    """``autobiz sandbox``, ``autobiz dev up`` or ``autobiz demo`` without the package."""

    code = ErrorCode.SANDBOX_NOT_INSTALLED
    exit_code = ExitCode.USAGE

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs the provider sandbox, which is not installed", hint=HINT)


def sandbox_installed() -> bool:
    try:
        return importlib.util.find_spec("sandbox") is not None
    except (ImportError, ValueError):  # a broken or stubbed-out entry counts as absent
        return False


def require_sandbox(what: str) -> None:
    """Fail before anything starts when ``what`` (a command or service) cannot run."""
    if not sandbox_installed():
        raise SandboxNotInstalled(what)


def _is_sandbox(missing: str | None) -> bool:
    return missing is not None and (missing == "sandbox" or missing.startswith("sandbox."))


@contextmanager
def sandbox_required(what: str) -> Iterator[None]:
    """Wrap the lazy ``from sandbox… import …``: a missing sandbox package becomes
    :class:`SandboxNotInstalled`; any other missing module stays the bug it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if not _is_sandbox(exc.name):
            raise
        raise SandboxNotInstalled(what) from None
