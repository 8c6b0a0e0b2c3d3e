"""`autobiz replay WORKFLOW_ID`: replay a workflow's history against the current code.

The history is fetched through ``connect()`` (so from the configured namespace) and
replayed with the worker's workflow classes and the shared data converter, whose codec
keys must include the ones the history was written with. A run that is still open is
replayed up to its last event. Non-determinism (the code would issue other commands than
the history recorded) exits 1 with ``REPLAY_NONDETERMINISTIC``; a history this build
cannot read exits 2 with its own code.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import typer
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from autobiz.cli.output import emit_json
from autobiz.codec import ENCODING, AesGcmCodec, CodecError
from autobiz.errors import AutobizError
from autobiz.settings import Settings, get_settings
from autobiz.temporal_client import connect, data_converter, describe_target
from kernel.codes import ErrorCode
from kernel.redaction import redact_text

# The core's failure text: `... Failure { message: "[TMPRL1100] Nondeterminism error: ..."`.
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_B64_ENCODING = base64.b64encode(ENCODING).decode()


class ReplayError(AutobizError):
    code = ErrorCode.REPLAY_FAILED


class NondeterministicReplay(ReplayError):
    code = ErrorCode.REPLAY_NONDETERMINISTIC
    exit_code = 1


@dataclass
class ReplayReport:
    workflow_id: str
    run_id: str | None
    workflow_type: str | None
    events: int
    # None: the replay did not run (not found, unreadable, ...).
    deterministic: bool | None
    code: str | None = None
    message: str | None = None


def _registered(workflows: list[type]) -> set[str]:
    names = set()
    for cls in workflows:
        defn = workflow._Definition.from_class(cls)
        if defn is not None and defn.name is not None:
            names.add(defn.name)
    return names


def _workflow_type(history: WorkflowHistory) -> str | None:
    if not history.events:
        return None
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name or None


def _encrypted_payloads(node: Any) -> Iterator[Payload]:
    """Encrypted payloads anywhere in a history's JSON form."""
    if isinstance(node, dict):
        metadata = node.get("metadata")
        if isinstance(metadata, dict) and metadata.get("encoding") == _B64_ENCODING:
            yield Payload(
                metadata={k: base64.b64decode(v) for k, v in metadata.items()},
                data=base64.b64decode(node.get("data", "")),
            )
        for value in node.values():
            yield from _encrypted_payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _encrypted_payloads(value)


async def _check_keys(settings: Settings, history: WorkflowHistory) -> None:
    """Fail with the codec's own code (unknown key, tampered) before replaying, so a key
    problem is not mistaken for a code problem."""
    codec = AesGcmCodec.from_settings(settings)
    sealed = list(_encrypted_payloads(history.to_json_dict()))
    try:
        await codec.decode(sealed)
    except CodecError as exc:
        raise CodecError(
            f"the history cannot be decrypted: {exc.message}",
            code=exc.code,
            hint="configure the key ids it was written with in AUTOBIZ_KERNEL__CODEC_KEYS",
        ) from None


def _failure_message(failure: Exception) -> str:
    """The core's one-line reason when there is one, else the exception text; redacted."""
    text = str(failure)
    match = _CORE_MESSAGE.search(text)
    if match:
        text = match.group(1)
    elif text:
        text = text.splitlines()[0]
    else:
        text = repr(failure)
    return redact_text(text)


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """The SDK logs a failed replay activation (with a traceback) at WARNING; the command
    reports it itself. AUTOBIZ_DEBUG=1 keeps the SDK's logs."""
    if os.environ.get("AUTOBIZ_DEBUG"):
        yield
        return
    logger = logging.getLogger("temporalio.worker")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _fetch_history(
    settings: Settings, workflow_id: str, run_id: str | None
) -> WorkflowHistory:
    """The run's history from the server; unreachable, unknown or invalid: ``ReplayError``."""
    try:
        client = await connect(settings)
    except RuntimeError as exc:
        raise ReplayError(
            f"cannot reach Temporal at {describe_target(settings)}: {exc}",
            code=ErrorCode.TEMPORAL_UNAVAILABLE,
            hint="is the server up? (autobiz dev up, or AUTOBIZ_TEMPORAL__ADDRESS)",
        ) from None
    try:
        return await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            which = f"{workflow_id} (run {run_id})" if run_id else workflow_id
            raise ReplayError(
                f"no workflow {which} in namespace {settings.temporal.namespace}",
                code=ErrorCode.WORKFLOW_NOT_FOUND,
            ) from None
        if exc.status is RPCStatusCode.INVALID_ARGUMENT:
            raise ReplayError(
                redact_text(exc.message), code=ErrorCode.REPLAY_INVALID_ARGUMENT
            ) from None
        raise


