"""infra/k8s renders, is valid Kubernetes (strict: unknown fields fail) and agrees with
the code: real ``autobiz`` commands and settings, probes on the ports the processes
listen on, BusinessConfigs that compile, every Secret documented, a worker grace period
longer than its shutdown grace. Offline: ``kubectl kustomize`` and kubernetes-validate's
bundled schemas."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from autobiz.business_config import load_configs
from autobiz.closeout_links import PATH_PREFIX
from autobiz.codec import AesGcmCodec
from autobiz.codec_server_auth import build_authoriser
from autobiz.devstack.services import temporal_binary
from autobiz.errors import ConfigError
from autobiz.providers.tenant_clients import CREDENTIALS, OPTIONAL
from autobiz.search_attributes import SEARCH_ATTRIBUTE_TYPES
from autobiz.secrets import FileSecretsBackend
from autobiz.settings import CodecServerAuth, Settings, WorkerSettings
from autobiz.temporal_client import resolve
from ingress.openapi import webhook_path
from ingress.tenants import Source, webhook_configs_from_credentials
from kernel.codes import ErrorCode
from kernel.compiler import compile_text
from tests.infra import fake_kube_api
from tests.infra import k8s_checks as k
from tests.infra.k8s_checks import Doc
from tests.support import doc_commands as doc_cmds

pytestmark = pytest.mark.unit

# A version whose schemas kubernetes-validate ships (and the kubectl of the CI image).
KUBERNETES_VERSION = "1.32.0"
DOCS = k.ROOT / "docs" / "operations.md"
SELF_HOSTED = k.K8S / "overlays" / "self-hosted"
BUILDS = k.kustomizations()
IDS = [str(p.relative_to(k.K8S)) for p in BUILDS]
# Where each long-running role listens, by the settings it runs with.
LISTENS = {
    "worker": lambda s: s.worker.metrics_bind,
    "ingress": lambda s: f"{s.ingress.host}:{s.ingress.port}",
    "codec-server": lambda s: f"{s.kernel.codec_server_host}:{s.kernel.codec_server_port}",
}


@cache
def rendered(directory: Path) -> tuple[Doc, ...]:
    return tuple(k.render(directory))


def docs_of(directory: Path) -> list[Doc]:
    return copy.deepcopy(list(rendered(directory)))


def deploy_section() -> str:
    text = DOCS.read_text()
    start = text.index("\n## Deploy")
    end = text.find("\n## ", start + 3)
    return text[start : end if end != -1 else len(text)]


def documented() -> dict[str, set[str]]:
    return k.documented_secrets(deploy_section())


def role(c: k.Container) -> str:
    return c.argv[1] if len(c.argv) > 1 else ""


def only(docs: list[Doc], role_name: str) -> k.Container:
    (c,) = [c for c in k.containers(docs) if role(c) == role_name]
    return c


build = pytest.mark.parametrize("directory", BUILDS, ids=IDS)


def test_there_is_a_base_and_a_production_overlay() -> None:
    assert {
        "base",
        "overlays/production",
        "overlays/production-mtls",
        "overlays/self-hosted",
    } <= set(IDS)


@build
def test_every_resource_is_valid_kubernetes(directory: Path) -> None:
    docs = docs_of(directory)
    assert {"Deployment", "Job", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= {
        d["kind"] for d in docs
    }
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_refuses_an_unknown_field() -> None:
    docs = docs_of(k.K8S / "base")
    worker = only(docs, "worker")
    worker.spec["comand"] = worker.spec.pop("command")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker.workload, KUBERNETES_VERSION, strict=True)


@build
def test_every_container_runs_a_real_autobiz_command(directory: Path) -> None:
    docs = docs_of(directory)
    roles = sorted(role(c) for c in k.containers(docs))
    extra = ["temporal"] if directory == SELF_HOSTED else []  # its search-attribute Job
    assert roles == sorted(["codec-server", "db", "ingress", "worker", *extra])
    assert [p for c in k.containers(docs) for p in k.command_problems(c.argv)] == []
    assert only(docs, "db").argv == ["autobiz", "db", "migrate", "--sync-tenants"]
    if extra:
        assert only(docs, "temporal").argv[:3] == ["autobiz", "temporal", "setup"]


def test_the_command_check_sees_a_wrong_command() -> None:
    assert k.command_problems(["autobiz", "wrker"]) != []
    assert k.command_problems(["autobiz", "db"]) != []
    assert k.command_problems(["autobiz", "worker", "--queue", "x"]) != []
    assert k.command_problems(["python", "-m", "autobiz"]) != []
    assert k.command_problems(["autobiz", "worker", "--task-queue", "x"]) == []


@build
def test_every_environment_variable_is_a_real_setting(directory: Path) -> None:
    assert k.env_problems(docs_of(directory)) == []


def test_the_settings_check_sees_a_misspelt_variable() -> None:
    assert k.settings_field_problem("AUTOBIZ_WORKER__METRICS_BIND") is None
    assert k.settings_field_problem("AUTOBIZ_TEMPORAL__ADDRESS") is None  # an alias
    assert k.settings_field_problem("AUTOBIZ_SECRET__EXAMPLE_SHOP__STRIPE_API_KEY") is None
    assert k.settings_field_problem("AUTOBIZ_WORKER__METRICS_BINDING") is not None
    assert k.settings_field_problem("AUTOBIZ_ENV__X") is not None
    assert k.settings_field_problem("AUTOBIZ_CONFIGDIR") is not None
    docs = docs_of(k.K8S / "base")
    only(docs, "worker").spec["env"].append({"name": "AUTOBIZ_WORKER__GRACE", "value": "1"})
    assert k.env_problems(docs) == [
        "Deployment/autobiz-worker:worker: AUTOBIZ_WORKER__GRACE: worker.grace is not a setting"
    ]


@build
def test_processes_listen_where_probed_and_run_in_production(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings each container gets parse, and put its server on all interfaces at
    a declared container port, the one its probes (and Service) use."""
    docs = docs_of(directory)
    assert k.probe_port_problems(docs) == []
    for c in k.containers(docs):
        settings = k.effective_settings(k.literal_env(docs, c), monkeypatch)
        assert settings.is_production, c.where
        if role(c) not in LISTENS:
            continue
        host, _, port = str(LISTENS[role(c)](settings)).rpartition(":")
        # All interfaces: the kubelet probes, and the Service routes to, the pod IP.
        assert host == "0.0.0.0", f"{c.where} listens on {host}"  # noqa: S104
        ports = k.container_ports(c)
        probed = {ports[p] for _, p in k.probe_ports(c)}
        assert probed == {int(port)}, (c.where, probed, port)
        assert {"readinessProbe", "livenessProbe"} <= {kind for kind, _ in k.probe_ports(c)}


