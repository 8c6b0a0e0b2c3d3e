"""Each AutoBiz service of infra/compose.yaml, run as compose would run it, minus Docker.

For every service built from infra/Dockerfile: the argv is the image's ENTRYPOINT plus
the service's ``command``; the environment is the image's ENV plus the service's
``environment``, interpolated from an env file made from ``infra/.env.example`` the way
an operator fills it in; the container's files are the service's mounts, laid out under
a temporary root (an absolute path in the environment is taken relative to it). The
compose hostnames are mapped to the local stack: ``postgres`` to a database on the test
PostgreSQL whose roles were made by infra/postgres-init/ (run as the image would run
it), ``temporal`` to a fresh Temporal dev server with no search attributes, the
providers' public APIs to a closed loopback port. Then each one must serve: migrate and
the search-attribute job exit 0 and did their work, the worker polls its task queue, the
ingress accepts a signed webhook, the codec server decodes, and each service's compose
healthcheck command (and the image's HEALTHCHECK) passes against the running process.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from autobiz.devstack.services import temporal_binary
from autobiz.search_attributes import SEARCH_ATTRIBUTE_TYPES
from tests.infra import compose
from tests.infra.compose import ENV_EXAMPLE, INFRA
from tests.ingress.support import dumps, stripe_event, stripe_header
from tests.support.postgres import provide_server
from tests.support.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OURS = ("migrate", "temporal-setup", "worker", "ingress", "codec-server")
LONG_RUNNING = ("worker", "ingress", "codec-server")
TENANT = "demo-shop"  # the tenant of ../config (AUTOBIZ_CONFIG_HOST_DIR in the example)
STRIPE_SECRET = "whsec_" + secrets.token_hex(12)


def filled_env_file(path: Path) -> dict[str, str]:
    """``.env.example`` with every REPLACE_ME filled in, as the operator does."""
    env = compose.read_env_file(ENV_EXAMPLE)
    for key, value in env.items():
        if "REPLACE_ME" not in value:
            continue
        fill = (
            base64.b64encode(os.urandom(32)).decode()
            if key == "AUTOBIZ_CODEC_KEYS"
            else secrets.token_urlsafe(24)
        )
        env[key] = value.replace("REPLACE_ME", fill)
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return compose.read_env_file(path)


def filled_tenant_secrets(path: Path) -> None:
    """``secrets/tenants.example.yaml`` with values of the test (the Stripe webhook
    secret the test signs with)."""
    data = yaml.safe_load((INFRA / "secrets" / "tenants.example.yaml").read_text())
    for values in data.values():
        for name, value in values.items():
            if value == "REPLACE_ME":
                values[name] = f"test_{name}_{secrets.token_hex(6)}"
        values["stripe_webhook_secret"] = STRIPE_SECRET
    path.write_text(yaml.safe_dump(data))


@dataclass
class LocalStack:
    """Where the compose hostnames point in this test, and the values behind them."""

    pg_host: str
    pg_port: int
    superuser: str
    database: str
    owner: str
    temporal: str
    ports: dict[str, int]  # container port -> free local port
    closed_port: int
    root: Path  # the containers' filesystem root
    mount_sources: dict[Path, Path]  # a repository path -> the one the test uses instead

    def superuser_dsn(self, dbname: str) -> str:
        return make_conninfo(
            host=self.pg_host, port=self.pg_port, user=self.superuser, dbname=dbname
        )

    def rewrite(self, value: str) -> str:
        value = value.replace("@postgres:5432/autobiz", f"@{self.pg_host}:{self.pg_port}/")
        value = re.sub(
            rf"@{re.escape(self.pg_host)}:{self.pg_port}/$",
            f"@{self.pg_host}:{self.pg_port}/{self.database}",
            value,
        )
        value = value.replace("postgresql://autobiz_owner:", f"postgresql://{self.owner}:")
        value = value.replace("temporal:7233", self.temporal)
        value = re.sub(r"https://[^/\s\"]+", f"http://127.0.0.1:{self.closed_port}", value)
        for inside, outside in self.ports.items():
            value = re.sub(rf"(^|:){inside}$", rf"\g<1>{outside}", value)
        if value.startswith("/"):
            value = str(self.root) + value
        return value


def container_env(stack: LocalStack, image: compose.Image, env: dict[str, str]) -> dict[str, str]:
    """The process environment of a container: image ENV, then the service's."""
    merged = {k: v for k, v in image.env.items() if k != "PATH"}
    merged.update(env)
    out = {k: stack.rewrite(v) for k, v in merged.items()}
    out.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        HOME=str(stack.root / "var" / "lib" / "autobiz"),
        LANG="C.UTF-8",
    )
    return out


