"""Replay every recorded history against the current workflow code (DESIGN §4).

A change to a workflow that alters the commands it issues for an existing history fails
here, before it can break runs in flight; such a change needs ``workflow.patched`` (or a
re-recorded history when no run of the old shape can exist, see README.md).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.replay.changed_workflow import OrderFulfillWithExtraTimer
from tests.replay.support import (
    foreign_payloads,
    history_files,
    load_history,
    replay_converter,
    workflow_type,
)
from workers.worker import WORKFLOWS
from workflows.ids import ORDER_FULFILL

pytestmark = pytest.mark.unit

HISTORIES = history_files()


def _name(cls: type) -> str:
    defn = workflow._Definition.from_class(cls)
    assert defn is not None and defn.name is not None, f"{cls.__name__} is not a workflow"
    return defn.name


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=replay_converter())
    result = await replayer.replay_workflow(load_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_every_workflow_type_has_a_history() -> None:
    recorded = {workflow_type(p) for p in HISTORIES}
    missing = sorted({_name(cls) for cls in WORKFLOWS} - recorded)
    assert not missing, (
        f"no recorded history for {missing}: add maybe_record(...) to a representative test "
        "and run it with AUTOBIZ_RECORD_HISTORIES=1 (tests/replay/README.md)"
    )


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_history_is_encrypted_under_the_test_key(path: Path) -> None:
    """Committed histories hold no readable payload and replay with the fixed key."""
    assert foreign_payloads(json.loads(path.read_text())) == []


def test_a_local_activity_marker_passes_only_with_the_sdks_own_fields() -> None:
    """The SDK's bookkeeping of a local activity is in clear; anything more is refused."""

    def history(fields: dict[str, object]) -> dict[str, object]:
        data = base64.b64encode(json.dumps(fields).encode()).decode()
        plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": data}
        marker = {"markerName": "core_local_activity", "details": {"data": {"payloads": [plain]}}}
        return {"events": [{"markerRecordedEventAttributes": marker}]}

    sdk = {"seq": 9, "attempt": 1, "activity_id": "9", "activity_type": "kernel.persist_trace"}
    assert foreign_payloads(history(sdk)) == []
    leaked = foreign_payloads(history({**sdk, "customer_email": "a@example.com"}))
    assert leaked == [
        "events/markerRecordedEventAttributes/details/data/payloads: readable payload (json/plain)"
    ]


async def test_a_changed_workflow_fails_replay() -> None:
    """The suite can fail: a changed OrderFulfill does not replay the recorded run."""
    recorded = [p for p in HISTORIES if workflow_type(p) == ORDER_FULFILL.type]
    assert recorded, "no OrderFulfill history recorded"
    history = load_history(recorded[0])
    others = [cls for cls in WORKFLOWS if _name(cls) != ORDER_FULFILL.type]
    changed = Replayer(
        workflows=[OrderFulfillWithExtraTimer, *others], data_converter=replay_converter()
    )
    with pytest.raises(NondeterminismError):
        await changed.replay_workflow(history)
    # The same history and the real class: no failure (the change is what breaks it).
    real = Replayer(workflows=list(WORKFLOWS), data_converter=replay_converter())
    assert (await real.replay_workflow(history)).replay_failure is None
