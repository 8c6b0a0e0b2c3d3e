"""The one way to reach Temporal: ``connect(settings)``, used by workers, starters,
the CLI, the ingress relay, the dev stack and tests.

Where and how it connects (``resolve``), per setting, first match wins:

1. an AutoBiz setting given explicitly (``AUTOBIZ_TEMPORAL__ADDRESS`` or ``__HOST``/``__PORT``,
   ``__NAMESPACE``, ``__API_KEY``, ``__TLS`` and ``__TLS_*`` paths);
2. the Temporal SDK's environment configuration, as the ``temporal`` CLI reads it
   (``temporalio.envconfig``): ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
   ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, ``TEMPORAL_GRPC_META_*``, and the profile
   ``TEMPORAL_PROFILE`` (default ``default``) of the TOML file ``TEMPORAL_CONFIG_FILE``
   (default ``~/.config/temporalio/temporal.toml``);
3. the local dev server: ``127.0.0.1:7233``, namespace ``default``, plaintext.

An API key (from either source) turns TLS on unless TLS is explicitly off. With nothing
set (the dev stack, the demo, the tests) the connection is exactly the dev server's.

It also wires the data converter every process must share: pydantic payloads, the AES-GCM
payload codec, and a failure converter that redacts secrets/PII from failure messages
and stack traces and then moves them into encoded (so encrypted) attributes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from autobiz.codec import AesGcmCodec
from autobiz.errors import ConfigError
from autobiz.settings import Settings, TemporalSettings
from kernel.redaction import redact_text

log = logging.getLogger(__name__)

_TLS_PATHS = (
    "tls_client_cert_path",
    "tls_client_key_path",
    "tls_server_ca_cert_path",
    "tls_server_name",
)


class RedactingFailureConverter(DefaultFailureConverter):
    """Redacts every failure (and its causes), then encodes message and stack trace."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=False)

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        super().to_failure(exception, payload_converter, failure)  # causes recurse via self
        message = redact_text(failure.message)
        stack_trace = redact_text(failure.stack_trace)
        failure.encoded_attributes.CopyFrom(
            payload_converter.to_payloads([{"message": message, "stack_trace": stack_trace}])[0]
        )
        failure.message = "Encoded failure"
        failure.stack_trace = ""


def data_converter(settings: Settings) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec.from_settings(settings),
        failure_converter_class=RedactingFailureConverter,
    )


@dataclasses.dataclass(frozen=True)
class TemporalConnection:
    """Where and how to connect. The repr names no secret: the API key is a SecretStr,
    the TLS material (key bytes) and gRPC metadata are left out."""

    target_host: str
    namespace: str
    api_key: SecretStr | None = None
    tls: bool | TLSConfig = dataclasses.field(default=False, repr=False)
    rpc_metadata: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def tls_mode(self) -> str:
        if self.tls is False:
            return "off"
        if isinstance(self.tls, TLSConfig) and self.tls.client_cert:
            return "mtls"
        return "on"

    def describe(self) -> str:
        """For logs and error messages: no secret in it."""
        key = "set" if self.api_key else "none"
        return f"{self.target_host} namespace={self.namespace} tls={self.tls_mode} api_key={key}"


def resolve(settings: Settings, *, env: Mapping[str, str] | None = None) -> TemporalConnection:
    """The connection ``settings`` and the Temporal environment configuration describe
    (see the module docstring for the precedence). ``env``: the environment to read
    TEMPORAL_* from (default: the process's)."""
    t = settings.temporal
    given = t.model_fields_set
    try:
        profile = ClientConfigProfile.load(override_env_vars=env)
    except Exception as exc:  # the bridge raises plain RuntimeError/ValueError
        raise ConfigError(
            f"cannot load the Temporal client configuration: {type(exc).__name__}",
            hint="check TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE and the TOML file",
        ) from None
    explicit_address = t.address_override or (t.dev_address if given & {"host", "port"} else None)
    api_key = t.api_key or (SecretStr(profile.api_key) if profile.api_key else None)
    return TemporalConnection(
        target_host=explicit_address or profile.address or t.dev_address,
        namespace=t.namespace if "namespace" in given else (profile.namespace or t.namespace),
        api_key=api_key,
        tls=_tls(t, profile, api_key is not None),
        rpc_metadata=dict(profile.grpc_meta),
    )


def describe_target(settings: Settings) -> str:
    """Where ``connect(settings)`` goes, for an error message (never raises, no secret)."""
    try:
        return resolve(settings).describe()
    except ConfigError:
        return settings.temporal.address


def _tls(t: TemporalSettings, profile: ClientConfigProfile, has_api_key: bool) -> bool | TLSConfig:
    if t.tls is False:
        return False
    if t.tls is True or any(getattr(t, name) is not None for name in _TLS_PATHS):
        if (t.tls_client_cert_path is None) != (t.tls_client_key_path is None):
            raise ConfigError(
                "mTLS needs both a client certificate and its key",
                hint="set AUTOBIZ_TEMPORAL__TLS_CLIENT_CERT_PATH and __TLS_CLIENT_KEY_PATH",
            )
        return TLSConfig(
            domain=t.tls_server_name,
            server_root_ca_cert=_read(t.tls_server_ca_cert_path, "TLS_SERVER_CA_CERT_PATH"),
            client_cert=_read(t.tls_client_cert_path, "TLS_CLIENT_CERT_PATH"),
            client_private_key=_read(t.tls_client_key_path, "TLS_CLIENT_KEY_PATH"),
        )
    if profile.tls is not None:
        try:
            return profile.tls.to_connect_tls_config()
        except OSError as exc:
            raise ConfigError(
                f"cannot read a TLS file of the Temporal profile: {exc.filename}"
            ) from None
    return has_api_key


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path} (AUTOBIZ_TEMPORAL__{setting}): {exc.strerror}"
        ) from None


async def connect(
    settings: Settings,
    *,
    target_host: str | None = None,
    namespace: str | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """A client with the shared converter, connected as ``resolve(settings)`` says.

    ``target_host``: a specific local, plaintext server the caller started (a test's or
    the dev stack's dev server); TEMPORAL_* and the TLS/API-key settings do not apply.
    ``runtime``: a worker's runtime (Prometheus metrics); None: the default one."""
    if target_host is not None:
        conn = TemporalConnection(target_host, namespace or settings.temporal.namespace)
    else:
        conn = resolve(settings)
        if namespace is not None:
            conn = dataclasses.replace(conn, namespace=namespace)
    log.debug("connecting to Temporal: %s", conn.describe())
    return await Client.connect(
        conn.target_host,
        namespace=conn.namespace,
        api_key=conn.api_key.get_secret_value() if conn.api_key else None,
        tls=conn.tls,
        rpc_metadata=conn.rpc_metadata,
        data_converter=data_converter(settings),
        runtime=runtime,
    )
