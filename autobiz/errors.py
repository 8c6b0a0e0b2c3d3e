"""Errors a user can see: a stable code, a plain message, what to do about it, and the
process exit code that tells scripts which kind of failure it was.

The CLI prints these as ``error[CODE]: message`` and ``hint: …`` with no traceback;
anything else that escapes is a bug and is reported as ``INTERNAL``.

Exit codes (documented in docs/operations.md#exit-codes) are decided here and nowhere
else: an error's ``exit_code`` is the one :data:`EXIT_CODES` gives its code, else its
class's default. A test checks that every code the CLI can raise is in the table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a script can tell from ``$?``."""

    OK = 0
    # The command ran but its outcome is not the wanted one: a flow failed, the demo's
    # outcomes did not match, a replay diverged.
    FAILED = 1
    # The command line is wrong: usage, a malformed or unknown value, missing config.
    USAGE = 2
    # Refused by policy: an approval rejected, a permission denied, another tenant's
    # object, a payment that is not the order's, a closed request.
    REFUSED = 3
    # Something the command needs is unreachable or would not start: Temporal,
    # PostgreSQL, the sandbox, a worker, a provider.
    UNAVAILABLE = 4
    # A bug (``error[INTERNAL]``): please report it with ``AUTOBIZ_DEBUG=1`` output.
    INTERNAL = 5
    INTERRUPTED = 130


_U, _R, _N, _F = ExitCode.USAGE, ExitCode.REFUSED, ExitCode.UNAVAILABLE, ExitCode.FAILED

# Every code a command can end with → its exit code. Codes not listed fall back to their
# class's ``exit_code``.
EXIT_CODES: dict[str, ExitCode] = {
    # -- bad input / usage ------------------------------------------------------------
    "USAGE": _U,
    "SETTINGS_INVALID": _U,
    "INPUT_INVALID": _U,
    "AMOUNT_INVALID": _U,
    "CURRENCY_INVALID": _U,
    "CURRENCY_UNKNOWN": _U,
    "ORDER_ID_INVALID": _U,
    "PAYMENT_INTENT_INVALID": _U,
    "REQUEST_ID_INVALID": _U,
    "TENANT_INVALID": _U,
    "TENANT_UNKNOWN": _U,
    "WINDOW_INVALID": _U,
    "REPLAY_INVALID_ARGUMENT": _U,
    "CONFIG_INVALID": _U,
    "CONFIG_MISSING": _U,
    "CONFIG_UNREADABLE": _U,
    "WORKFLOW_TYPE_UNKNOWN": _U,
    "WORKFLOW_NOT_FOUND": _U,
    "FLOW_NOT_FOUND": _U,
    "APPROVAL_NOT_FOUND": _U,
    "PAYMENT_INTENT_UNKNOWN": _U,
    "TOOL_UNKNOWN": _U,
    "NOT_FOUND": _U,
    "ADMIN_REASON_REQUIRED": _U,
    "TENANT_CONTEXT_REQUIRED": _U,
    "SECRET_NOT_FOUND": _U,
    "CODEC_SERVER_TOKEN_MISSING": _U,
    "CODEC_UNKNOWN_KEY": _U,
    "MIGRATION_NAME_INVALID": _U,
    "MIGRATION_DUPLICATE": _U,
    "MIGRATION_CHECKSUM_MISMATCH": _U,
    "KEY_FILE_EXISTS": _U,
    "APPROVER_KEY_MISSING": _U,
    "APPROVER_KEY_INVALID": _U,
    "APPROVER_KEY_NOT_FOUND": _U,
    "APPROVER_UNKNOWN": _U,
    "SANDBOX_TOKEN_MISSING": _U,
    "SANDBOX_NOT_INSTALLED": _U,  # dev tooling, absent from the production image
    "PORT_IN_USE": _U,  # the hint names the setting to change
    # -- refused by policy ------------------------------------------------------------
    "APPROVAL_REJECTED": _R,
    "APPROVAL_INVALID": _R,
    "APPROVAL_REQUIRED": _R,
    "PERMISSION_DENIED": _R,
    "CROSS_TENANT_REFUSED": _R,
    "PAYMENT_NOT_FOR_ORDER": _R,
    "REFUND_REFUSED": _R,
    "REFUND_EXCEEDS_REFUNDABLE": _R,
    "CURRENCY_MISMATCH": _R,
    "PAYMENT_UNKNOWN": _R,
    "REQUEST_CLOSED": _R,
    "ORDER_FLOW_CLOSED": _R,
    "NOT_FULFILLABLE": _R,
    "WORKFLOW_DISABLED": _R,
    "ADMIN_PATH_DISABLED": _R,
    "SECRET_ACCESS_DENIED": _R,
    "HYGIENE_VIOLATION": _R,
    "GATE_BYPASSED": _R,
    "CODEC_TAMPERED": _R,
    "SANDBOX_FORBIDDEN": _R,
    # -- unreachable / would not start ------------------------------------------------
    "TEMPORAL_UNREACHABLE": _N,
    "TEMPORAL_UNAVAILABLE": _N,
    "DATABASE_UNREACHABLE": _N,
    "DATABASE_UNAVAILABLE": _N,
    "DATABASE_ERROR": _N,
    "WORKER_UNAVAILABLE": _N,
    "FLOW_UNAVAILABLE": _N,
    "SANDBOX_UNREACHABLE": _N,
    "SEARCH_ATTRIBUTES_MISSING": _N,
    "SERVICE_START_FAILED": _N,
    "TEMPORAL_BINARY_MISSING": _N,
    "POSTGRES_BINARY_MISSING": _N,
    "POSTGRES_START_FAILED": _N,
    "PROVIDER_UNAVAILABLE": _N,
    "PROVIDER_RATE_LIMITED": _N,
    "PROVIDER_AUTH_FAILED": _N,
    # -- ran, but the outcome is not the wanted one ----------------------------------
    "FLOW_FAILED": _F,
    "DEMO_MISMATCH": _F,
    "REPLAY_FAILED": _F,
    "REPLAY_NONDETERMINISTIC": _F,
    "MIGRATION_FAILED": _F,
    "CARD_DECLINED": _F,
    "APPROVAL_EXPIRED": _F,
    "PROVIDER_ERROR": _F,
    "PROVIDER_NOT_FOUND": _F,
    "PROVIDER_INVALID_REQUEST": _F,
    "PROVIDER_STATE_CONFLICT": _F,
    "IDEMPOTENCY_CONFLICT": _F,
    "IDEMPOTENCY_IN_PROGRESS": _F,
    "RECEIPT_WRITE_FAILED": _F,
    "CODEC_ERROR": _F,
}


def exit_code_for(code: str, default: int = ExitCode.FAILED) -> int:
    """The exit code for an error ``code`` (the one table above)."""
    return int(EXIT_CODES.get(code, default))


class AutobizError(Exception):
    """An expected failure with a stable, documented code."""

    code: str = "AUTOBIZ_ERROR"
    # The default when ``code`` is not in EXIT_CODES.
    exit_code: int = ExitCode.FAILED

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint
        self.exit_code = (
            exit_code if exit_code is not None else exit_code_for(self.code, type(self).exit_code)
        )

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class UsageError(AutobizError):
    """The command line is wrong (exit 2)."""

    code = "USAGE"
    exit_code = ExitCode.USAGE


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
