"""infra/compose.yaml without a Docker engine: valid by the Compose Specification's JSON
schema (the copy check-jsonschema vendors; nothing is downloaded), and the properties a
deployment relies on, each a check that fails when the file loses it."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra import compose
from tests.infra.compose import ENV_EXAMPLE, INFRA, ROOT

pytestmark = pytest.mark.unit

# Services that run once and exit; every other service runs for good.
ONE_SHOT = {"migrate", "temporal-setup"}
# The only service the outside world reaches (the providers' webhooks).
PUBLIC = {"ingress"}


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return compose.load(compose.read_env_file(ENV_EXAMPLE))


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    proc = _schema_check(compose.COMPOSE_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_refuses_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    text = compose.COMPOSE_FILE.read_text()
    # `restart` takes a string; `stop_grace_period` is no healthcheck key.
    bad.write_text(text.replace("    restart: unless-stopped\n", "    restart: [always]\n", 1))
    proc = _schema_check(bad)
    assert proc.returncode != 0 and "restart" in proc.stdout + proc.stderr


def test_every_variable_is_documented_in_the_env_example() -> None:
    used = compose.variables_used(compose.COMPOSE_FILE.read_text())
    documented = set(compose.read_env_file(ENV_EXAMPLE))
    assert used, "the parse found no ${VAR}"
    assert sorted(used - documented) == []


def test_the_env_example_holds_no_secret() -> None:
    """Every password, token and key in the example is a placeholder."""
    env = compose.read_env_file(ENV_EXAMPLE)
    secret_like = [k for k in env if re.search(r"PASSWORD|TOKEN|_KEYS$", k)]
    assert len(secret_like) >= 7
    assert [k for k in secret_like if "REPLACE_ME" not in env[k]] == []


def test_a_missing_required_variable_stops_compose() -> None:
    env = compose.read_env_file(ENV_EXAMPLE)
    del env["AUTOBIZ_CODEC_KEYS"]
    with pytest.raises(compose.InterpolationError, match="AUTOBIZ_CODEC_KEYS"):
        compose.load(env)


def test_every_mounted_host_path_exists(model: dict[str, Any]) -> None:
    """Bind mounts and secrets point at files of the repository; a secret file is
    git-ignored and has a committed ``.example`` next to it."""
    seen = 0
    for name in model["services"]:
        for mount in compose.mounts(model, name):
            seen += 1
            if mount.target.startswith("/run/secrets/"):
                example = mount.source.with_name(
                    mount.source.stem + ".example" + mount.source.suffix
                )
                assert example.is_file(), f"{name}: no {example.relative_to(ROOT)}"
                ignored = subprocess.run(
                    ["git", "check-ignore", "-q", str(mount.source)], cwd=ROOT, check=False
                )
                assert ignored.returncode == 0, f"{mount.source} is not git-ignored"
            else:
                assert mount.source.exists(), f"{name}: {mount.source} does not exist"
                assert ROOT in mount.source.parents, f"{name}: {mount.source} is outside"
    assert seen >= 8


def _published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host ip, container port) of each published port; no ip: every interface."""
    out: list[tuple[str, str]] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port["target"])))
            continue
        parts = str(port).split(":")
        ip = parts[0] if len(parts) == 3 else ""
        out.append((ip, parts[-1]))
    return out


def test_only_the_ingress_is_published_beyond_loopback(model: dict[str, Any]) -> None:
    public, loopback = set(), set()
    for name, service in model["services"].items():
        for ip, _ in _published(service):
            if ip and ipaddress.ip_address(ip).is_loopback:
                loopback.add(name)
            else:
                public.add(name)
    assert public == PUBLIC
    assert {"temporal", "temporal-ui", "prometheus", "grafana", "codec-server"} <= loopback


