"""The payload codec, the redacting failure converter, and the codec server."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from autobiz.codec import AesGcmCodec, CodecError
from autobiz.codec_server import create_app
from autobiz.errors import ConfigError
from autobiz.settings import CodecServerAuth, Environment, KernelSettings, Settings
from autobiz.temporal_client import data_converter
from tests.kernel.corpus import SECRETS

pytestmark = pytest.mark.unit

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()


def settings(**kw) -> Settings:
    kernel = KernelSettings(
        codec_keys={"k1": SecretStr(K1), "k2": SecretStr(K2)}, codec_active_key="k2", **kw
    )
    return Settings(kernel=kernel)


async def test_round_trip_with_key_id_and_rotation() -> None:
    old = AesGcmCodec({"k1": b"1" * 32}, "k1")
    new = AesGcmCodec.from_settings(settings())
    plain = Payload(metadata={"encoding": b"json/plain"}, data=SECRETS["email"].encode())
    sealed = await old.encode([plain])
    assert sealed[0].metadata["encryption-key-id"] == b"k1"
    assert SECRETS["email"].encode() not in sealed[0].data
    assert (await new.decode(sealed))[0] == plain  # old key still listed: still readable
    assert (await new.encode([plain]))[0].metadata["encryption-key-id"] == b"k2"


async def test_unknown_key_and_tampering_are_refused() -> None:
    codec = AesGcmCodec.from_settings(settings())
    sealed = (await codec.encode([Payload(data=b"x")]))[0]
    stranger = AesGcmCodec({"k9": b"9" * 32}, "k9")
    with pytest.raises(CodecError) as info:
        await stranger.decode([sealed])
    assert info.value.code == "CODEC_UNKNOWN_KEY"
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(CodecError):
        await codec.decode([tampered])
    # Moving a payload under another key id fails authentication.
    moved = Payload()
    moved.CopyFrom(sealed)
    moved.metadata["encryption-key-id"] = b"k1"
    with pytest.raises(CodecError):
        await codec.decode([moved])


def test_dev_key_is_refused_in_production() -> None:
    with pytest.raises(ConfigError):
        AesGcmCodec.from_settings(Settings(env=Environment.PRODUCTION))
    AesGcmCodec.from_settings(Settings())  # fine in development


def test_failure_converter_redacts_then_encodes() -> None:
    dc = data_converter(settings())
    failure = Failure()
    try:
        try:
            raise ValueError(f"inner {SECRETS['stripe_secret_live_long']}")
        except ValueError as inner:
            raise ApplicationError(f"charge {SECRETS['visa_spaced']} failed", type="X") from inner
    except ApplicationError as exc:
        dc.failure_converter.to_failure(exc, dc.payload_converter, failure)
    assert failure.message == "Encoded failure" and failure.stack_trace == ""
    assert failure.cause.message == "Encoded failure"
    back = dc.failure_converter.from_failure(failure, dc.payload_converter)
    assert "[REDACTED:card_number]" in str(back)
    assert "[REDACTED:stripe_key]" in str(back.__cause__)
    assert SECRETS["visa_spaced"] not in failure.SerializeToString().decode("latin-1")


async def test_codec_server_needs_the_token_and_decodes() -> None:
    with pytest.raises(ConfigError):
        create_app(settings(codec_server_auth=CodecServerAuth.TOKEN))  # and no token
    s = settings(codec_server_token=SecretStr("t0ken-for-tests"))
    codec = AesGcmCodec.from_settings(s)
    sealed = (await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"hi"')]))[0]
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    transport = httpx.ASGITransport(app=create_app(s))
    async with httpx.AsyncClient(transport=transport, base_url="http://codec") as client:
        await _check_server(client, body)


async def _check_server(client: httpx.AsyncClient, body: dict) -> None:
    assert (await client.post("/decode", json=body)).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.post("/decode", json=body, headers=bad)).status_code == 401
    good = {"Authorization": "Bearer t0ken-for-tests"}
    resp = await client.post("/decode", json=body, headers=good)
    assert resp.status_code == 200
    payload = json.loads(resp.text)["payloads"][0]
    assert base64.b64decode(payload["data"]) == b'"hi"'
    enc = await client.post(
        "/encode", json={"payloads": [{"data": base64.b64encode(b"x").decode()}]}, headers=good
    )
    assert enc.status_code == 200
    assert (
        base64.b64decode(json.loads(enc.text)["payloads"][0]["metadata"]["encoding"])
        == b"binary/encrypted"
    )
