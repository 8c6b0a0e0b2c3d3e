"""Every stable error code the product raises or matches, as one enum.

A code is what scripts, tests, dashboards and operators rely on: the ``type`` of an
``ApplicationError`` (recorded in workflow histories), the ``code`` of an ``AutobizError``
(the CLI's ``error[CODE]``, whose exit code ``autobiz.errors.EXIT_CODES`` gives), a gate
refusal, a security incident's ``security.<code>``. Each member's value is its name and a
``StrEnum`` member is a ``str``, so ``ErrorCode.X == "X"`` wherever Temporal, the database
or a log expects a string: switching a literal to its member changes no recorded byte.

Code outside this module names a code only as ``ErrorCode.X``
(tests/hygiene/test_error_codes.py). The groups below follow the CLI's exit kinds.

Pure: no imports beyond ``enum``; the lowest layer, importable by workflows.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """A stable error code (documented in docs/kernel.md and docs/operations.md)."""

    # -- usage: the input is wrong (fix the command line, the config or the call) -----
    USAGE = "USAGE"
    SETTINGS_INVALID = "SETTINGS_INVALID"
    INPUT_INVALID = "INPUT_INVALID"
    # Money typed by people (kernel.money).
    AMOUNT_INVALID = "AMOUNT_INVALID"
    CURRENCY_INVALID = "CURRENCY_INVALID"
    CURRENCY_UNKNOWN = "CURRENCY_UNKNOWN"
    # Ids, names and arguments.
    ORDER_ID_INVALID = "ORDER_ID_INVALID"
    PAYMENT_INTENT_INVALID = "PAYMENT_INTENT_INVALID"
    REQUEST_ID_INVALID = "REQUEST_ID_INVALID"
    TENANT_INVALID = "TENANT_INVALID"
    TENANT_UNKNOWN = "TENANT_UNKNOWN"
    WINDOW_INVALID = "WINDOW_INVALID"
    DRIFT_KIND_INVALID = "DRIFT_KIND_INVALID"
    REPLAY_INVALID_ARGUMENT = "REPLAY_INVALID_ARGUMENT"
    # Configuration and settings.
    CONFIG_INVALID = "CONFIG_INVALID"
    CONFIG_MISSING = "CONFIG_MISSING"
    CONFIG_UNREADABLE = "CONFIG_UNREADABLE"
    PORT_IN_USE = "PORT_IN_USE"
    # Nothing by that name.
    WORKFLOW_TYPE_UNKNOWN = "WORKFLOW_TYPE_UNKNOWN"
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
    FLOW_NOT_FOUND = "FLOW_NOT_FOUND"
    APPROVAL_NOT_FOUND = "APPROVAL_NOT_FOUND"
    INCIDENT_NOT_FOUND = "INCIDENT_NOT_FOUND"
    INCIDENT_TRANSITION_INVALID = "INCIDENT_TRANSITION_INVALID"  # e.g. ack a resolved one
    PAYMENT_INTENT_UNKNOWN = "PAYMENT_INTENT_UNKNOWN"
    NOT_FOUND = "NOT_FOUND"
    SECRET_NOT_FOUND = "SECRET_NOT_FOUND"  # noqa: S105 (a code, not a secret)
    # The gate (kernel.gate): the call itself is wrong.
    TOOL_UNKNOWN = "TOOL_UNKNOWN"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    # The database: the admin path, migrations.
    ADMIN_REASON_REQUIRED = "ADMIN_REASON_REQUIRED"
    TENANT_CONTEXT_REQUIRED = "TENANT_CONTEXT_REQUIRED"
    MIGRATION_NAME_INVALID = "MIGRATION_NAME_INVALID"
    MIGRATION_DUPLICATE = "MIGRATION_DUPLICATE"
    MIGRATION_CHECKSUM_MISMATCH = "MIGRATION_CHECKSUM_MISMATCH"
    # Keys, tokens and dev tooling.
    CODEC_SERVER_TOKEN_MISSING = "CODEC_SERVER_TOKEN_MISSING"  # noqa: S105 (a code, not a secret)
    # The codec server would serve plaintext without asking who (auth none off loopback,
    # or in production); its OIDC settings are incomplete or unsafe.
    CODEC_SERVER_AUTH_UNSAFE = "CODEC_SERVER_AUTH_UNSAFE"
    CODEC_SERVER_OIDC_INVALID = "CODEC_SERVER_OIDC_INVALID"
    CODEC_UNKNOWN_KEY = "CODEC_UNKNOWN_KEY"
    KEY_FILE_EXISTS = "KEY_FILE_EXISTS"
    APPROVER_KEY_MISSING = "APPROVER_KEY_MISSING"
    APPROVER_KEY_INVALID = "APPROVER_KEY_INVALID"
    APPROVER_KEY_NOT_FOUND = "APPROVER_KEY_NOT_FOUND"
    APPROVER_UNKNOWN = "APPROVER_UNKNOWN"
    SANDBOX_TOKEN_MISSING = "SANDBOX_TOKEN_MISSING"  # noqa: S105 (a code, not a secret)
    SANDBOX_NOT_INSTALLED = "SANDBOX_NOT_INSTALLED"

    # -- refused: by policy, the gate, an approver or an owner binding ---------------
    # The gate (kernel.gate); RUN_TERMINATED carries a TerminationReason.
    PERMISSION_DENIED = "PERMISSION_DENIED"
    APPROVAL_REQUIRED = "APPROVAL_REQUIRED"
    APPROVAL_INVALID = "APPROVAL_INVALID"
    RUN_TERMINATED = "RUN_TERMINATED"
    # Human decisions (workflows.common.approvals, the CLI).
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    DECISION_REJECTED = "DECISION_REJECTED"
    # Another tenant's or another order's object (security incidents).
    CROSS_TENANT_REFUSED = "CROSS_TENANT_REFUSED"
    PAYMENT_NOT_FOR_ORDER = "PAYMENT_NOT_FOR_ORDER"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    ORDER_MISMATCH = "ORDER_MISMATCH"
    CONTEXT_MISMATCH = "CONTEXT_MISMATCH"
    # The money invariants of a refund (kernel.refunds).
    PAYMENT_UNKNOWN = "PAYMENT_UNKNOWN"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    REFUND_EXCEEDS_REFUNDABLE = "REFUND_EXCEEDS_REFUNDABLE"
    REFUND_REFUSED = "REFUND_REFUSED"
    # Closed, disabled or not allowed.
    REQUEST_CLOSED = "REQUEST_CLOSED"
    ORDER_FLOW_CLOSED = "ORDER_FLOW_CLOSED"
    NOT_FULFILLABLE = "NOT_FULFILLABLE"
    WORKFLOW_DISABLED = "WORKFLOW_DISABLED"
    ADMIN_PATH_DISABLED = "ADMIN_PATH_DISABLED"
    SECRET_ACCESS_DENIED = "SECRET_ACCESS_DENIED"  # noqa: S105 (a code, not a secret)
    # Refused before anything left the process.
    HYGIENE_VIOLATION = "HYGIENE_VIOLATION"
    GATE_BYPASSED = "GATE_BYPASSED"
    PROJECTION_NOT_WRITTEN = "PROJECTION_NOT_WRITTEN"  # a worker without RidingProjection
    CODEC_TAMPERED = "CODEC_TAMPERED"
    SANDBOX_FORBIDDEN = "SANDBOX_FORBIDDEN"

    # -- unavailable: a dependency is unreachable or would not start -----------------
    TEMPORAL_UNREACHABLE = "TEMPORAL_UNREACHABLE"
    TEMPORAL_UNAVAILABLE = "TEMPORAL_UNAVAILABLE"
    DATABASE_UNREACHABLE = "DATABASE_UNREACHABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    DATABASE_ERROR = "DATABASE_ERROR"
    WORKER_UNAVAILABLE = "WORKER_UNAVAILABLE"
    FLOW_UNAVAILABLE = "FLOW_UNAVAILABLE"
    SANDBOX_UNREACHABLE = "SANDBOX_UNREACHABLE"
    SEARCH_ATTRIBUTES_MISSING = "SEARCH_ATTRIBUTES_MISSING"
    # The dev stack.
    SERVICE_START_FAILED = "SERVICE_START_FAILED"
    SERVICE_UNHEALTHY = "SERVICE_UNHEALTHY"  # `autobiz health`: a probe that failed
    TEMPORAL_BINARY_MISSING = "TEMPORAL_BINARY_MISSING"
    POSTGRES_BINARY_MISSING = "POSTGRES_BINARY_MISSING"
    POSTGRES_START_FAILED = "POSTGRES_START_FAILED"
    # Providers. PROVIDER_NOT_FOUND_YET: a not-found within the call's grace (retried).
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    PROVIDER_RATE_LIMITED = "PROVIDER_RATE_LIMITED"
    # The shared rate limiter (autobiz.ratelimits) has no budget within the longest wait:
    # nothing was sent; retried after the wait.
    RATE_LIMIT_WAIT = "RATE_LIMIT_WAIT"
    PROVIDER_AUTH_FAILED = "PROVIDER_AUTH_FAILED"
    PROVIDER_NOT_FOUND_YET = "PROVIDER_NOT_FOUND_YET"
    # A circuit breaker is open for the provider account (autobiz.breakers): retried later.
    BREAKER_OPEN = "BREAKER_OPEN"
    # A decision that came while its request was still opening (starters send it again).
    DECISION_NOT_READY = "DECISION_NOT_READY"

    # -- failed: it ran, but the outcome is not the wanted one -----------------------
    FLOW_FAILED = "FLOW_FAILED"
    DEMO_MISMATCH = "DEMO_MISMATCH"
    # `autobiz soak`: something lost, done twice, an invariant broken or an outcome not the
    # expected one; CHAOS_REFUSED: a chaos action needs a process the stack does not own.
    SOAK_FAILED = "SOAK_FAILED"
    CHAOS_REFUSED = "CHAOS_REFUSED"
    # `autobiz gate`: a gate below its threshold; too few runs to judge one at all.
    GATE_FAILED = "GATE_FAILED"
    GATE_INSUFFICIENT_RUNS = "GATE_INSUFFICIENT_RUNS"
    REPLAY_FAILED = "REPLAY_FAILED"
    REPLAY_NONDETERMINISTIC = "REPLAY_NONDETERMINISTIC"
    MIGRATION_FAILED = "MIGRATION_FAILED"
    RECEIPT_WRITE_FAILED = "RECEIPT_WRITE_FAILED"
    CODEC_ERROR = "CODEC_ERROR"
    # Providers (autobiz.providers.errors).
    CARD_DECLINED = "CARD_DECLINED"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    PROVIDER_NOT_FOUND = "PROVIDER_NOT_FOUND"
    PROVIDER_INVALID_REQUEST = "PROVIDER_INVALID_REQUEST"
    PROVIDER_STATE_CONFLICT = "PROVIDER_STATE_CONFLICT"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    IDEMPOTENCY_IN_PROGRESS = "IDEMPOTENCY_IN_PROGRESS"
    # A flow's own failure (its history's last event).
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    NO_SHIPPING_ADDRESS = "NO_SHIPPING_ADDRESS"
    PAYMENT_NOT_AUTHORIZED = "PAYMENT_NOT_AUTHORIZED"
    SHIPMENT_TIMEOUT = "SHIPMENT_TIMEOUT"
    # An activity's optimistic write or lookup found another state.
    ORDER_STATE_CONFLICT = "ORDER_STATE_CONFLICT"
    HITL_STATE_CONFLICT = "HITL_STATE_CONFLICT"
    DRIFT_NOT_FOUND = "DRIFT_NOT_FOUND"

    # -- the CLI's own, with a fixed exit code (not in EXIT_CODES) -------------------
    AUTOBIZ_ERROR = "AUTOBIZ_ERROR"  # an AutobizError that names no code
    INTERNAL = "INTERNAL"  # a bug: exit 5
    ABORTED = "ABORTED"  # Ctrl-C at a prompt: exit 130
