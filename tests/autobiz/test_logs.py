"""autobiz.logs: JSON or text lines, the Temporal context in fields, secrets masked, and
an expected provider outcome logged as one line while a crash keeps its traceback."""

from __future__ import annotations

import copy
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from autobiz.logs import ExpectedOutcomeFilter, configure_logging, log_format
from autobiz.settings import Environment, LogSettings, Settings

STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"  # split: not a literal secret in the tree
EMAIL = "jane.doe@example.com"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back after each test."""
    import uvicorn.config

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sdk = logging.getLogger("temporalio.activity")
    filters = list(sdk.filters)
    on_message = (
        activity.logger.activity_info_on_message,
        workflow.logger.workflow_info_on_message,
    )
    uvicorn_loggers = copy.deepcopy(uvicorn.config.LOGGING_CONFIG["loggers"])
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sdk.filters[:] = filters
    activity.logger.activity_info_on_message, workflow.logger.workflow_info_on_message = on_message
    uvicorn.config.LOGGING_CONFIG["loggers"] = uvicorn_loggers


def capture(fmt: str, level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(Settings(log=LogSettings(format=fmt, level=level)), stream=stream)  # type: ignore[arg-type]
    return stream


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_the_fields_and_masks_secrets(restore_logging: None) -> None:
    stream = capture("json")
    log = logging.getLogger("autobiz.test")
    log.warning("charge with %s for %s", STRIPE_KEY, EMAIL)
    try:
        raise RuntimeError(f"boom {STRIPE_KEY}")
    except RuntimeError:
        log.exception("failed for %s", EMAIL)

    first, second = json_lines(stream)
    assert set(first) == {"timestamp", "level", "logger", "message"}
    assert first["level"] == "WARNING" and first["logger"] == "autobiz.test"
    assert first["timestamp"].endswith("Z") and first["timestamp"][10] == "T"
    assert "[REDACTED:stripe_key]" in first["message"]
    assert "[REDACTED:email]" in first["message"]
    assert STRIPE_KEY not in stream.getvalue() and EMAIL not in stream.getvalue()
    assert "Traceback" in second["exc"] and "[REDACTED:stripe_key]" in second["exc"]


def test_text_is_the_development_default_with_timestamps(restore_logging: None) -> None:
    assert log_format(Settings(env=Environment.DEVELOPMENT)) == "text"
    assert log_format(Settings(env=Environment.PRODUCTION)) == "json"
    assert (
        log_format(Settings(env=Environment.PRODUCTION, log=LogSettings(format="text"))) == "text"
    )
    stream = capture("text")
    logging.getLogger("autobiz.test").info("sent to %s", EMAIL)
    line = stream.getvalue().strip()
    assert line.endswith("INFO    autobiz.test: sent to [REDACTED:email]")
    assert line[:4].isdigit() and line.split(" ")[0].endswith("Z")


def test_level_and_format_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.setenv("AUTOBIZ_LOG__FORMAT", "json")
    monkeypatch.setenv("AUTOBIZ_LOG__LEVEL", "warning")
    settings = Settings()
    assert settings.log.format == "json" and settings.log.level == "warning"
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    log = logging.getLogger("autobiz.test")
    log.info("not shown")
    log.warning("shown")
    assert [line["message"] for line in json_lines(stream)] == ["shown"]


def test_configuring_twice_keeps_one_handler(restore_logging: None) -> None:
    stream = capture("json")
    capture("json")
    configure_logging(Settings(log=LogSettings(format="json")), stream=stream)
    logging.getLogger("autobiz.test").warning("once")
    assert len(json_lines(stream)) == 1
    sdk = logging.getLogger("temporalio.activity")
    assert sum(isinstance(f, ExpectedOutcomeFilter) for f in sdk.filters) == 1


# -- a worker-side scenario on the real Temporal dev server ----------------------------


@activity.defn(name="logs_lookup_printful_order")
async def lookup_printful_order(external_id: str) -> None:
    """The lookup by external id before a create: Printful answers 404, as expected."""
    from activities.errors import provider_errors
    from autobiz.providers.errors import NotFound

    logging.getLogger("autobiz.providers.printful").info("looking up %s", external_id)
    with provider_errors():
        raise NotFound(
            f"Printful order @{external_id} not found", provider="printful", http_status=404
        )


@activity.defn(name="logs_crash")
async def crash(customer: str) -> None:
    """A bug: a real crash keeps its traceback (with the PII in it masked)."""
    raise KeyError(f"no address for {customer}")


@workflow.defn(name="LogsScenario")
class LogsScenario:
    @workflow.run
    async def run(self, external_id: str) -> list[str]:
        workflow.logger.info("looking up the Printful order first")
        outcomes = []
        once = RetryPolicy(maximum_attempts=1)
        timeout = timedelta(seconds=10)
        for fn, arg in ((lookup_printful_order, external_id), (crash, EMAIL)):
            try:
                await workflow.execute_activity(
                    fn, arg, start_to_close_timeout=timeout, retry_policy=once
                )
            except ActivityError as exc:
                outcomes.append(type(exc.cause).__name__)
        return outcomes


async def test_expected_outcome_is_one_line_and_a_crash_keeps_its_traceback(
    client: Client, task_queue: str, restore_logging: None
) -> None:
    stream = capture("json")
    tenant = f"t{uuid.uuid4().hex[:8]}"
    workflow_id = f"logs:{tenant}:{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[LogsScenario],
        activities=[lookup_printful_order, crash],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        outcomes = await client.execute_workflow(
            LogsScenario.run, "ext-1001", id=workflow_id, task_queue=task_queue
        )
    assert outcomes == ["ApplicationError", "ApplicationError"]

    raw = stream.getvalue()
    lines = json_lines(stream)  # every line is one JSON object
    mine = [line for line in lines if line.get("workflow_id") == workflow_id]
    failed = [line for line in mine if line["message"].startswith("Completing activity as failed")]
    expected = [
        line for line in failed if line.get("activity_type") == "logs_lookup_printful_order"
    ]
    crashed = [line for line in failed if line.get("activity_type") == "logs_crash"]

    assert len(expected) == 1 and len(crashed) == 1
    one_line = expected[0]
    assert "exc" not in one_line and "\n" not in one_line["message"]
    assert one_line["error_code"] == "PROVIDER_NOT_FOUND"
    assert one_line["message"] == (
        "Completing activity as failed (non-retryable): "
        "[PROVIDER_NOT_FOUND] printful http=404: Printful order @ext-1001 not found"
    )
    assert one_line["level"] == "WARNING" and one_line["attempt"] == 1
    assert one_line["tenant"] == tenant and one_line["correlation_id"] == workflow_id
    assert one_line["workflow_type"] == "LogsScenario" and one_line["run_id"]
    assert one_line["activity_id"]

    assert "Traceback" in crashed[0]["exc"] and "KeyError" in crashed[0]["exc"]
    assert "[REDACTED:email]" in crashed[0]["exc"] and EMAIL not in raw

    # A plain logger inside the activity and the workflow's logger carry the context too.
    (lookup,) = [line for line in mine if line["logger"] == "autobiz.providers.printful"]
    assert lookup["activity_type"] == "logs_lookup_printful_order" and lookup["tenant"] == tenant
    (started,) = [line for line in mine if line["logger"] == "temporalio.workflow"]
    assert started["message"] == "looking up the Printful order first"  # no info suffix
    assert started["workflow_type"] == "LogsScenario" and "activity_type" not in started


def test_uvicorn_lines_go_through_the_same_handler(restore_logging: None) -> None:
    import logging.config

    import uvicorn.config

    stream = capture("json")
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # what uvicorn.run applies
    logging.getLogger("uvicorn.error").info("Started server process for %s", EMAIL)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", "/healthz", "1.1", 200
    )
    error, access = json_lines(stream)
    assert error["logger"] == "uvicorn.error" and "[REDACTED:email]" in error["message"]
    assert access["logger"] == "uvicorn.access" and "/healthz" in access["message"]


async def test_text_mode_keeps_the_same_one_line_outcome(
    client: Client, task_queue: str, restore_logging: None
) -> None:
    stream = capture("text")
    workflow_id = f"logs:acme:{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[LogsScenario],
        activities=[lookup_printful_order, crash],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        await client.execute_workflow(
            LogsScenario.run, "ext-1002", id=workflow_id, task_queue=task_queue
        )
    text = stream.getvalue()
    lines = text.splitlines()
    (lookup,) = [i for i, line in enumerate(lines) if "[PROVIDER_NOT_FOUND]" in line]
    assert "Completing activity as failed" in lines[lookup] and workflow_id in lines[lookup]
    assert not lines[lookup + 1].startswith("Traceback")
    assert sum(line.startswith("Traceback") for line in lines) == 1  # the crash only
    (plain,) = [line for line in lines if "autobiz.providers.printful" in line]
    assert f"workflow_id={workflow_id}" in plain and "tenant=acme" in plain
    assert "activity_type=logs_lookup_printful_order" in plain and "attempt=1" in plain
    (started,) = [line for line in lines if "temporalio.workflow" in line]
    assert "first [workflow_id=" in started and "'namespace'" not in started
