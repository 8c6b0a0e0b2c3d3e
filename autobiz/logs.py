"""The processes' one logging setup: JSON lines or readable text, with Temporal context.

``autobiz worker``, ``ingress``, ``sandbox`` and ``codec-server`` call
:func:`configure_logging` first. Every record then goes to one stderr handler that

* adds what is known of where it was logged: tenant, workflow id (also the correlation
  id), run id, workflow type, activity type and id, attempt — from the SDK's
  ``temporal_activity`` / ``temporal_workflow`` extras, else from
  ``temporalio.activity.info()`` while in an activity (and the verified call's tenant);
* masks secrets and PII (:class:`kernel.redaction.RedactingLogFilter`, the same filter
  the CLI installs) in the message, the traceback and every context field;
* writes one JSON object per line (``AUTOBIZ_LOG__FORMAT=json``, the production
  default) or ``timestamp level logger: message`` text (the development default).

Expected outcomes stay one line: the SDK logs every failed activity attempt with its
traceback ("Completing activity as failed", WARNING); for an ``ApplicationError`` whose
type is one of our :class:`~kernel.codes.ErrorCode` members (a Printful 404 on the
lookup before a create, a declined card) the traceback says nothing the code does not,
so :class:`ExpectedOutcomeFilter` drops it and names the code. Anything else — a real
crash — keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

from autobiz.settings import Settings
from kernel.codes import ErrorCode
from kernel.redaction import RedactingLogFilter, redact_value

# The context fields, in the order a JSON line carries them.
CONTEXT_FIELDS = (
    "tenant",
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_type",
    "activity_id",
    "attempt",
    "correlation_id",
    "error_code",
)
_CODES = frozenset(code.value for code in ErrorCode) - {ErrorCode.INTERNAL.value}
_SDK_ACTIVITY_FAILURE = "ActivityFailure"  # the SDK's __temporal_error_identifier


def _tenant_from_workflow_id(workflow_id: str) -> str | None:
    """Workflow ids are ``{prefix}:{tenant}:{business key}`` (workflows/ids.py)."""
    parts = workflow_id.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[1] else None


def _current_tenant() -> str | None:
    from autobiz.ledger.executor import current_call

    call = current_call()
    return call.tenant_id if call is not None else None


def temporal_context(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields known for ``record`` (empty outside Temporal)."""
    found: dict[str, Any] = {}
    act = getattr(record, "temporal_activity", None)
    wf = getattr(record, "temporal_workflow", None)
    if not isinstance(act, Mapping) and activity.in_activity():
        now = activity.info()
        act = {
            "workflow_id": now.workflow_id,
            "workflow_run_id": now.workflow_run_id,
            "workflow_type": now.workflow_type,
            "activity_type": now.activity_type,
            "activity_id": now.activity_id,
            "attempt": now.attempt,
        }
    if isinstance(act, Mapping):
        found.update(
            workflow_id=act.get("workflow_id"),
            run_id=act.get("workflow_run_id"),
            workflow_type=act.get("workflow_type"),
            activity_type=act.get("activity_type"),
            activity_id=act.get("activity_id"),
            attempt=act.get("attempt"),
        )
        if activity.in_activity():
            found["tenant"] = _current_tenant()
    elif isinstance(wf, Mapping):
        found.update(
            workflow_id=wf.get("workflow_id"),
            run_id=wf.get("run_id"),
            workflow_type=wf.get("workflow_type"),
        )
    elif workflow.in_workflow():
        info = workflow.info()
        found.update(
            workflow_id=info.workflow_id, run_id=info.run_id, workflow_type=info.workflow_type
        )
    workflow_id = found.get("workflow_id")
    if workflow_id:
        found["correlation_id"] = workflow_id
        found["tenant"] = found.get("tenant") or _tenant_from_workflow_id(str(workflow_id))
    code = getattr(record, "error_code", None)
    if code:
        found["error_code"] = code
    return {k: v for k, v in found.items() if v is not None}


class ExpectedOutcomeFilter(logging.Filter):
    """One line, no traceback, for an activity attempt that failed with one of our codes.

    Attached to the ``temporalio.activity`` logger (so every handler sees the short
    record); must run before the redaction filter turns ``exc_info`` into text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "__temporal_error_identifier", None) != _SDK_ACTIVITY_FAILURE:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, ApplicationError) or exc.type not in _CODES:
            return True
        retry = "non-retryable" if exc.non_retryable else "retryable"
        message = exc.message if f"[{exc.type}]" in exc.message else f"[{exc.type}] {exc.message}"
        record.msg = f"{record.getMessage()} ({retry}): {message}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.error_code = exc.type
        return True


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-12-02T03:50:01.123Z``."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    text = record.exc_text
    if not text and record.exc_info:
        text = formatter.formatException(record.exc_info)
    if record.stack_info:
        text = f"{text}\n{formatter.formatStack(record.stack_info)}" if text else record.stack_info
    return redact_value(text) if text else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the message and every field already redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_value(record.getMessage()),
        }
        line.update(redact_value(temporal_context(record)))
        exc = _traceback(self, record)
        if exc:
            line["exc"] = exc
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2026-12-02T03:50:01.123Z WARNING temporalio.activity: message [k=v …]``: the
    context fields known, after the message."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        context = temporal_context(record)
        context.pop("correlation_id", None)  # the workflow id again
        if context:
            text += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        text = str(redact_value(text))
        exc = _traceback(self, record)
        return f"{text}\n{exc}" if exc else text


class _AutobizHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed (replaced on the next call)."""


def _route_uvicorn_to_root() -> None:
    """``uvicorn.run`` applies its default ``LOGGING_CONFIG`` (its own handlers, no
    propagation); point its loggers at the root handler instead, so the servers' lines
    are formatted and redacted like the rest. Edits that default dict in place."""
    try:
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:  # pragma: no cover - uvicorn is a dependency of every server
        return
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        LOGGING_CONFIG["loggers"][name] = {"handlers": [], "level": "INFO", "propagate": True}


def log_format(settings: Settings) -> str:
    """``json`` or ``text``: the setting, else JSON in production and text elsewhere."""
    if settings.log.format is not None:
        return settings.log.format
    return "json" if settings.is_production else "text"


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """Install the one stderr handler on the root logger (idempotent) and return it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        # basicConfig's plain handler and ours; a test's capture handler stays.
        if type(handler) is logging.StreamHandler or isinstance(handler, _AutobizHandler):
            root.removeHandler(handler)
    handler = _AutobizHandler(stream if stream is not None else sys.stderr)
    fmt = log_format(settings)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingLogFilter())
    root.addHandler(handler)
    root.setLevel((settings.log.level or settings.log_level).upper())

    sdk_activity = logging.getLogger("temporalio.activity")
    if not any(isinstance(f, ExpectedOutcomeFilter) for f in sdk_activity.filters):
        sdk_activity.addFilter(ExpectedOutcomeFilter())
    # The formatters add the context; the SDK's "({…info…})" suffix would repeat it.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    _route_uvicorn_to_root()
    return handler
