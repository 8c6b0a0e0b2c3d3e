"""Errors a user can see: a stable code, a plain message, and what to do about it.

The CLI prints these as ``error[CODE]: message`` with no traceback; anything else that
escapes is a bug and is reported as ``INTERNAL``.
"""

from __future__ import annotations


class AutobizError(Exception):
    """An expected failure with a stable, documented code."""

    code: str = "AUTOBIZ_ERROR"
    exit_code: int = 2

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ConfigError(AutobizError):
    code = "CONFIG_INVALID"


class PortInUseError(AutobizError):
    code = "PORT_IN_USE"


class ServiceStartError(AutobizError):
    code = "SERVICE_START_FAILED"


class DatabaseError(AutobizError):
    code = "DATABASE_ERROR"


class TenantContextError(AutobizError):
    code = "TENANT_CONTEXT_REQUIRED"


class MigrationError(AutobizError):
    code = "MIGRATION_FAILED"


class SecretAccessError(AutobizError):
    code = "SECRET_ACCESS_DENIED"


class SecretNotFoundError(AutobizError):
    code = "SECRET_NOT_FOUND"
