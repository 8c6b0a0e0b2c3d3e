"""``connect()`` against secured Temporal: mTLS and API keys through a real TLS proxy in
front of the dev server, the SDK's environment configuration (TEMPORAL_*, TOML profiles),
the precedence of AutoBiz settings, and no secret in a repr or a log line."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from autobiz.errors import ConfigError
from autobiz.settings import Settings, TemporalSettings
from autobiz.temporal_client import connect, describe_target, resolve
from tests.support.tls_proxy import CertificateAuthority, TlsProxy

API_KEY = "tmprl-test-key-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    ca_path: Path
    client_cert: Path
    client_key: Path
    foreign_cert: Path  # signed by another CA
    foreign_key: Path


@pytest.fixture(autouse=True)
def no_temporal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test sets the TEMPORAL_* it means; none leaks in from the shell."""
    for name in (
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_PROFILE",
        "TEMPORAL_TLS",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "TEMPORAL_TLS_SERVER_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "no-temporal.toml"
    empty.write_text("")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(empty))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("AutoBiz test CA")
    (d / "ca.crt").write_bytes(ca.cert_pem)
    cert, key = ca.issue("autobiz-worker", server=False).write(d, "client")
    other = CertificateAuthority("Some other CA")
    foreign_cert, foreign_key = other.issue("autobiz-worker", server=False).write(d, "foreign")
    return Pki(ca, d / "ca.crt", cert, key, foreign_cert, foreign_key)


def _upstream(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


@pytest.fixture
async def mtls_proxy(temporal_env: WorkflowEnvironment, pki: Pki) -> AsyncIterator[TlsProxy]:
    server = pki.ca.issue("localhost", server=True)
    async with TlsProxy(_upstream(temporal_env), server, client_ca=pki.ca.cert_pem) as proxy:
        yield proxy


@pytest.fixture
async def api_key_proxy(temporal_env: WorkflowEnvironment, pki: Pki) -> AsyncIterator[TlsProxy]:
    server = pki.ca.issue("localhost", server=True)
    async with TlsProxy(_upstream(temporal_env), server, api_key=API_KEY) as proxy:
        yield proxy


def _settings(**temporal: object) -> Settings:
    return Settings(temporal=TemporalSettings.model_validate(temporal))


async def _start_and_describe(client: Client) -> None:
    """A real round trip: start a workflow (no worker needed), describe it, end it."""
    handle = await client.start_workflow(
        "ConnectionProbe", id=f"probe-{uuid.uuid4()}", task_queue=f"tq-{uuid.uuid4()}"
    )
    desc = await handle.describe()
    assert desc.status is WorkflowExecutionStatus.RUNNING
    assert desc.workflow_type == "ConnectionProbe"
    await handle.terminate("probe done")


async def _refused(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await asyncio.wait_for(connect(settings), 60)


# --- mTLS -----------------------------------------------------------------------------


async def test_mtls_client_with_the_right_certificate_starts_and_describes(
    mtls_proxy: TlsProxy, pki: Pki
) -> None:
    settings = _settings(
        address=mtls_proxy.address,
        tls_server_ca_cert_path=pki.ca_path,
        tls_server_name="localhost",
        tls_client_cert_path=pki.client_cert,
        tls_client_key_path=pki.client_key,
    )
    assert resolve(settings).tls_mode == "mtls"
    client = await connect(settings)
    await _start_and_describe(client)
    assert mtls_proxy.tunnels >= 1 and not mtls_proxy.handshake_failures


async def test_mtls_refuses_a_client_without_a_certificate(mtls_proxy: TlsProxy, pki: Pki) -> None:
    await _refused(
        _settings(
            address=mtls_proxy.address,
            tls_server_ca_cert_path=pki.ca_path,
            tls_server_name="localhost",
        )
    )
    assert set(mtls_proxy.handshake_failures) == {"PEER_DID_NOT_RETURN_A_CERTIFICATE"}
    assert mtls_proxy.tunnels == 0


async def test_mtls_refuses_a_certificate_from_another_ca(mtls_proxy: TlsProxy, pki: Pki) -> None:
    await _refused(
        _settings(
            address=mtls_proxy.address,
            tls_server_ca_cert_path=pki.ca_path,
            tls_server_name="localhost",
            tls_client_cert_path=pki.foreign_cert,
            tls_client_key_path=pki.foreign_key,
        )
    )
    assert set(mtls_proxy.handshake_failures) == {"CERTIFICATE_VERIFY_FAILED"}
    assert mtls_proxy.tunnels == 0


async def test_a_client_that_does_not_trust_the_server_is_refused(
    mtls_proxy: TlsProxy, pki: Pki
) -> None:
    """Without the private CA the server's certificate fails verification."""
    await _refused(
        _settings(
            address=mtls_proxy.address,
            tls_server_name="localhost",
            tls_client_cert_path=pki.client_cert,
            tls_client_key_path=pki.client_key,
        )
    )


def test_a_client_certificate_without_its_key_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="both"):
        resolve(_settings(address="x:7233", tls_client_cert_path=pki.client_cert))


# --- API key --------------------------------------------------------------------------


async def test_the_right_api_key_connects(api_key_proxy: TlsProxy, pki: Pki) -> None:
    settings = _settings(
        address=api_key_proxy.address,
        api_key=API_KEY,
        tls_server_ca_cert_path=pki.ca_path,
        tls_server_name="localhost",
    )
    client = await connect(settings)
    await _start_and_describe(client)
    assert api_key_proxy.accepted_requests >= 3 and api_key_proxy.rejected_requests == 0


async def test_a_wrong_api_key_is_refused(api_key_proxy: TlsProxy, pki: Pki) -> None:
    await _refused(
        _settings(
            address=api_key_proxy.address,
            api_key=API_KEY + "x",
            tls_server_ca_cert_path=pki.ca_path,
            tls_server_name="localhost",
        )
    )
    assert api_key_proxy.rejected_requests >= 1 and api_key_proxy.accepted_requests == 0


async def test_a_missing_api_key_is_refused(api_key_proxy: TlsProxy, pki: Pki) -> None:
    await _refused(
        _settings(
            address=api_key_proxy.address,
            tls_server_ca_cert_path=pki.ca_path,
            tls_server_name="localhost",
        )
    )
    assert api_key_proxy.rejected_requests >= 1 and api_key_proxy.accepted_requests == 0


async def test_temporal_api_key_and_tls_env_are_honoured(
    api_key_proxy: TlsProxy, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal Cloud the way the ``temporal`` CLI is configured: env only."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", api_key_proxy.address)
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(pki.ca_path))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "localhost")
    client = await connect(Settings())
    await _start_and_describe(client)
    assert api_key_proxy.accepted_requests >= 3


