"""The Deploy docs' Kubernetes and Temporal Cloud steps work as shown: every ``kubectl``
line names a real subcommand, flags and paths; the ``kubectl apply`` lines send what they
say (client dry run against a stand-in API server); the ``kubectl create secret`` lines
make the Secrets the manifests read, with values the processes accept; the ``autobiz``,
``temporal`` and ``tcld`` lines parse and register the project's search attributes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg.conninfo import conninfo_to_dict
from temporalio.api.common.v1 import Payload

from autobiz.codec import AesGcmCodec
from autobiz.providers.tenant_clients import CREDENTIALS, OPTIONAL
from autobiz.search_attributes import SEARCH_ATTRIBUTE_TYPES
from autobiz.secrets import FileSecretsBackend
from autobiz.settings import Settings
from ingress.tenants import webhook_configs_from_credentials
from tests.infra import fake_kube_api
from tests.infra import k8s_checks as k
from tests.infra.k8s_checks import Doc
from tests.infra.k8s_support import (
    BUILDS,
    deploy_section,
    docs_of,
    helm_values,
)
from tests.support import doc_commands as doc_cmds

pytestmark = pytest.mark.unit


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
