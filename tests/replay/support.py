"""What the replay suite and the recorder share: the fixed test codec key, the data
converter built from it, and reading recorded histories.

Histories hold payloads exactly as Temporal stores them: AES-GCM encrypted by the codec
``connect()`` installs. Recording (the workflow tests' harness) and replaying (CI) must
therefore use the same key. That key is the public ``dev-1`` key from the
``KernelSettings`` defaults: fixed, so a history recorded on one machine replays on any
other, and refused in production (``AesGcmCodec.from_settings`` drops ``dev-`` keys there).
The converter here is built from those defaults on purpose, never from the environment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from autobiz.codec import ENCODING, KEY_ID
from autobiz.settings import Environment, KernelSettings, Settings
from autobiz.temporal_client import data_converter

HISTORIES = Path(__file__).resolve().parent / "histories"
TEST_KEY_ID = KernelSettings().codec_active_key


def replay_settings() -> Settings:
    """Settings with the default (test) codec keys, whatever the environment says."""
    return Settings(env=Environment.TEST, kernel=KernelSettings())


def replay_converter() -> DataConverter:
    """The converter ``connect()`` builds, with the fixed test key."""
    return data_converter(replay_settings())


def history_files() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def load_history(path: Path) -> WorkflowHistory:
    """A recorded history, under the workflow id it ran with (the file stem otherwise)."""
    raw = json.loads(path.read_text())
    started = raw["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or path.stem, raw)


def workflow_type(path: Path) -> str:
    raw = json.loads(path.read_text())
    return str(raw["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def payloads(history_json: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """Every payload (``{metadata, data}``) in a history's JSON, with its path."""

    def walk(node: Any, path: list[str]) -> Iterator[tuple[list[str], dict[str, Any]]]:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
                yield path, node
            for key, value in node.items():
                yield from walk(value, [*path, key])
        elif isinstance(node, list):
            for value in node:
                yield from walk(value, path)

    yield from walk(history_json, [])


def _meta(payload: dict[str, Any], key: str) -> str:
    return base64.b64decode(payload["metadata"].get(key, "")).decode()


def _patch_marker(path: list[str]) -> bool:
    """A ``workflow.patched`` marker's data: the SDK writes the patch id there in clear
    (no business data; the server never sees anything else of the run readable)."""
    return "markerRecordedEventAttributes" in path and "patch-data" in path


# What the SDK writes in clear in a local activity's marker (``details.data``): which
# activity, which attempt, when; its result is a payload of its own, encrypted.
_LOCAL_MARKER_FIELDS = frozenset(
    {"seq", "attempt", "activity_id", "activity_type", "complete_time", "backoff"}
    | {"original_schedule_time", "activation_index"}
)


def _local_activity_marker(path: list[str], payload: dict[str, Any]) -> bool:
    if "markerRecordedEventAttributes" not in path or path[-2:] != ["data", "payloads"]:
        return False
    try:
        fields = json.loads(base64.b64decode(payload.get("data", "")))
    except ValueError:
        return False
    return isinstance(fields, dict) and set(fields) <= _LOCAL_MARKER_FIELDS


def foreign_payloads(history_json: dict[str, Any]) -> list[str]:
    """Problems that would make a history unusable or unsafe to commit: a payload under
    another key than the test key, or a readable payload other than a search attribute
    (those are indexed by the server and never encrypted), a patch id or a local
    activity marker's bookkeeping."""
    problems: list[str] = []
    for path, payload in payloads(history_json):
        encoding = _meta(payload, "encoding")
        where = "/".join(path) or "<root>"
        if encoding == ENCODING.decode():
            key_id = _meta(payload, KEY_ID)
            if key_id != TEST_KEY_ID:
                problems.append(f"{where}: encrypted under {key_id!r}, not {TEST_KEY_ID!r}")
        elif not (
            "searchAttributes" in path
            or _patch_marker(path)
            or _local_activity_marker(path, payload)
        ):
            problems.append(f"{where}: readable payload ({encoding})")
    return problems