def test_long_running_services_have_a_healthcheck_and_a_restart_policy(
    model: dict[str, Any],
) -> None:
    services = model["services"]
    assert ONE_SHOT <= set(services)
    for name, service in services.items():
        restart = service.get("restart")
        if name in ONE_SHOT:
            assert str(restart).startswith("on-failure"), name
            continue
        assert restart in ("always", "unless-stopped"), f"{name}: restart {restart!r}"
        check = service.get("healthcheck") or {}
        assert not check.get("disable") and check.get("test"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_one_shot_jobs_gate_the_services_that_need_them(model: dict[str, Any]) -> None:
    for name in ("worker", "ingress"):
        deps = model["services"][name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["temporal-setup"]["condition"] == "service_completed_successfully"


def test_every_image_is_pinned(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"
        # A version, not just a major (postgres:16 moves): at least major.minor.
        assert re.match(r"^v?\d+\.\d+", tag), f"{name}: {image} is not a version"


def test_the_application_runs_as_the_app_role_and_migrates_as_the_owner(
    model: dict[str, Any],
) -> None:
    services = model["services"]
    for name in ("worker", "ingress"):
        env = compose.environment(services[name])
        assert env["AUTOBIZ_APP_DATABASE_URL"].startswith("postgresql://autobiz_app:")
        assert "AUTOBIZ_DATABASE_URL" not in env, f"{name} must not hold the owner's password"
    migrate_env = compose.environment(services["migrate"])
    assert migrate_env["AUTOBIZ_DATABASE_URL"].startswith("postgresql://autobiz_owner:")
    # Each secret reaches the services that use it and no other.
    env = {k: f"<{k}>" for k in compose.read_env_file(ENV_EXAMPLE)}
    marked = compose.load(env)["services"]
    holders = {
        secret: sorted(
            name
            for name, service in marked.items()
            if any(f"<{secret}>" in v for v in compose.environment(service).values())
        )
        for secret in (
            "POSTGRES_SUPERUSER_PASSWORD",
            "AUTOBIZ_OWNER_PASSWORD",
            "AUTOBIZ_CODEC_KEYS",
        )
    }
    assert holders == {
        "POSTGRES_SUPERUSER_PASSWORD": ["postgres"],
        "AUTOBIZ_OWNER_PASSWORD": ["migrate", "postgres"],
        "AUTOBIZ_CODEC_KEYS": ["codec-server", "ingress", "temporal-setup", "worker"],
    }


def test_prometheus_scrapes_the_worker_and_the_ingress_and_loads_the_rules(
    model: dict[str, Any],
) -> None:
    import yaml

    config = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    targets = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                targets[host] = sd["port"]
    worker_bind = compose.environment(model["services"]["worker"])["AUTOBIZ_WORKER__METRICS_BIND"]
    assert targets["worker"] == int(worker_bind.rpartition(":")[2])
    assert worker_bind.startswith("0.0.0.0:")
    ingress_port = compose.environment(model["services"]["ingress"])["AUTOBIZ_INGRESS__PORT"]
    assert targets["ingress"] == int(ingress_port)
    rules_mount = next(
        m for m in compose.mounts(model, "prometheus") if m.target == "/etc/prometheus/rules"
    )
    assert rules_mount.source == INFRA / "prometheus" / "rules"
    assert all(glob.startswith("/etc/prometheus/rules/") for glob in config["rule_files"])


def test_grafana_is_provisioned_with_the_dashboards_directory(model: dict[str, Any]) -> None:
    import yaml

    by_target = {m.target: m.source for m in compose.mounts(model, "grafana")}
    provisioning = by_target["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "autobiz.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert by_target[path] == ROOT / "dashboards"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_worker_stops_later_than_its_graceful_shutdown(model: dict[str, Any]) -> None:
    worker = model["services"]["worker"]
    grace = float(compose.environment(worker)["AUTOBIZ_WORKER__GRACEFUL_SHUTDOWN_SECONDS"])
    stop = worker["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace
    assert "container_name" not in worker and not worker.get("ports"), "--scale worker=N"


def _compose_doc() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index("### Docker Compose")
    end = text.find("\n### ", start + 5)
    return text[start : end if end != -1 else len(text)]


def test_the_compose_docs_name_real_services_files_and_commands(model: dict[str, Any]) -> None:
    """docs/operations.md#docker-compose: each `docker compose` command uses this file and
    the env file, names services that exist; each `autobiz` command parses; each
    infra/ path it tells the operator to copy exists."""
    from tests.support.doc_commands import check_autobiz, shell_commands

    shown = shell_commands(_compose_doc())
    compose_cmds = [s.words for s in shown if s.words[:2] == ("docker", "compose")]
    assert len(compose_cmds) >= 5
    services = set(model["services"])
    for words in compose_cmds:
        assert words[2:6] == ("-f", "infra/compose.yaml", "--env-file", "infra/.env"), words
        verb, rest = words[6], list(words[7:])
        named = [w for w in rest if not w.startswith("-") and "=" not in w]
        if verb in ("logs", "exec"):
            target = named[:1] if verb == "exec" else named
            assert target and set(target) <= services, words
            if verb == "exec":
                check_autobiz(tuple(named[1:]))
        if "--scale" in rest:
            assert rest[rest.index("--scale") + 1].split("=")[0] in services, words
    autobiz = [s.words for s in shown if s.words[0] == "autobiz"]
    assert len(autobiz) >= 3
    for words in autobiz:
        check_autobiz(words)
    for source in re.findall(r"cp (infra/\S+)", _compose_doc()):
        assert (ROOT / source).is_file(), source
