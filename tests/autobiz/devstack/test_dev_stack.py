"""`autobiz dev up / status / down` as a user runs them, in a temporary home on free ports."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import yaml
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from autobiz.search_attributes import FLOW_STATE, TENANT_ID
from tests.support.stack import autobiz

pytestmark = pytest.mark.e2e


def env_bind(env: dict[str, str]) -> str:
    return env["AUTOBIZ_WORKER__METRICS_BIND"]


def _stack_processes(home: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(home in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@workflow.defn(sandboxed=False)
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        workflow.upsert_search_attributes([FLOW_STATE.value_set("done")])
        return text.upper()


async def test_up_status_down(stack_env: dict[str, str]) -> None:
    up = autobiz(stack_env, "dev", "up")
    assert "Temporal Web UI" in up.stdout

    status = json.loads(autobiz(stack_env, "dev", "status", "--json").stdout)
    by_name = {s["name"]: s for s in status["services"]}
    assert by_name["temporal"]["state"] == "running"
    assert by_name["postgres"]["state"] == "running"
    assert by_name["postgres"]["details"]["embedded"] is True
    assert by_name["sandbox"]["state"] == "running"
    assert by_name["ingress"]["state"] == "running"
    assert by_name["worker"]["state"] == "running"
    assert by_name["worker"]["details"]["config_dir"] == str(Path.cwd() / "config")
    ingress_url = f"http://127.0.0.1:{stack_env['AUTOBIZ_INGRESS__PORT']}"
    async with httpx.AsyncClient(base_url=ingress_url, timeout=10) as http:
        metrics = await http.get(f"http://{env_bind(stack_env)}/metrics")
        assert metrics.status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        # An unsigned webhook is refused by the running ingress.
        assert (await http.post("/webhooks/stripe", content=b"{}")).status_code == 401
    assert status["home"] == stack_env["AUTOBIZ_HOME"]
    pids = {s["name"]: s["pid"] for s in status["services"] if s["pid"]}
    assert all(psutil.pid_exists(p) for p in pids.values())
    temporal_port = stack_env["AUTOBIZ_TEMPORAL__PORT"]
    assert by_name["temporal"]["address"] == f"127.0.0.1:{temporal_port}"
    assert f":{stack_env['AUTOBIZ_TEMPORAL__UI_PORT']}/" in by_name["temporal"]["url"]

    # The Web UI is up and shows the namespace with our search attributes.
    ui = f"http://127.0.0.1:{stack_env['AUTOBIZ_TEMPORAL__UI_PORT']}"
    async with httpx.AsyncClient(base_url=ui, timeout=10) as http:
        attrs = (await http.get("/api/v1/namespaces/default/search-attributes")).json()
    assert attrs["customAttributes"] == {
        "ApprovalPending": "INDEXED_VALUE_TYPE_BOOL",
        "FlowState": "INDEXED_VALUE_TYPE_KEYWORD",
        "OrderId": "INDEXED_VALUE_TYPE_KEYWORD",
        "TenantId": "INDEXED_VALUE_TYPE_KEYWORD",
    }

    # The UI decodes through the stack's codec server (auth none, on loopback), which
    # admits the UI's origin.
    codec = f"http://127.0.0.1:{stack_env['AUTOBIZ_KERNEL__CODEC_SERVER_PORT']}"
    assert by_name["codec"]["state"] == "running"
    assert by_name["codec"]["details"] == {"auth": "none", "endpoint": codec}
    assert by_name["temporal"]["details"]["ui_codec_endpoint"] == codec
    async with httpx.AsyncClient(timeout=10) as http:
        ui_settings = (await http.get(f"{ui}/api/v1/settings")).json()
        preflight = await http.options(
            f"{codec}/decode",
            headers={
                "Origin": ui,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
    assert ui_settings["Codec"]["Endpoint"] == codec
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ui

    # Twice is harmless: same processes, nothing new started.
    autobiz(stack_env, "dev", "up")
    again = json.loads(autobiz(stack_env, "dev", "status", "--json").stdout)
    assert {s["name"]: s["pid"] for s in again["services"] if s["pid"]} == pids

    # A workflow against the dev server, with our search attributes.
    client = await Client.connect(f"127.0.0.1:{temporal_port}")
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[EchoWorkflow]):
        result = await client.execute_workflow(
            EchoWorkflow.run,
            "hello",
            id=f"echo-{uuid.uuid4()}",
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, "demo-shop")]),
            execution_timeout=timedelta(seconds=60),
        )
    assert result == "HELLO"

    # Every tenant has provider credentials of its own, private to the stack's user.
    secrets_file = Path(stack_env["AUTOBIZ_HOME"]) / "secrets" / "tenants.yaml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert "demo-shop" in yaml.safe_load(secrets_file.read_text())

    # A query against the database, as the application role, under RLS.
    pg_port = stack_env["AUTOBIZ_POSTGRES__PORT"]
    # `dev up` created the configured tenant (config/demo-shop.yaml); the app role sees
    # it only as that tenant.
    with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=postgres dbname=autobiz") as conn:
        assert conn.execute("SELECT tenant_id FROM tenants").fetchall() == [("demo-shop",)]
        conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ('other-shop', 'Other')")
    with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=autobiz_app dbname=autobiz") as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)
        conn.execute("SELECT set_config('app.tenant_id', 'demo-shop', true)")
        assert conn.execute("SELECT name FROM tenants").fetchall() == [("Demo Print Shop",)]

    down = autobiz(stack_env, "dev", "down", "--json")
    assert sorted(json.loads(down.stdout)["stopped"]) == sorted(pids)
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids.values()
    )
    assert _stack_processes(stack_env["AUTOBIZ_HOME"]) == []
    after = json.loads(autobiz(stack_env, "dev", "status", "--json").stdout)
    assert {s["state"] for s in after["services"]} == {"stopped"}

    # A dev server started without the codec endpoint (before the stack had a codec
    # server) is restarted with it; state persisted under the home: a restart sees the
    # same database.
    old = _old_temporal(stack_env)
    up_again = autobiz(stack_env, "dev", "up")
    assert "restarting temporal" in up_again.stdout
    status = json.loads(autobiz(stack_env, "dev", "status", "--json").stdout)
    temporal = {s["name"]: s for s in status["services"]}["temporal"]
    assert temporal["pid"] != old and temporal["details"]["ui_codec_endpoint"] == codec
    with psycopg.connect(f"host=127.0.0.1 port={pg_port} user=postgres dbname=autobiz") as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (2,)


def _old_temporal(env: dict[str, str]) -> int:
    """The stack's dev server started as the stack started it before it had a codec
    server (no ``--ui-codec-endpoint``); its pid."""
    code = (
        "from autobiz.devstack.process import PidFiles\n"
        "from autobiz.devstack.services import TemporalDevServer\n"
        "from autobiz.settings import Settings\n"
        "s = Settings()\n"
        "print(TemporalDevServer(s, PidFiles(s.home_dir / 'run')).start().pid, flush=True)\n"
        # Leave without interpreter finalisation: an extension's thread tearing down
        # then crashed this helper once (PyGILState_Release) after the server was up.
        "import os; os._exit(0)\n"
    )
    started = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    return int(started.stdout.split()[-1])


def test_port_taken_gives_a_clear_error_and_starts_nothing(stack_env: dict[str, str]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(stack_env["AUTOBIZ_TEMPORAL__UI_PORT"])))
        blocker.listen()
        result = autobiz(stack_env, "dev", "up", check=False)
    assert result.returncode == 2
    assert "error[PORT_IN_USE]" in result.stderr
    assert stack_env["AUTOBIZ_TEMPORAL__UI_PORT"] in result.stderr
    assert "AUTOBIZ_TEMPORAL__UI_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert _stack_processes(stack_env["AUTOBIZ_HOME"]) == []


def test_codec_port_taken_or_unsafe_codec_settings_start_nothing(
    stack_env: dict[str, str],
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(stack_env["AUTOBIZ_KERNEL__CODEC_SERVER_PORT"])))
        blocker.listen()
        taken = autobiz(stack_env, "dev", "up", check=False)
    assert taken.returncode == 2 and "error[PORT_IN_USE]" in taken.stderr
    assert "AUTOBIZ_KERNEL__CODEC_SERVER_PORT" in taken.stderr
    # The UI's codec server open to the network: refused before anything starts.
    unsafe = {**stack_env, "AUTOBIZ_KERNEL__CODEC_SERVER_HOST": "0.0.0.0"}  # noqa: S104
    refused = autobiz(unsafe, "dev", "up", check=False)
    assert refused.returncode == 2 and "error[CODEC_SERVER_AUTH_UNSAFE]" in refused.stderr
    assert "Traceback" not in taken.stderr + refused.stderr
    assert _stack_processes(stack_env["AUTOBIZ_HOME"]) == []


def test_down_stops_only_what_it_started(stack_env: dict[str, str], tmp_path: Path) -> None:
    """A pid file pointing at someone else's process (pid reuse) is never signalled."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = Path(stack_env["AUTOBIZ_HOME"]) / "run"
        run_dir.mkdir(parents=True)
        (run_dir / "temporal.json").write_text(
            json.dumps(
                {
                    "name": "temporal",
                    "pid": bystander.pid,
                    "create_time": 12345.0,
                    "command": ["temporal"],
                    "log_file": "x",
                    "info": {},
                }
            )
        )
        result = json.loads(autobiz(stack_env, "dev", "down", "--json").stdout)
        assert result["stopped"] == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
