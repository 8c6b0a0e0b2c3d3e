"""Errors a user can see: a stable code, a plain message, what to do about it, and the
process exit code that tells scripts which kind of failure it was.

The CLI prints these as ``error[CODE]: message`` and ``hint: …`` with no traceback;
anything else that escapes is a bug and is reported as ``INTERNAL``.

Codes are :class:`kernel.codes.ErrorCode` members. Exit codes (documented in
docs/operations.md#exit-codes) are decided here and nowhere else: an error's
``exit_code`` is the one :data:`EXIT_CODES` gives its code, else its class's default.
A test checks that every code the CLI can raise is in the table.
"""

from __future__ import annotations

from enum import IntEnum

from kernel.codes import ErrorCode


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
EXIT_CODES: dict[ErrorCode, ExitCode] = {
    # -- bad input / usage ------------------------------------------------------------
    ErrorCode.USAGE: _U,
    ErrorCode.SETTINGS_INVALID: _U,
    ErrorCode.INPUT_INVALID: _U,
    ErrorCode.AMOUNT_INVALID: _U,
    ErrorCode.CURRENCY_INVALID: _U,
    ErrorCode.CURRENCY_UNKNOWN: _U,
    ErrorCode.ORDER_ID_INVALID: _U,
    ErrorCode.PAYMENT_INTENT_INVALID: _U,
    ErrorCode.REQUEST_ID_INVALID: _U,
    ErrorCode.TENANT_INVALID: _U,
    ErrorCode.TENANT_UNKNOWN: _U,
    ErrorCode.WINDOW_INVALID: _U,
    ErrorCode.REPLAY_INVALID_ARGUMENT: _U,
    ErrorCode.CONFIG_INVALID: _U,
    ErrorCode.CONFIG_MISSING: _U,
    ErrorCode.CONFIG_UNREADABLE: _U,
    ErrorCode.WORKFLOW_TYPE_UNKNOWN: _U,
    ErrorCode.WORKFLOW_NOT_FOUND: _U,
    ErrorCode.FLOW_NOT_FOUND: _U,
    ErrorCode.APPROVAL_NOT_FOUND: _U,
    ErrorCode.INCIDENT_NOT_FOUND: _U,
    ErrorCode.INCIDENT_TRANSITION_INVALID: _U,
    ErrorCode.PAYMENT_INTENT_UNKNOWN: _U,
    ErrorCode.TOOL_UNKNOWN: _U,
    ErrorCode.NOT_FOUND: _U,
    ErrorCode.ADMIN_REASON_REQUIRED: _U,
    ErrorCode.TENANT_CONTEXT_REQUIRED: _U,
    ErrorCode.SECRET_NOT_FOUND: _U,
    ErrorCode.CODEC_SERVER_TOKEN_MISSING: _U,
    ErrorCode.CODEC_SERVER_AUTH_UNSAFE: _U,
    ErrorCode.CODEC_SERVER_OIDC_INVALID: _U,
    ErrorCode.CODEC_UNKNOWN_KEY: _U,
    ErrorCode.MIGRATION_NAME_INVALID: _U,
    ErrorCode.MIGRATION_DUPLICATE: _U,
    ErrorCode.MIGRATION_CHECKSUM_MISMATCH: _U,
    ErrorCode.KEY_FILE_EXISTS: _U,
    ErrorCode.APPROVER_KEY_MISSING: _U,
    ErrorCode.APPROVER_KEY_INVALID: _U,
    ErrorCode.APPROVER_KEY_NOT_FOUND: _U,
    ErrorCode.APPROVER_UNKNOWN: _U,
    ErrorCode.SANDBOX_TOKEN_MISSING: _U,
    ErrorCode.SANDBOX_NOT_INSTALLED: _U,  # dev tooling, absent from the production image
    ErrorCode.PORT_IN_USE: _U,  # the hint names the setting to change
    ErrorCode.CHAOS_REFUSED: _U,  # `autobiz soak --chaos` on a stack it cannot break
    # -- refused by policy ------------------------------------------------------------
    ErrorCode.APPROVAL_REJECTED: _R,
    ErrorCode.APPROVAL_INVALID: _R,
    ErrorCode.APPROVAL_REQUIRED: _R,
    ErrorCode.PERMISSION_DENIED: _R,
    ErrorCode.CROSS_TENANT_REFUSED: _R,
    ErrorCode.PAYMENT_NOT_FOR_ORDER: _R,
    ErrorCode.REFUND_REFUSED: _R,
    ErrorCode.REFUND_EXCEEDS_REFUNDABLE: _R,
    ErrorCode.CURRENCY_MISMATCH: _R,
    ErrorCode.PAYMENT_UNKNOWN: _R,
    ErrorCode.REQUEST_CLOSED: _R,
    ErrorCode.ORDER_FLOW_CLOSED: _R,
    ErrorCode.NOT_FULFILLABLE: _R,
    ErrorCode.WORKFLOW_DISABLED: _R,
    ErrorCode.ADMIN_PATH_DISABLED: _R,
    ErrorCode.SECRET_ACCESS_DENIED: _R,
    ErrorCode.HYGIENE_VIOLATION: _R,
    ErrorCode.GATE_BYPASSED: _R,
    ErrorCode.PROJECTION_NOT_WRITTEN: _F,  # a worker built without RidingProjection
    ErrorCode.CODEC_TAMPERED: _R,
    ErrorCode.SANDBOX_FORBIDDEN: _R,
    # -- unreachable / would not start ------------------------------------------------
    ErrorCode.TEMPORAL_UNREACHABLE: _N,
    ErrorCode.TEMPORAL_UNAVAILABLE: _N,
    ErrorCode.DATABASE_UNREACHABLE: _N,
    ErrorCode.DATABASE_UNAVAILABLE: _N,
    ErrorCode.DATABASE_ERROR: _N,
    ErrorCode.WORKER_UNAVAILABLE: _N,
    ErrorCode.FLOW_UNAVAILABLE: _N,
    ErrorCode.SANDBOX_UNREACHABLE: _N,
    ErrorCode.SEARCH_ATTRIBUTES_MISSING: _N,
    ErrorCode.SERVICE_START_FAILED: _N,
    ErrorCode.SERVICE_UNHEALTHY: _N,
    ErrorCode.TEMPORAL_BINARY_MISSING: _N,
    ErrorCode.POSTGRES_BINARY_MISSING: _N,
    ErrorCode.POSTGRES_START_FAILED: _N,
    ErrorCode.PROVIDER_UNAVAILABLE: _N,
    ErrorCode.PROVIDER_RATE_LIMITED: _N,
    ErrorCode.PROVIDER_AUTH_FAILED: _N,
    ErrorCode.BREAKER_OPEN: _N,
    ErrorCode.RATE_LIMIT_WAIT: _N,
    # -- ran, but the outcome is not the wanted one ----------------------------------
    ErrorCode.FLOW_FAILED: _F,
    ErrorCode.DEMO_MISMATCH: _F,
    ErrorCode.SOAK_FAILED: _F,
    ErrorCode.GATE_FAILED: _F,
    ErrorCode.GATE_INSUFFICIENT_RUNS: _F,
    ErrorCode.REPLAY_FAILED: _F,
    ErrorCode.REPLAY_NONDETERMINISTIC: _F,
    ErrorCode.MIGRATION_FAILED: _F,
    ErrorCode.CARD_DECLINED: _F,
    ErrorCode.APPROVAL_EXPIRED: _F,
    ErrorCode.PROVIDER_ERROR: _F,
    ErrorCode.PROVIDER_NOT_FOUND: _F,
    ErrorCode.PROVIDER_INVALID_REQUEST: _F,
    ErrorCode.PROVIDER_STATE_CONFLICT: _F,
    ErrorCode.IDEMPOTENCY_CONFLICT: _F,
    ErrorCode.IDEMPOTENCY_IN_PROGRESS: _F,
    ErrorCode.RECEIPT_WRITE_FAILED: _F,
    ErrorCode.CODEC_ERROR: _F,
}