def _replayable_type(history: WorkflowHistory, workflows: list[type]) -> str:
    """The history's workflow type, which this build must register."""
    wf_type = _workflow_type(history)
    if wf_type is None:
        raise ReplayError(
            f"{history.workflow_id} has an empty history", code=ErrorCode.WORKFLOW_NOT_FOUND
        )
    if wf_type not in _registered(workflows):
        raise ReplayError(
            f"workflow type {wf_type} is not registered in this build "
            f"(known: {', '.join(sorted(_registered(workflows)))})",
            code=ErrorCode.WORKFLOW_TYPE_UNKNOWN,
        )
    return wf_type


def _judged(report: ReplayReport, failure: Exception | None) -> ReplayReport:
    """The report with the replay's verdict: a nondeterminism, or another failure."""
    if failure is not None:
        nondeterministic = isinstance(failure, workflow.NondeterminismError)
        report.deterministic = False if nondeterministic else None
        report.code = NondeterministicReplay.code if nondeterministic else ReplayError.code
        report.message = _failure_message(failure)
    return report


async def replay_workflow(
    settings: Settings,
    workflow_id: str,
    *,
    run_id: str | None = None,
    workflows: list[type] | None = None,
) -> ReplayReport:
    """Fetch the history (the latest run unless ``run_id``) and replay it.

    The report says whether the replay was deterministic (``code`` names the failure when
    not); a history that could not be fetched or read raises an ``AutobizError``."""
    if workflows is None:
        from workers.worker import WORKFLOWS

        workflows = list(WORKFLOWS)
    history = await _fetch_history(settings, workflow_id, run_id)
    wf_type = _replayable_type(history, workflows)
    await _check_keys(settings, history)
    replayer = Replayer(
        workflows=workflows,
        data_converter=data_converter(settings),
        # No core log lines on stderr: the failure is reported once, below.
        runtime=Runtime(telemetry=TelemetryConfig(logging=None)),
    )
    with _quiet_sdk():
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    report = ReplayReport(
        workflow_id=workflow_id,
        run_id=history.run_id or run_id,
        workflow_type=wf_type,
        events=len(history.events),
        deterministic=result.replay_failure is None,
    )
    return _judged(report, result.replay_failure)


def replay(
    workflow_id: str = typer.Argument(..., help="Workflow id, e.g. order:demo-shop:1001"),
    run_id: str | None = typer.Option(None, "--run-id", help="A run (default: the latest)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Replay a workflow's history against this code; exit 1 if it is not deterministic."""
    settings = get_settings()
    try:
        report = asyncio.run(replay_workflow(settings, workflow_id, run_id=run_id))
    except AutobizError as exc:
        if json_out:
            emit_json(
                asdict(
                    ReplayReport(
                        workflow_id=workflow_id,
                        run_id=run_id,
                        workflow_type=None,
                        events=0,
                        deterministic=None,
                        code=exc.code,
                        message=exc.message,
                    )
                )
            )
        raise
    if json_out:
        emit_json(asdict(report))
    if report.code == NondeterministicReplay.code:
        raise NondeterministicReplay(
            f"{workflow_id} is not deterministic under this code: {report.message}",
            hint="guard the change with workflow.patched(...) so running flows keep their path",
        )
    if report.code is not None:
        raise ReplayError(f"replay of {workflow_id} failed: {report.message}")
    if not json_out:
        typer.echo(
            f"deterministic: {report.workflow_id} (run {report.run_id}, "
            f"{report.workflow_type}, {report.events} events)"
        )
