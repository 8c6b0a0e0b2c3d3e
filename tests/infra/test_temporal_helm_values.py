"""infra/k8s/temporal-helm-values.yaml (the official Temporal Helm chart) agrees with the
AutoBiz manifests: the namespace the workers use is created at the address they dial,
passwords stay in documented Secrets, the Web UI's OIDC login and codec endpoint match
the codec server, and the hook Job registers the project's search attributes (run here
with the real ``temporal`` CLI against a dev server)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from autobiz.devstack.services import temporal_binary
from autobiz.search_attributes import SEARCH_ATTRIBUTE_TYPES
from tests.infra import k8s_checks as k
from tests.infra.k8s_support import (
    KUBERNETES_VERSION,
    SELF_HOSTED,
    docs_of,
    documented,
    helm_values,
    ingress_to,
    job_env,
    only,
    search_attribute_job,
    web_env,
)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{path}.{key}", inner
            yield from walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from walk(inner, f"{path}[{i}]")


@pytest.mark.unit
def test_the_helm_values_extra_objects_are_valid_kubernetes() -> None:
    for text in helm_values()["extraObjects"]:
        assert "{{" not in text  # the chart runs them through tpl: nothing to expand
        kubernetes_validate.validate(yaml.safe_load(text), KUBERNETES_VERSION, strict=True)


@pytest.mark.unit
def test_the_helm_values_keep_passwords_in_documented_secrets() -> None:
    values = helm_values()
    literal = [p for p, _ in walk(values) if p.rsplit(".", 1)[-1] in ("password", "clientSecret")]
    assert literal == []
    persistence = values["server"]["config"]["persistence"]
    stores = persistence["datastores"]
    assert set(stores) == {persistence["defaultStore"], persistence["visibilityStore"]}
    secrets = documented()
    for store in stores.values():
        sql = store["sql"]
        assert sql["pluginName"].startswith("postgres")
        assert sql["secretKey"] in secrets[sql["existingSecret"]]
    web = values["web"]
    assert "TEMPORAL_AUTH_CLIENT_SECRET" in secrets[web["additionalEnvSecretName"]]
    assert {t["secretName"] for t in web["ingress"]["tls"]} <= set(secrets)


@pytest.mark.unit
def test_the_helm_values_agree_with_the_self_hosted_overlay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chart creates the namespace the workers use, at the address they dial; the UI
    sends its users' tokens to the codec server's host, whose CORS admits the UI."""
    values = helm_values()
    docs = docs_of(SELF_HOSTED)
    worker_env = k.literal_env(docs, only(docs, "worker"))
    created = [n["name"] for n in values["server"]["config"]["namespaces"]["namespace"]]
    assert values["server"]["config"]["namespaces"]["create"] is True
    assert worker_env["TEMPORAL_NAMESPACE"] in created
    job = job_env(search_attribute_job())
    assert job["NAMESPACE"] == worker_env["TEMPORAL_NAMESPACE"]
    service, _, port = job["TEMPORAL_ADDRESS"].partition(":")
    assert worker_env["TEMPORAL_ADDRESS"] == f"{service}.temporal.svc:{port}"

    ui = web_env()
    assert ui["TEMPORAL_AUTH_ENABLED"] == "true" and ui["TEMPORAL_AUTH_TYPE"] == "oidc"
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"
    endpoint = urlparse(ui["TEMPORAL_CODEC_ENDPOINT"])
    codec_ingress, backends = ingress_to(docs, "codec-server")
    assert endpoint.scheme == "https" and endpoint.path in ("", "/")
    assert {host for host, _, _ in backends} == {endpoint.hostname}
    assert endpoint.hostname in {h for t in codec_ingress["spec"]["tls"] for h in t["hosts"]}
    origin = f"https://{values['web']['ingress']['hosts'][0]}"
    assert ui["TEMPORAL_AUTH_CALLBACK_URL"].startswith(origin + "/")
    codec = only(docs, "codec-server")
    settings = k.effective_settings(k.literal_env(docs, codec), monkeypatch)
    assert settings.kernel.codec_server_cors_origins == [origin]


@pytest.mark.unit
def test_the_search_attribute_job_registers_the_projects_attributes() -> None:
    pairs = job_env(search_attribute_job())["SEARCH_ATTRIBUTES"].split()
    assert dict(p.split("=", 1) for p in pairs) == SEARCH_ATTRIBUTE_TYPES


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.integration
async def test_the_search_attribute_job_works_against_a_real_server() -> None:
    """The hook Job's script, run with the real `temporal` CLI against a dev server that
    has the namespace but no attributes: it registers them, and a second run (the next
    `helm upgrade`) changes nothing and succeeds."""
    job = search_attribute_job()
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = job_env(job)
    server = await WorkflowEnvironment.start_local(
        namespace=env["NAMESPACE"],
        dev_server_existing_path=temporal_binary(),
        dev_server_log_level="error",
    )
    try:
        env["TEMPORAL_ADDRESS"] = server.client.service_client.config.target_host
        env["PATH"] = f"{Path(temporal_binary()).parent}:{os.environ['PATH']}"
        env["HOME"] = os.environ.get("HOME", "/tmp")
        argv = [*c["command"], *c["args"]]
        first = await asyncio.to_thread(run, argv, env)
        assert first.returncode == 0, first.stderr
        listed = await server.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=env["NAMESPACE"])
        )
        kinds = {
            name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_")
            for name, kind in listed.custom_attributes.items()
        }
        expected = {n: t.upper() for n, t in SEARCH_ATTRIBUTE_TYPES.items()}
        assert {n: kinds.get(n) for n in expected} == expected
        again = await asyncio.to_thread(run, argv, env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already registered") == len(expected)
    finally:
        await server.shutdown()