def exit_code_for(code: str, default: int = ExitCode.FAILED) -> int:
    """The exit code for an error ``code`` (the one table above); ``default`` for a code
    the table does not classify, or a string that is no :class:`ErrorCode`."""
    try:
        return int(EXIT_CODES[ErrorCode(code)])
    except (ValueError, KeyError):
        return int(default)


class AutobizError(Exception):
    """An expected failure with a stable, documented code: an :class:`ErrorCode` (a plain
    string only where a workflow failure's type is passed through, ``reconcile run``)."""

    code: str = ErrorCode.AUTOBIZ_ERROR
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

    code = ErrorCode.USAGE
    exit_code = ExitCode.USAGE


class ConfigError(AutobizError):
    code = ErrorCode.CONFIG_INVALID


class PortInUseError(AutobizError):
    code = ErrorCode.PORT_IN_USE


class ServiceStartError(AutobizError):
    code = ErrorCode.SERVICE_START_FAILED


class DatabaseError(AutobizError):
    code = ErrorCode.DATABASE_ERROR


class TenantContextError(AutobizError):
    code = ErrorCode.TENANT_CONTEXT_REQUIRED


class MigrationError(AutobizError):
    code = ErrorCode.MIGRATION_FAILED


class SecretAccessError(AutobizError):
    code = ErrorCode.SECRET_ACCESS_DENIED


class SecretNotFoundError(AutobizError):
    code = ErrorCode.SECRET_NOT_FOUND
