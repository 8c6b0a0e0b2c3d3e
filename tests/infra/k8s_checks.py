"""Checks over rendered Kubernetes manifests (``kubectl kustomize`` output) that a schema
cannot make: the commands are real ``autobiz`` commands, the settings real settings, the
ports the ones the processes listen on, every referenced Secret documented.

Each check returns a list of problems (empty: fine), so a test can show both that the
shipped manifests pass and that a broken copy is caught.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import typer.main
import yaml
from pydantic import BaseModel

from autobiz.cli.main import app
from autobiz.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
POD_KINDS = frozenset({"Deployment", "Job", "StatefulSet", "DaemonSet"})

Doc = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary; missing: a failure in CI (``CI`` set to true), else a skip."""
    found = shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )
    if found is None:
        message = "kubectl (with its built-in kustomize) is needed to render infra/k8s"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; install it in the CI image", pytrace=False)
        pytest.skip(message)
    return found


def kustomizations() -> list[Path]:
    """Every buildable kustomization under infra/k8s (Components build only inside one)."""
    found = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind") != "Component":
            found.append(path.parent)
    return found


def render(directory: Path) -> list[Doc]:
    run = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, f"kubectl kustomize {directory}: {run.stderr}"
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


@dataclass(frozen=True)
class Container:
    """One container of a workload, with the pod and workload it belongs to."""

    workload: Doc
    pod: Doc  # the pod spec
    spec: Doc  # the container

    @property
    def where(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}:{self.spec['name']}"

    @property
    def argv(self) -> list[str]:
        return [*self.spec.get("command", []), *self.spec.get("args", [])]


def containers(docs: list[Doc]) -> Iterator[Container]:
    for doc in docs:
        if doc["kind"] in POD_KINDS:
            pod = doc["spec"]["template"]["spec"]
            for spec in [*pod.get("initContainers", []), *pod["containers"]]:
                yield Container(doc, pod, spec)


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in by_kind(docs, kind) if d["metadata"]["name"] == name), None)


# --- commands -------------------------------------------------------------------------


def command_problems(argv: list[str]) -> list[str]:
    """``argv`` is ``autobiz <command…> [--options]`` with a real command and options."""
    if not argv or argv[0] != "autobiz":
        return [f"{argv!r} does not run autobiz"]
    root: Any = typer.main.get_command(app)
    ctx = typer.Context(root)
    command, rest = root, argv[1:]
    while hasattr(command, "get_command"):  # a group: the next word names the subcommand
        if not rest or rest[0].startswith("-"):
            return [f"{shlex.join(argv)}: no subcommand"]
        command, rest = command.get_command(ctx, rest[0]), rest[1:]
        if command is None:
            return [f"{shlex.join(argv)}: no such command"]
    known = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]}
    return [
        f"{shlex.join(argv)}: {word} is not an option"
        for word in rest
        if word.startswith("--") and word.split("=", 1)[0] not in known
    ]


# --- environment and settings ---------------------------------------------------------


def config_map_data(docs: list[Doc], name: str) -> dict[str, str]:
    doc = named(docs, "ConfigMap", name)
    return dict(doc.get("data", {})) if doc else {}


def literal_env(docs: list[Doc], c: Container) -> dict[str, str]:
    """The environment a container sees that the manifests spell out (ConfigMaps through
    envFrom and plain values; values from Secrets are not known here)."""
    env: dict[str, str] = {}
    for source in c.spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map_data(docs, source["configMapRef"]["name"]))
    for var in c.spec.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = config_map_data(docs, ref["name"])[ref["key"]]
    return env


def env_names(docs: list[Doc], c: Container) -> set[str]:
    return set(literal_env(docs, c)) | {v["name"] for v in c.spec.get("env", [])}


def _field(model: type[BaseModel], key: str) -> Any:
    """The field of ``model`` an environment key names (by name or alias), else None."""
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def settings_field_problem(name: str) -> str | None:
    """Why ``AUTOBIZ_…`` names no settings field (None: it names one). The per-tenant
    credential variables ``AUTOBIZ_SECRET__<TENANT>__<NAME>`` are autobiz.secrets'."""
    parts = name.removeprefix("AUTOBIZ_").lower().split("__")
    if parts[0] == "secret" and len(parts) == 3:
        return None
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        info = _field(model, part)
        if info is None:
            return f"{name}: {'.'.join(parts[: i + 1])} is not a setting"
        annotation = info.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return f"{name}: {'.'.join(parts[: i + 1])} has no sub-settings"
            model = annotation
    return None


TEMPORAL_ENV = frozenset(
    {
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_TLS",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "TEMPORAL_TLS_SERVER_NAME",
        "TEMPORAL_PROFILE",
        "TEMPORAL_CONFIG_FILE",
    }
)


def env_problems(docs: list[Doc]) -> list[str]:
    problems = []
    for c in containers(docs):
        for name in sorted(env_names(docs, c)):
            if name.startswith("AUTOBIZ_"):
                problem = settings_field_problem(name)
                if problem:
                    problems.append(f"{c.where}: {problem}")
            elif name.startswith("TEMPORAL_") and name not in TEMPORAL_ENV:
                problems.append(f"{c.where}: {name} is no Temporal client setting")
    return problems


