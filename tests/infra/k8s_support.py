"""What the infra/k8s tests share: the rendered builds (cached, handed out as copies a
test may change), the roles' containers, the Deploy docs' Secrets, the Ingress routes
and the Temporal Helm chart's values."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra import k8s_checks as k
from tests.infra.k8s_checks import Doc

# A version whose schemas kubernetes-validate ships (and the kubectl of the CI image).
KUBERNETES_VERSION = "1.32.0"
DOCS = k.ROOT / "docs" / "operations.md"
SELF_HOSTED = k.K8S / "overlays" / "self-hosted"
HELM_VALUES = k.K8S / "temporal-helm-values.yaml"
BUILDS = k.kustomizations()
IDS = [str(p.relative_to(k.K8S)) for p in BUILDS]
build = pytest.mark.parametrize("directory", BUILDS, ids=IDS)


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