# --- TEMPORAL_* and profiles ----------------------------------------------------------


async def test_temporal_address_and_namespace_are_honoured(
    temporal_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", _upstream(temporal_env))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "elsewhere")
    conn = resolve(Settings())
    assert (conn.target_host, conn.namespace, conn.tls) == (
        _upstream(temporal_env),
        "elsewhere",
        False,
    )
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    client = await connect(Settings())
    assert client.namespace == "default"
    await _start_and_describe(client)


async def test_a_toml_profile_is_honoured(
    temporal_env: WorkflowEnvironment,
    mtls_proxy: TlsProxy,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text(
        f"""
[profile.default]
address = "{_upstream(temporal_env)}"
namespace = "default"

[profile.secured]
address = "{mtls_proxy.address}"
namespace = "default"

[profile.secured.tls]
server_name = "localhost"
server_ca_cert_path = "{pki.ca_path}"
client_cert_path = "{pki.client_cert}"
client_key_path = "{pki.client_key}"
"""
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    assert resolve(Settings()).target_host == _upstream(temporal_env)
    monkeypatch.setenv("TEMPORAL_PROFILE", "secured")
    conn = resolve(Settings())
    assert (conn.target_host, conn.tls_mode) == (mtls_proxy.address, "mtls")
    await _start_and_describe(await connect(Settings()))


def test_autobiz_settings_win_over_temporal_env() -> None:
    env = {"TEMPORAL_ADDRESS": "env.example:7233", "TEMPORAL_NAMESPACE": "env-ns"}
    explicit = resolve(_settings(address="cloud.example:7233", namespace="ab-ns"), env=env)
    assert (explicit.target_host, explicit.namespace) == ("cloud.example:7233", "ab-ns")
    ported = resolve(_settings(port=7300), env=env)  # a moved dev server is explicit too
    assert (ported.target_host, ported.namespace) == ("127.0.0.1:7300", "env-ns")
    off = resolve(_settings(tls=False), env={**env, "TEMPORAL_API_KEY": "k"})
    assert off.tls is False and off.api_key is not None


def test_nothing_configured_is_the_local_dev_server() -> None:
    conn = resolve(Settings(), env={})
    assert (conn.target_host, conn.namespace, conn.tls, conn.api_key) == (
        "127.0.0.1:7233",
        "default",
        False,
        None,
    )


def test_an_api_key_alone_turns_tls_on() -> None:
    conn = resolve(_settings(address="ns.acct.tmprl.cloud:7233", api_key="k"), env={})
    assert conn.tls is True and conn.tls_mode == "on"


def test_an_unreadable_tls_file_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS_SERVER_CA_CERT_PATH"):
        resolve(_settings(tls_server_ca_cert_path=tmp_path / "missing.pem"), env={})


# --- secrets --------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


async def test_secrets_are_in_no_repr_and_no_log_line(
    api_key_proxy: TlsProxy,
    mtls_proxy: TlsProxy,
    pki: Pki,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    key_pem = pki.client_key.read_text()
    key_body = key_pem.splitlines()[1]
    keyed = _settings(
        address=api_key_proxy.address,
        api_key=API_KEY,
        tls_server_ca_cert_path=pki.ca_path,
        tls_server_name="localhost",
    )
    mtls = _settings(
        address=mtls_proxy.address,
        tls_server_ca_cert_path=pki.ca_path,
        tls_server_name="localhost",
        tls_client_cert_path=pki.client_cert,
        tls_client_key_path=pki.client_key,
    )
    await connect(keyed)
    await connect(mtls)
    wrong = keyed.model_copy(
        update={"temporal": keyed.temporal.model_copy(update={"api_key": SecretStr("bad")})}
    )
    with pytest.raises(RuntimeError) as refused:
        await asyncio.wait_for(connect(wrong), 60)
    shown = " ".join(
        [
            repr(keyed),
            str(keyed.temporal),
            repr(resolve(keyed)),
            resolve(keyed).describe(),
            repr(resolve(mtls)),
            resolve(mtls).describe(),
            str(refused.value),
            debug_logs.text,
        ]
    )
    assert API_KEY not in shown and key_body not in shown
    assert "api_key=set" in resolve(keyed).describe()
    assert isinstance(resolve(keyed).api_key, SecretStr)


def test_describe_target_names_the_resolved_frontend_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)
    shown = describe_target(Settings())
    assert shown == "ns.acct.tmprl.cloud:7233 namespace=default tls=on api_key=set"
    broken = _settings(tls_server_ca_cert_path=tmp_path / "missing.pem")
    assert describe_target(broken) == "127.0.0.1:7233"  # a config error still names one