def codec_settings(docs: list[Doc], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The codec server's settings, its token Secret standing in as a value."""
    c = only(docs, "codec-server")
    env = k.literal_env(docs, c)
    if "AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN" in k.env_names(docs, c):
        env["AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN"] = "from-the-secret"
    return k.effective_settings(env, monkeypatch)


@build
def test_the_codec_server_starts_with_its_auth(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auth mode and OIDC settings the manifests give it pass the codec server's own
    start-up check (never ``none`` in production); the Web UI's OIDC login, where there
    is one, is the issuer it checks tokens against."""
    docs = docs_of(directory)
    settings = codec_settings(docs, monkeypatch)
    authoriser = build_authoriser(settings)
    expected = CodecServerAuth.OIDC if directory == SELF_HOSTED else CodecServerAuth.TOKEN
    assert authoriser.mode is expected
    if expected is CodecServerAuth.OIDC:
        ui = web_env()
        assert settings.kernel.codec_server_oidc_issuer == ui["TEMPORAL_AUTH_ISSUER_URL"]
        assert settings.kernel.codec_server_oidc_audience == ui["TEMPORAL_AUTH_CLIENT_ID"]


def test_the_codec_check_refuses_an_open_codec_server(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = docs_of(k.K8S / "overlays" / "production")
    (config,) = [
        d for d in docs if d["kind"] == "ConfigMap" and "codec-server" in d["metadata"]["name"]
    ]
    config["data"]["AUTOBIZ_KERNEL__CODEC_SERVER_AUTH"] = "none"
    with pytest.raises(ConfigError) as refused:
        build_authoriser(codec_settings(docs, monkeypatch))
    assert refused.value.code is ErrorCode.CODEC_SERVER_AUTH_UNSAFE


def test_the_probe_check_sees_a_wrong_port() -> None:
    docs = docs_of(k.K8S / "base")
    only(docs, "ingress").spec["readinessProbe"]["httpGet"]["port"] = "web"
    assert k.probe_port_problems(docs) == [
        "Deployment/autobiz-ingress:ingress: readinessProbe port 'web' is no container port"
    ]


@build
def test_the_worker_outlives_its_shutdown_grace(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubelet's SIGKILL comes after the worker's own graceful shutdown (in-flight
    activities, then closing the clients: 10 s of headroom)."""
    docs = docs_of(directory)
    worker = only(docs, "worker")
    grace = k.effective_settings(k.literal_env(docs, worker), monkeypatch)
    shutdown = grace.worker.graceful_shutdown_seconds
    default = WorkerSettings().graceful_shutdown_seconds  # should the setting be dropped
    assert worker.pod["terminationGracePeriodSeconds"] >= max(shutdown, default) + 10


@build
def test_business_configs_compile_with_the_projects_loader(
    directory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker and the migrate Job (``--sync-tenants``) read the same ConfigMap at
    AUTOBIZ_CONFIG_DIR; its files compile, one per tenant, named after it, and the
    settings' default tenant is one of them."""
    docs = docs_of(directory)
    volumes = set()
    for c in (only(docs, "worker"), only(docs, "db")):
        mount = k.mount_of(c, k.literal_env(docs, c)["AUTOBIZ_CONFIG_DIR"])
        assert mount is not None and mount.read_only and "configMap" in mount.volume, c.where
        volumes.add(mount.volume["configMap"]["name"])
    (name,) = volumes
    files = k.config_map_data(docs, name)
    assert files
    for key, text in files.items():
        result = compile_text(text)
        assert result.ok and result.config is not None, (key, result.diagnostics)
        assert key == f"{result.config.tenant}.yaml", key
        (tmp_path / key).write_text(text)
    tenants = sorted(load_configs(tmp_path))
    assert tenants == sorted(Path(key).stem for key in files)
    worker = only(docs, "worker")
    settings = k.effective_settings(k.literal_env(docs, worker), monkeypatch)
    assert settings.ingress.default_tenant in tenants


def test_the_base_carries_the_demo_tenant_unchanged() -> None:
    copy_ = k.K8S / "base" / "business-configs" / "demo-shop.yaml"
    assert copy_.read_text() == (k.ROOT / "config" / "demo-shop.yaml").read_text()


def test_production_replaces_the_demo_tenant_with_the_placeholder() -> None:
    docs = docs_of(k.K8S / "overlays" / "production")
    (configs,) = [
        d for d in docs if d["kind"] == "ConfigMap" and "business-configs" in d["metadata"]["name"]
    ]
    assert list(configs["data"]) == ["example-shop.yaml"]


@build
def test_every_secret_and_config_map_is_generated_or_documented(directory: Path) -> None:
    docs = docs_of(directory)
    refs = k.references(docs)
    assert {name for name, _ in refs["Secret"]} >= {"autobiz-database", "autobiz-codec"}
    assert k.reference_problems(docs, documented()) == []


def test_the_reference_check_sees_an_undocumented_secret() -> None:
    docs = docs_of(k.K8S / "base")
    worker = only(docs, "worker")
    worker.spec["env"].append(
        {"name": "AUTOBIZ_LLM__API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "k"}}}
    )
    (app_url,) = [v for v in worker.spec["env"] if v["name"] == "AUTOBIZ_APP_DATABASE_URL"]
    app_url["valueFrom"]["secretKeyRef"]["key"] = "url"
    assert k.reference_problems(docs, documented()) == [
        "Secret autobiz-database: key url is used but not documented",
        "Secret llm is used but neither generated nor documented",
    ]


@build
def test_files_the_settings_name_are_mounted(directory: Path) -> None:
    """AUTOBIZ_CONFIG_DIR, AUTOBIZ_SECRETS_FILE and the TLS paths lie in mounted volumes
    that hold them; AUTOBIZ_HOME is writable although the root filesystem is not."""
    docs = docs_of(directory)
    keys = documented()
    for c in k.containers(docs):
        env = k.literal_env(docs, c)
        home = k.mount_of(c, env["AUTOBIZ_HOME"])
        assert home is not None and "emptyDir" in home.volume and not home.read_only, c.where
        for name, path in env.items():
            if not name.endswith(("_PATH", "_FILE")):
                continue
            mount = k.mount_of(c, path)
            assert mount is not None, f"{c.where}: {name}={path} is in no volume"
            assert "secret" in mount.volume, (c.where, name)
            relative = str(PurePosixPath(path).relative_to(mount.path))
            assert relative in k.secret_keys(c, mount, keys), f"{c.where}: {name}={path}"


@build
def test_images_are_pinned_and_the_same_for_every_role(directory: Path) -> None:
    docs = docs_of(directory)
    assert k.image_problems(docs) == []
    assert len({c.spec["image"] for c in k.containers(docs) if c.argv[0] == "autobiz"}) == 1


def test_the_image_check_sees_latest_and_untagged() -> None:
    docs = docs_of(k.K8S / "base")
    only(docs, "worker").spec["image"] = "ghcr.io/autobiz/autobiz:latest"
    only(docs, "ingress").spec["image"] = "registry:5000/autobiz"
    only(docs, "codec-server").spec["image"] = "ghcr.io/a/b@sha256:" + "0" * 64
    assert len(k.image_problems(docs)) == 2


@build
def test_the_autoscaler_and_disruption_budget_are_the_workers(directory: Path) -> None:
    docs = docs_of(directory)
    worker = only(docs, "worker").workload
    (hpa,) = k.by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", worker["metadata"]["name"])
    workloads = k.by_kind(docs, "Deployment")
    for pdb in k.by_kind(docs, "PodDisruptionBudget"):
        matched = [
            d for d in workloads if k.selector_matches(pdb["spec"]["selector"], k.pod_labels(d))
        ]
        assert len(matched) == 1, pdb["metadata"]["name"]
        (deployment,) = matched
        assert k.selector_matches(deployment["spec"]["selector"], k.pod_labels(deployment))
        floor = (
            hpa["spec"]["minReplicas"] if deployment is worker else deployment["spec"]["replicas"]
        )
        # A drain can always evict one pod: the budget leaves room below the floor.
        assert pdb["spec"]["minAvailable"] < floor, pdb["metadata"]["name"]
    assert any(
        k.selector_matches(p["spec"]["selector"], k.pod_labels(worker))
        for p in k.by_kind(docs, "PodDisruptionBudget")
    )


def ingress_backends(docs: list[Doc], ingress: Doc) -> list[tuple[str, str, k.Container]]:
    """``(host, path, container)`` per rule path: the container its Service routes to,
    on a port the Service and the container both declare."""
    found = []
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = k.named(docs, "Service", backend["name"])
            assert service is not None, backend
            (port,) = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
            selector = {"matchLabels": service["spec"]["selector"]}
            deployments = k.by_kind(docs, "Deployment")
            (pod,) = [d for d in deployments if k.selector_matches(selector, k.pod_labels(d))]
            (c,) = [c for c in k.containers(docs) if c.workload is pod]
            assert port["targetPort"] in k.container_ports(c), (backend, port)
            found.append((rule["host"], path["path"], c))
    return found


def ingress_to(docs: list[Doc], role_name: str) -> tuple[Doc, list[tuple[str, str, k.Container]]]:
    routed = [(d, ingress_backends(docs, d)) for d in k.by_kind(docs, "Ingress")]
    (match,) = [(d, b) for d, b in routed if {role(c) for _, _, c in b} == {role_name}]
    return match


@build
def test_every_ingress_is_tls_and_reaches_a_declared_port(directory: Path) -> None:
    docs = docs_of(directory)
    ingresses = k.by_kind(docs, "Ingress")
    assert len(ingresses) == 2
    for ingress in ingresses:
        assert ingress["apiVersion"] == "networking.k8s.io/v1"
        tls_hosts = {h for t in ingress["spec"].get("tls", []) for h in t["hosts"]}
        assert {host for host, _, _ in ingress_backends(docs, ingress)} <= tls_hosts


@build
def test_the_public_ingress_reaches_the_webhooks_only(directory: Path) -> None:
    _, backends = ingress_to(docs_of(directory), "ingress")
    paths = [path for _, path, _ in backends]
    routes = [webhook_path(s) for s in Source] + [PATH_PREFIX]
    assert all(any(r.startswith(p) for p in paths) for r in routes), paths
    assert all(any(r.startswith(p) for r in routes) for p in paths), paths  # nothing else


@build
def test_pods_are_locked_down(directory: Path) -> None:
    docs = docs_of(directory)
    for c in k.containers(docs):
        pod_ctx, ctx = c.pod.get("securityContext", {}), c.spec.get("securityContext", {})
        assert pod_ctx.get("runAsNonRoot") is True and pod_ctx.get("runAsUser", 0) != 0, c.where
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", c.where
        assert ctx.get("allowPrivilegeEscalation") is False, c.where
        assert ctx.get("readOnlyRootFilesystem") is True, c.where
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], c.where
        assert c.pod.get("automountServiceAccountToken") is False, c.where
        assert "memory" in c.spec["resources"]["limits"], c.where
        assert {"cpu", "memory"} <= set(c.spec["resources"]["requests"]), c.where


@build
def test_the_migration_phase_applies_on_its_own(directory: Path) -> None:
    """``kubectl apply -k … -l autobiz.dev/apply-phase=migrate`` (the docs' first step)
    selects the Jobs and everything they need; only the migrate Job holds the owner's
    connection."""
    docs = docs_of(directory)
    phase = [
        d
        for d in docs
        if d["metadata"].get("labels", {}).get("autobiz.dev/apply-phase") == "migrate"
    ]
    jobs = [d for d in phase if d["kind"] == "Job"]
    assert jobs == k.by_kind(docs, "Job")
    migrate = only(docs, "db")
    assert any(migrate.workload is job for job in jobs)
    selected = {(d["kind"], d["metadata"]["name"]) for d in phase}
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        needed = {("ServiceAccount", pod["serviceAccountName"])}
        needed |= {("ConfigMap", name) for name, _ in k.references([job])["ConfigMap"]}
        if any(d["kind"] == "Namespace" for d in docs):
            needed.add(("Namespace", job["metadata"]["namespace"]))
        assert needed <= selected, job["metadata"]["name"]
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    assert {d["kind"] for d in phase} <= {"Job", "ServiceAccount", "ConfigMap", "Namespace"}
    owners = [c.where for c in k.containers(docs) if "AUTOBIZ_DATABASE_URL" in k.env_names(docs, c)]
    assert owners == [migrate.where]


def test_production_reaches_temporal_cloud_with_an_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = docs_of(k.K8S / "overlays" / "production")
    for name in ("worker", "ingress"):
        c = only(docs, name)
        env = k.literal_env(docs, c)
        (key,) = [v for v in c.spec["env"] if v["name"] == "TEMPORAL_API_KEY"]
        assert key["valueFrom"]["secretKeyRef"]["name"] in documented()
        env["TEMPORAL_API_KEY"] = "from-the-secret"
        settings = k.effective_settings(
            {n: v for n, v in env.items() if n.startswith("AUTOBIZ_")}, monkeypatch
        )
        conn = resolve(settings, env={n: v for n, v in env.items() if n.startswith("TEMPORAL_")})
        assert conn.target_host == env["TEMPORAL_ADDRESS"]
        assert conn.namespace == env["TEMPORAL_NAMESPACE"] != "default"
        assert conn.api_key == SecretStr("from-the-secret") and conn.tls is True


def test_self_hosted_dials_the_charts_frontend_in_plaintext(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = docs_of(SELF_HOSTED)
    for name in ("worker", "ingress", "temporal"):
        c = only(docs, name)
        assert "TEMPORAL_API_KEY" not in k.env_names(docs, c)
        env = k.literal_env(docs, c)
        settings = k.effective_settings(
            {n: v for n, v in env.items() if n.startswith("AUTOBIZ_")}, monkeypatch
        )
        conn = resolve(settings, env={n: v for n, v in env.items() if n.startswith("TEMPORAL_")})
        assert (conn.target_host, conn.namespace) == (
            "temporal-frontend.temporal.svc:7233",
            "autobiz",
        )
        assert conn.api_key is None and conn.tls is False


def test_production_mtls_mounts_the_client_certificate() -> None:
    docs = docs_of(k.K8S / "overlays" / "production-mtls")
    for name in ("worker", "ingress"):
        c = only(docs, name)
        names = k.env_names(docs, c)
        assert "TEMPORAL_API_KEY" not in names
        assert {"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"} <= names
        env = k.literal_env(docs, c)
        mount = k.mount_of(c, env["TEMPORAL_TLS_CLIENT_CERT_PATH"])
        assert mount is not None and mount.volume["secret"]["secretName"] == "temporal-client-tls"
        assert env["TEMPORAL_ADDRESS"].endswith(".tmprl.cloud:7233")


# --- the official Temporal Helm chart's values (overlays/self-hosted) --------------------

HELM_VALUES = k.K8S / "temporal-helm-values.yaml"


def helm_values() -> dict[str, Any]:
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert isinstance(values, dict)
    return values


def web_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in helm_values()["web"]["additionalEnv"]}


def search_attribute_job() -> Doc:
    objects = [yaml.safe_load(text) for text in helm_values()["extraObjects"]]
    (job,) = [o for o in objects if o["kind"] == "Job"]
    return job


def job_env(job: Doc) -> dict[str, str]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in c["env"]}


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{path}.{key}", inner
            yield from walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from walk(inner, f"{path}[{i}]")


def test_the_helm_values_extra_objects_are_valid_kubernetes() -> None:
    for text in helm_values()["extraObjects"]:
        assert "{{" not in text  # the chart runs them through tpl: nothing to expand
        kubernetes_validate.validate(yaml.safe_load(text), KUBERNETES_VERSION, strict=True)


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


# --- the Deploy docs' commands -------------------------------------------------------


def my_sections() -> str:
    """docs/operations.md's Deploy → Kubernetes and Temporal Cloud subsections."""
    section = deploy_section()
    return section[section.index("\n### Kubernetes") :]


def doc_commands(program: str) -> list[tuple[str, ...]]:
    found = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", my_sections(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(f"{program} "):
                found.append(tuple(shlex.split(line.replace("…", "x"))))
    return found


@cache
def kubectl_help(*path: str) -> tuple[int, str]:
    """``kubectl PATH --help`` (``options``: the global flags); offline."""
    argv = ["options"] if path == ("options",) else [*path, "--help"]
    run = subprocess.run(
        [k.kubectl(), *argv], capture_output=True, text=True, timeout=30, check=False
    )
    return run.returncode, run.stdout


def kubectl_problems(words: tuple[str, ...]) -> list[str]:
    """A ``kubectl`` line's subcommand exists, its flags are the subcommand's or global,
    and the files and kustomizations it names are in the repository."""
    args = list(words[1:])
    while args[:1] == ["-n"]:
        args = args[2:]
    path: list[str] = []
    for word in args:
        if word.startswith("-"):
            break
        code, text = kubectl_help(*path, word)
        if code != 0 or f"kubectl {' '.join([*path, word])}" not in text:
            break
        path.append(word)
    if not path:
        return [f"{shlex.join(words)}: no such kubectl command"]
    known = kubectl_help(*path)[1] + kubectl_help("options")[1]
    problems = []
    for i, word in enumerate(words):
        flag = word.split("=", 1)[0]
        if flag.startswith("-") and not re.search(rf"(^|[\s,]){re.escape(flag)}[=,\s\[]", known):
            problems.append(f"{shlex.join(words)}: kubectl {' '.join(path)} has no {flag}")
        if flag in ("-k", "-f") and i + 1 < len(words) and not (k.ROOT / words[i + 1]).exists():
            problems.append(f"{shlex.join(words)}: {words[i + 1]} does not exist")
    return problems


def test_the_docs_kubectl_commands_exist_and_name_real_paths() -> None:
    shown = doc_commands("kubectl")
    assert len(shown) >= 15
    assert [p for words in shown for p in kubectl_problems(words)] == []
    assert ("kubectl", "apply", "-k", "infra/k8s/overlays/production") in shown


def test_the_kubectl_check_sees_a_wrong_flag_and_path() -> None:
    assert (
        kubectl_problems(("kubectl", "-n", "x", "rollout", "status", "deploy/a", "--wait-for"))
        != []
    )
    assert kubectl_problems(("kubectl", "apply", "-k", "infra/k8s/overlays/prod")) != []
    assert kubectl_problems(("kubectl", "aply", "-k", "infra/k8s/base")) != []
    assert (
        kubectl_problems(("kubectl", "-n", "x", "create", "secret", "tls", "a", "--cert=c")) == []
    )


def test_the_docs_autobiz_and_temporal_commands_parse() -> None:
    shown = doc_commands("autobiz")
    assert shown
    for words in shown:
        doc_cmds.check_autobiz(words)
    inline = [
        tuple(shlex.split(c)) for c in re.findall(r"`(temporal operator [^`]+)`", my_sections())
    ]
    assert inline and doc_commands("temporal")
    for words in [*inline, *doc_commands("temporal")]:
        doc_cmds.check_temporal(words)


def test_the_docs_tcld_command_registers_the_projects_attributes() -> None:
    (words,) = [
        w for w in doc_commands("tcld") if w[1:4] == ("namespace", "search-attributes", "add")
    ]
    given = [words[i + 1] for i, w in enumerate(words) if w == "--search-attribute"]
    assert dict(g.split("=", 1) for g in given) == SEARCH_ATTRIBUTE_TYPES


def kubectl_name(doc: Doc) -> str:
    """An object as ``kubectl -o name`` prints it (``job.batch/autobiz-migrate``)."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"


def test_the_docs_apply_commands_send_what_they_say() -> None:
    """Each ``kubectl apply`` the Deploy docs show, run as shown (plus a client-side dry
    run against a stand-in API server): the migrate phase sends exactly the Jobs and
    what they need, a full apply everything, the namespace file the namespace."""
    applies = [w for w in doc_commands("kubectl") if w[1] == "apply"]
    assert len(applies) >= 5
    phases = 0
    for words in applies:
        args = list(words[2:])
        source, target = args[0], k.ROOT / args[1]
        docs = docs_of(target) if source == "-k" else list(yaml.safe_load_all(target.read_text()))
        expected = docs
        if "-l" in args:
            key, _, value = args[args.index("-l") + 1].partition("=")
            expected = [d for d in docs if d["metadata"].get("labels", {}).get(key) == value]
            assert {d["kind"] for d in expected} >= {"Job", "Namespace"}, words
            assert "Deployment" not in {d["kind"] for d in expected}, words
            phases += 1
        with fake_kube_api.fake_api(fake_kube_api.kinds_of(docs)) as server:
            flags = ["--dry-run=client", "-o", "name", "--server", server, "--validate=false"]
            run = subprocess.run(
                [k.kubectl(), *words[1:], *flags],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=k.ROOT,
                check=False,
            )
        assert run.returncode == 0, (words, run.stderr)
        assert sorted(run.stdout.split()) == sorted(kubectl_name(d) for d in expected), words
    assert phases >= 2  # production and self-hosted


def self_signed(directory: Path, cert: str, key: str) -> None:
    """A throwaway certificate and key (``kubectl create secret tls`` checks the pair)."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autobiz.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    (directory / cert).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / key).write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def secret_command_lines() -> list[str]:
    """The docs' ``kubectl … create secret …`` lines as a shell would run them."""
    lines = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", my_sections(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("kubectl ") and " create secret " in line:
                lines.append(line.strip())
    return lines


def test_the_docs_secret_commands_make_secrets_the_processes_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run each documented ``kubectl create secret`` (client dry run, shell substitutions
    and all, in a directory holding the files they read: the docs' tenants.yaml example,
    certificates): every Secret the manifests and the Helm values use comes out with the
    keys they read, and the values work: the codec keys encrypt and decrypt, the tenant
    file has each tenant's credentials and webhook secrets, the URLs name the two roles."""
    if shutil.which("openssl") is None:
        message = "openssl (the docs make the codec key with it) is needed"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    (example,) = re.findall(r"```yaml\n(.*?)```", my_sections(), flags=re.S)[:1]
    (tmp_path / "tenants.yaml").write_text(example)
    for cert, key in re.findall(r"--cert=(\S+) --key=(\S+)", my_sections()):
        self_signed(tmp_path, cert, key)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TEMPORAL_API_KEY": "api-key",
        "TEMPORAL_DB_PASSWORD": "db-password",
        "OIDC_CLIENT_SECRET": "client-secret",
    }
    made: dict[str, dict[str, str]] = {}
    lines = secret_command_lines()
    assert len(lines) >= 8
    for line in lines:
        run = subprocess.run(
            ["sh", "-c", f"{line} --dry-run=client -o json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
            check=False,
        )
        assert run.returncode == 0, (line, run.stderr)
        secret = json.loads(run.stdout)
        values = {k_: base64.b64decode(v).decode() for k_, v in secret["data"].items()}
        made[secret["metadata"]["name"]] = values

    for directory in BUILDS:
        docs = docs_of(directory)
        for name, key in k.references(docs)["Secret"]:
            if k.named(docs, "Secret", name) is None:
                assert name in made, (directory, name)
                assert key is None or key in made[name], (directory, name, key)
    helm = helm_values()
    assert "TEMPORAL_AUTH_CLIENT_SECRET" in made[helm["web"]["additionalEnvSecretName"]]

    codec = made["autobiz-codec"]
    settings = k.effective_settings(
        {
            "AUTOBIZ_ENV": "production",
            "AUTOBIZ_KERNEL__CODEC_KEYS": codec["keys"],
            "AUTOBIZ_KERNEL__CODEC_ACTIVE_KEY": codec["active-key"],
        },
        monkeypatch,
    )
    cipher = AesGcmCodec.from_settings(settings)
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'{"order": "1001"}')
    (encoded,) = asyncio.run(cipher.encode([payload]))
    assert encoded.data != payload.data
    assert asyncio.run(cipher.decode([encoded])) == [payload]

    tenants_file = tmp_path / "tenants.yaml"
    assert made["autobiz-tenant-credentials"]["tenants.yaml"] == example
    production = docs_of(k.K8S / "overlays" / "production")
    configured = {
        Path(key).stem
        for d in production
        if d["kind"] == "ConfigMap" and "business-configs" in d["metadata"]["name"]
        for key in d["data"]
    }
    backend = FileSecretsBackend(tenants_file)
    webhooks = webhook_configs_from_credentials(tenants_file)
    assert set(webhooks) == configured
    for tenant, hooks in webhooks.items():
        missing = [n for n in CREDENTIALS if n not in OPTIONAL and backend.load(tenant, n) is None]
        assert missing == [], tenant
        assert hooks.stripe and hooks.shopify and hooks.printful and hooks.shop_domains

    database = made["autobiz-database"]
    app_url = conninfo_to_dict(database["app-url"])
    owner_url = conninfo_to_dict(database["owner-url"])
    assert app_url["user"] == Settings().postgres.app_role
    assert owner_url["user"] != app_url["user"] and owner_url["dbname"] == app_url["dbname"]