def effective_settings(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a process with exactly ``env`` (its AUTOBIZ_* part) reads."""
    for key in list(os.environ):
        if key.startswith(("AUTOBIZ_", "TEMPORAL_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


# --- files, mounts, references --------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    path: PurePosixPath
    volume: Doc
    read_only: bool


def mounts(c: Container) -> list[Mount]:
    volumes = {v["name"]: v for v in c.pod.get("volumes", [])}
    return [
        Mount(PurePosixPath(m["mountPath"]), volumes[m["name"]], bool(m.get("readOnly")))
        for m in c.spec.get("volumeMounts", [])
    ]


def mount_of(c: Container, path: str) -> Mount | None:
    """The mount a path in the container lies under (the deepest one)."""
    target = PurePosixPath(path)
    under = [m for m in mounts(c) if target == m.path or m.path in target.parents]
    return max(under, key=lambda m: len(m.path.parts), default=None)


def references(docs: list[Doc]) -> dict[str, set[tuple[str, str | None]]]:
    """``{"Secret": {(name, key or None)}, "ConfigMap": {...}}`` every resource uses."""
    refs: dict[str, set[tuple[str, str | None]]] = {"Secret": set(), "ConfigMap": set()}
    for c in containers(docs):
        for source in c.spec.get("envFrom", []):
            if "secretRef" in source:
                refs["Secret"].add((source["secretRef"]["name"], None))
            if "configMapRef" in source:
                refs["ConfigMap"].add((source["configMapRef"]["name"], None))
        for var in c.spec.get("env", []):
            ref = var.get("valueFrom", {})
            if "secretKeyRef" in ref:
                refs["Secret"].add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
            if "configMapKeyRef" in ref:
                ref = ref["configMapKeyRef"]
                refs["ConfigMap"].add((ref["name"], ref["key"]))
    for doc in docs:
        if doc["kind"] in POD_KINDS:
            for volume in doc["spec"]["template"]["spec"].get("volumes", []):
                if "secret" in volume:
                    refs["Secret"].add((volume["secret"]["secretName"], None))
                if "configMap" in volume:
                    refs["ConfigMap"].add((volume["configMap"]["name"], None))
        if doc["kind"] == "Ingress":
            for tls in doc["spec"].get("tls", []):
                refs["Secret"].add((tls["secretName"], None))
    return refs


def documented_secrets(text: str) -> dict[str, set[str]]:
    """``kubectl create secret generic|tls NAME …`` commands in a doc: name -> keys."""
    found: dict[str, set[str]] = {}
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line.startswith("kubectl ") or " create secret " not in f" {line} ":
                continue
            words = shlex.split(line)
            at = words.index("secret")
            kind, name = words[at + 1], words[at + 2]
            keys = found.setdefault(name, set())
            if kind == "tls":
                keys |= {"tls.crt", "tls.key"}
            for word in words:
                for flag in ("--from-literal=", "--from-file="):
                    if word.startswith(flag):
                        spec = word.removeprefix(flag)
                        keys.add(spec.split("=", 1)[0] if "=" in spec else Path(spec).name)
    return found


def reference_problems(docs: list[Doc], documented: Mapping[str, set[str]]) -> list[str]:
    """A ConfigMap used must be rendered with the key used; a Secret used must be
    rendered, or documented with the key used."""
    problems = []
    refs = references(docs)
    for name, key in sorted(refs["ConfigMap"], key=str):
        doc = named(docs, "ConfigMap", name)
        if doc is None:
            problems.append(f"ConfigMap {name} is used but not generated")
        elif key is not None and key not in doc.get("data", {}):
            problems.append(f"ConfigMap {name} has no key {key}")
    for name, key in sorted(refs["Secret"], key=str):
        if named(docs, "Secret", name) is not None:
            continue
        if name not in documented:
            problems.append(f"Secret {name} is used but neither generated nor documented")
        elif key is not None and key not in documented[name]:
            problems.append(f"Secret {name}: key {key} is used but not documented")
    return problems


def secret_keys(c: Container, mount: Mount, documented: Mapping[str, set[str]]) -> set[str]:
    """The files a Secret volume shows: its documented keys (or its items' paths)."""
    secret = mount.volume["secret"]
    if "items" in secret:
        return {item["path"] for item in secret["items"]}
    return documented.get(secret["secretName"], set())


def image_problems(docs: list[Doc]) -> list[str]:
    """Every image is pinned: a digest, or a tag that is not ``latest``."""
    problems = []
    for c in containers(docs):
        image = c.spec.get("image", "")
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if tag in ("", "latest"):
            problems.append(f"{c.where}: image {image!r} is not pinned to a tag or digest")
    return problems


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions: not used here
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_labels(workload: Doc) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels", {}))


def container_ports(c: Container) -> dict[str | int, int]:
    """A container's ports by name and by number -> number."""
    ports: dict[str | int, int] = {}
    for port in c.spec.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def probe_ports(c: Container) -> list[tuple[str, str | int]]:
    found = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.spec.get(kind)
        if probe is None:
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            if handler in probe:
                found.append((kind, probe[handler]["port"]))
    return found


def probe_port_problems(docs: list[Doc]) -> list[str]:
    problems = []
    for c in containers(docs):
        ports = container_ports(c)
        for kind, port in probe_ports(c):
            if port not in ports:
                problems.append(f"{c.where}: {kind} port {port!r} is no container port")
    return problems