def lay_out_mounts(stack: LocalStack, model: dict[str, Any], name: str) -> None:
    for mount in compose.mounts(model, name):
        target = stack.root / mount.target.lstrip("/")
        source = stack.mount_sources.get(mount.source, mount.source)
        assert source.exists(), f"{name}: mount source {source} is missing"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(source)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    healthcheck: list[str] | None

    def run(self, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout
        )

    def check(self, argv: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        test = argv or self.healthcheck
        assert test is not None
        cmd = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
        return subprocess.run(cmd, env=self.env, cwd=self.cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = filled_env_file(tmp_path_factory.mktemp("env") / ".env")
    return {"env": env, **compose.load(env)}


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server as bare as a fresh self-hosted one: no custom search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), dev_server_log_level="error"
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
def stack(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    server, _, cleanup = provide_server()
    params = conninfo_to_dict(server)
    suffix = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("container-root")
    (root / "var" / "lib" / "autobiz").mkdir(parents=True)
    secrets_file = tmp_path_factory.mktemp("operator") / "tenants.yaml"
    filled_tenant_secrets(secrets_file)
    local = LocalStack(
        pg_host=str(params.get("host", "127.0.0.1")),
        pg_port=int(str(params.get("port", 5432))),
        superuser=str(params.get("user", "postgres")),
        database=f"autobiz_compose_{suffix}",
        owner=f"autobiz_owner_{suffix}",
        temporal=temporal.client.service_client.config.target_host,
        ports={"8780": free_port(), "9464": free_port(), "8235": free_port()},
        closed_port=free_port(),
        root=root,
        mount_sources={INFRA / "secrets" / "tenants.yaml": secrets_file},
    )
    try:
        yield local
    finally:
        with psycopg.connect(local.superuser_dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(local.database)
                )
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(local.owner)))
        cleanup()


def service(stack: LocalStack, model: dict[str, Any], name: str) -> Service:
    spec = model["services"][name]
    assert compose.builds_our_image(spec), f"{name} is not built from infra/Dockerfile"
    image = compose.final_image()
    lay_out_mounts(stack, model, name)
    argv = compose.container_argv(image, spec)
    assert argv[0] == "autobiz"
    argv[0] = str(Path(sys.executable).parent / "autobiz")  # the image's PATH has it first
    workdir = stack.root / (image.workdir or "/").lstrip("/")
    check = spec.get("healthcheck") or {}
    test = None if check.get("disable") else check.get("test")
    return Service(
        name, argv, container_env(stack, image, compose.environment(spec)), workdir, test
    )


def test_every_autobiz_service_is_built_from_the_image(model: dict[str, Any]) -> None:
    ours = sorted(n for n, s in model["services"].items() if compose.builds_our_image(s))
    assert ours == sorted(OURS)


def test_the_init_script_makes_a_non_superuser_owner_and_an_app_role_under_rls(
    stack: LocalStack, model: dict[str, Any]
) -> None:
    """infra/postgres-init/ as the postgres image runs it: an executable ``*.sh`` with
    the container's environment and POSTGRES_USER (the image's default: postgres)."""
    spec = model["services"]["postgres"]
    init = next(m for m in compose.mounts(model, "postgres") if "initdb" in m.target)
    scripts = sorted(p for p in init.source.iterdir() if p.suffix in (".sh", ".sql"))
    assert scripts and all(os.access(p, os.X_OK) for p in scripts if p.suffix == ".sh")
    env = {k: v for k, v in compose.environment(spec).items()}
    env["AUTOBIZ_DB"] = stack.database if env["AUTOBIZ_DB"] == "autobiz" else env["AUTOBIZ_DB"]
    env["AUTOBIZ_OWNER_ROLE"] = env["AUTOBIZ_OWNER_ROLE"].replace("autobiz_owner", stack.owner)
    env.update(
        POSTGRES_USER=stack.superuser,
        PGHOST=stack.pg_host,
        PGPORT=str(stack.pg_port),
        PATH=os.environ["PATH"],
    )
    assert shutil.which("psql"), "the init script needs psql (as in the postgres image)"
    for _ in range(2):  # idempotent
        for script in scripts:
            proc = subprocess.run([str(script)], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
    with psycopg.connect(stack.superuser_dsn("postgres")) as conn:
        roles = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT rolname, rolsuper, rolbypassrls, rolcreatedb, rolcanlogin FROM pg_roles"
                " WHERE rolname IN (%s, 'autobiz_app')",
                (stack.owner,),
            )
        }
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            (stack.database,),
        ).fetchone()
    # (super, bypassrls, createdb, login): the owner is the named cross-tenant path
    # (Database.admin), no superuser; the application role never gets past RLS.
    assert roles[stack.owner] == (False, True, False, True)
    assert roles["autobiz_app"] == (False, False, False, True)
    assert owner == (stack.owner,)


