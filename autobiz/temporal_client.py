"""The one way to reach Temporal: ``connect(settings)``, used by workers, starters,
the CLI and tests.

It wires the data converter every process must share: pydantic payloads, the AES-GCM
payload codec, and a failure converter that redacts secrets/PII from failure messages
and stack traces and then moves them into encoded (so encrypted) attributes.
"""

from __future__ import annotations

import dataclasses

from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.runtime import Runtime

from autobiz.codec import AesGcmCodec
from autobiz.settings import Settings
from kernel.redaction import redact_text


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


async def connect(
    settings: Settings,
    *,
    target_host: str | None = None,
    namespace: str | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """A client on ``settings.temporal`` (or ``target_host``) with the shared converter.
    ``runtime``: a worker's runtime (Prometheus metrics); None: the default one."""
    return await Client.connect(
        target_host or settings.temporal.address,
        namespace=namespace or settings.temporal.namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )
