"""infra/k8s renders, is valid Kubernetes (strict: unknown fields fail) and agrees with
the code: real ``autobiz`` commands and settings, probes on the ports the processes
listen on, BusinessConfigs that compile, every Secret documented, a worker grace period
longer than its shutdown grace. Offline: ``kubectl kustomize`` and kubernetes-validate's
bundled schemas."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from autobiz.business_config import load_configs
from autobiz.closeout_links import PATH_PREFIX
from autobiz.codec_server_auth import build_authoriser
from autobiz.errors import ConfigError
from autobiz.settings import CodecServerAuth, Settings, WorkerSettings
from autobiz.temporal_client import resolve
from ingress.openapi import webhook_path
from ingress.tenants import Source
from kernel.codes import ErrorCode
from kernel.compiler import compile_text
from tests.infra import k8s_checks as k
from tests.infra.k8s_checks import Doc
from tests.infra.k8s_support import (
    IDS,
    KUBERNETES_VERSION,
    SELF_HOSTED,
    build,
    docs_of,
    documented,
    ingress_backends,
    ingress_to,
    only,
    role,
    web_env,
)

pytestmark = pytest.mark.unit

# Where each long-running role listens, by the settings it runs with.
LISTENS = {
    "worker": lambda s: s.worker.metrics_bind,
    "ingress": lambda s: f"{s.ingress.host}:{s.ingress.port}",
    "codec-server": lambda s: f"{s.kernel.codec_server_host}:{s.kernel.codec_server_port}",
}


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
def test_report_links_point_at_the_public_host(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily closeout's report links (AUTOBIZ_INGRESS__PUBLIC_URL) lead to the host
    the Ingress publishes over TLS, where /reports/closeout is routed."""
    docs = docs_of(directory)
    ingress, backends = ingress_to(docs, "ingress")
    settings = k.effective_settings(k.literal_env(docs, only(docs, "worker")), monkeypatch)
    public = urlparse(str(settings.ingress.public_url))
    assert public.scheme == "https" and public.path in ("", "/")
    assert (public.hostname, PATH_PREFIX) in {(host, path) for host, path, _ in backends}
    assert public.hostname in {h for t in ingress["spec"]["tls"] for h in t["hosts"]}


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