def test_migrate_creates_the_schema_owned_by_the_owner_and_the_tenants(
    stack: LocalStack, model: dict[str, Any]
) -> None:
    job = service(stack, model, "migrate")
    assert job.healthcheck is None
    proc = job.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tenants: " in proc.stdout and TENANT in proc.stdout
    again = job.run()  # restart: on-failure, and every deploy runs it: idempotent
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    with psycopg.connect(stack.superuser_dsn(stack.database)) as conn:
        tables = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity,"
            " c.relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
        tenants = conn.execute("SELECT tenant_id FROM tenants").fetchall()
    assert len(tables) > 10
    assert {t[1] for t in tables} == {stack.owner}
    by_name = {t[0]: t for t in tables}
    assert by_name["order_state"][2:] == (True, True)  # RLS, forced on the owner too
    assert tenants == [(TENANT,)]


async def _search_attributes(client: Client) -> set[str]:
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return set(resp.custom_attributes)


async def test_the_setup_job_registers_the_search_attributes_once(
    stack: LocalStack, model: dict[str, Any], temporal: WorkflowEnvironment
) -> None:
    assert not set(SEARCH_ATTRIBUTE_TYPES) & await _search_attributes(temporal.client)
    job = service(stack, model, "temporal-setup")
    first = await asyncio.to_thread(job.run)
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(SEARCH_ATTRIBUTE_TYPES) <= await _search_attributes(temporal.client)
    second = await asyncio.to_thread(job.run)
    assert second.returncode == 0 and "already registered" in second.stdout, second.stderr


