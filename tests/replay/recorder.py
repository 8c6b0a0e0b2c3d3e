"""Records a finished workflow's history for the replay suite.

Tests that drive a representative run call ``maybe_record`` at the end; with
``AUTOBIZ_RECORD_HISTORIES=1`` the history is written to ``tests/replay/histories/NAME.json``
(re-record after an intended change to a workflow's commands), otherwise nothing happens.
See ``tests/replay/README.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from temporalio.client import Client

from tests.replay.support import HISTORIES, TEST_KEY_ID, foreign_payloads


def recording() -> bool:
    return os.environ.get("AUTOBIZ_RECORD_HISTORIES") == "1"


async def maybe_record(client: Client, workflow_id: str, name: str) -> Path | None:
    """Write the workflow's history (it must have closed) when recording is on.

    Refuses a history the replay suite could not read in CI (payloads under another codec
    key than the fixed test key ``dev-1``) or should not commit (readable payloads).
    """
    if not recording():
        return None
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    text = history.to_json()
    problems = foreign_payloads(json.loads(text))
    if problems:
        raise AssertionError(
            f"history {name} cannot be committed (record without AUTOBIZ_KERNEL__CODEC_* set; "
            f"the suite replays with the test key {TEST_KEY_ID!r}): " + "; ".join(problems[:5])
        )
    HISTORIES.mkdir(parents=True, exist_ok=True)
    path = HISTORIES / f"{name}.json"
    path.write_text(text)
    return path
