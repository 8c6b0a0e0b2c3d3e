"""`autobiz temporal setup` where it must refuse: a key registered with another type is
reported, never changed; an unreachable server is TEMPORAL_UNREACHABLE after the wait,
one line and no traceback. (The registering itself: test_compose_services.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from autobiz.errors import AutobizError, ExitCode
from autobiz.temporal_setup import register_search_attributes
from kernel.codes import ErrorCode
from tests.support.stack import free_port

pytestmark = pytest.mark.integration


async def test_a_key_of_another_type_is_refused_and_left_alone(client: Client) -> None:
    with pytest.raises(AutobizError) as caught:
        await register_search_attributes(client, client.namespace, {"TenantId": "Text"})
    assert caught.value.code == ErrorCode.SEARCH_ATTRIBUTES_MISSING
    assert "TenantId is INDEXED_VALUE_TYPE_KEYWORD, AutoBiz needs Text" in caught.value.message
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    assert listed.custom_attributes["TenantId"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD


async def test_registered_keys_of_the_right_type_are_no_change(client: Client) -> None:
    report = await register_search_attributes(client, client.namespace)
    assert report.created == []
    assert report.already_present == ["ApprovalPending", "FlowState", "OrderId", "TenantId"]


def test_an_unreachable_temporal_is_one_error_line_after_the_wait(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOBIZ_", "TEMPORAL_"))}
    env.update(
        AUTOBIZ_HOME=str(tmp_path),
        AUTOBIZ_ENV="test",
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    autobiz = str(Path(sys.executable).parent / "autobiz")
    started = time.monotonic()
    proc = subprocess.run(
        [autobiz, "temporal", "setup", "--wait", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started >= 2
    assert proc.returncode == ExitCode.UNAVAILABLE, proc.stderr
    assert proc.stderr.startswith("error[TEMPORAL_UNREACHABLE]: cannot reach Temporal at")
    assert "Traceback" not in proc.stderr