@pytest.fixture(scope="module")
def running(stack: LocalStack, model: dict[str, Any]) -> Iterator[dict[str, Service]]:
    """The long-running services, started once their one-shot jobs have run."""
    started: dict[str, tuple[Service, subprocess.Popen[bytes]]] = {}
    logs = stack.root / "logs"
    logs.mkdir(exist_ok=True)
    try:
        for name in LONG_RUNNING:
            svc = service(stack, model, name)
            log = (logs / f"{name}.log").open("wb")
            proc = subprocess.Popen(
                svc.argv, env=svc.env, cwd=svc.cwd, stdout=log, stderr=subprocess.STDOUT
            )
            started[name] = (svc, proc)
        for name, (svc, proc) in started.items():
            _wait_healthy(svc, proc, logs / f"{name}.log")
        yield {name: svc for name, (svc, _) in started.items()}
    finally:
        for _, proc in started.values():
            proc.terminate()
        for _, proc in started.values():
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(svc: Service, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{svc.name} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        check = svc.check()
        if check.returncode == 0:
            return
        last = check.stdout + check.stderr
        time.sleep(0.5)
    pytest.fail(f"{svc.name}'s healthcheck never passed: {last}\n{log.read_text()[-3000:]}")


def test_each_healthcheck_fails_while_its_service_is_down(
    stack: LocalStack, model: dict[str, Any]
) -> None:
    """Before anything listens, every compose healthcheck (and the image's) fails with
    the stable code, so a healthcheck that passes below means the process answered."""
    for name in LONG_RUNNING:
        svc = service(stack, model, name)
        proc = svc.check()
        assert proc.returncode != 0 and "SERVICE_UNHEALTHY" in proc.stderr, (name, proc)
    image_check = compose.final_image().healthcheck
    assert image_check is not None
    down = service(stack, model, "worker").check(["CMD", *image_check])
    assert down.returncode != 0


async def test_the_worker_polls_its_task_queue(
    running: dict[str, Service], temporal: WorkflowEnvironment
) -> None:
    worker = running["worker"]
    queue = worker.env["AUTOBIZ_TEMPORAL__TASK_QUEUE"]
    resp = await temporal.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=temporal.client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    assert resp.pollers, f"no poller on {queue}"
    bind = worker.env["AUTOBIZ_WORKER__METRICS_BIND"]
    async with httpx.AsyncClient() as http:
        metrics = await http.get(f"http://127.0.0.1:{bind.rpartition(':')[2]}/metrics")
    assert metrics.status_code == 200 and "# TYPE" in metrics.text


async def test_the_ingress_accepts_a_signed_webhook(
    running: dict[str, Service], stack: LocalStack
) -> None:
    ingress = running["ingress"]
    base = f"http://127.0.0.1:{ingress.env['AUTOBIZ_INGRESS__PORT']}"
    body = dumps(stripe_event("payment_intent.payment_failed", {"id": "pi_compose"}))
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).status_code == 200
        ok = await http.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": stripe_header(body, STRIPE_SECRET, t=int(time.time()))},
        )
        forged = await http.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": stripe_header(body, "whsec_other", t=int(time.time()))},
        )
    assert ok.status_code == 200, ok.text
    assert forged.status_code == 401
    with psycopg.connect(stack.superuser_dsn(stack.database)) as conn:
        stored = conn.execute("SELECT tenant_id, topic FROM event_store").fetchall()
    assert stored == [(TENANT, "payment_intent.payment_failed")]


async def test_the_codec_server_decodes_for_the_token_holder(
    running: dict[str, Service],
) -> None:
    codec = running["codec-server"]
    base = f"http://127.0.0.1:{codec.env['AUTOBIZ_KERNEL__CODEC_SERVER_PORT']}"
    auth = {"Authorization": f"Bearer {codec.env['AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN']}"}
    plain = {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(b'{"order": "1001"}').decode(),
    }
    async with httpx.AsyncClient(base_url=base) as http:
        encoded = await http.post("/encode", json={"payloads": [plain]}, headers=auth)
        assert encoded.status_code == 200, encoded.text
        sealed = encoded.json()["payloads"][0]
        assert base64.b64decode(sealed["data"]) != b'{"order": "1001"}'
        decoded = await http.post("/decode", json={"payloads": [sealed]}, headers=auth)
        anonymous = await http.post("/decode", json={"payloads": [sealed]})
    assert decoded.status_code == 200, decoded.text
    assert json.loads(base64.b64decode(decoded.json()["payloads"][0]["data"])) == {"order": "1001"}
    assert anonymous.status_code == 401


def test_the_healthchecks_pass_against_the_running_services(
    running: dict[str, Service],
) -> None:
    image_check = compose.final_image().healthcheck
    assert image_check is not None
    for name, svc in running.items():
        proc = svc.check()
        assert proc.returncode == 0 and name in proc.stdout, (name, proc.stdout, proc.stderr)
        # The image's own HEALTHCHECK (no role named) passes in each container too.
        generic = svc.check(["CMD", *image_check])
        assert generic.returncode == 0, (name, generic.stderr)


def test_the_infrastructure_healthchecks_pass_against_the_local_stack(
    stack: LocalStack, model: dict[str, Any]
) -> None:
    """The healthcheck commands of `temporal` and `postgres`, with the tools those images
    bring (the `temporal` CLI, pg_isready) and their hosts mapped to the local stack."""
    services = model["services"]
    temporal = services["temporal"]["healthcheck"]["test"]
    assert temporal[0] == "CMD"
    argv = [stack.rewrite(word) for word in temporal[1:]]
    argv[0] = temporal_binary()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "SERVING" in proc.stdout, proc.stdout + proc.stderr
    postgres = services["postgres"]["healthcheck"]["test"]
    assert postgres[:2] == ["CMD", "pg_isready"]
    argv = [w if w != "autobiz" else stack.database for w in postgres[1:]]
    argv += ["--host", stack.pg_host, "--port", str(stack.pg_port)]
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
