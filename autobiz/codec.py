"""The payload codec: every Temporal payload is AES-256-GCM encrypted before it leaves
the process, so workflow history at rest holds no readable PII (DESIGN §3).

Encrypted payloads carry ``encoding: binary/encrypted`` and the key id in
``encryption-key-id``; the key id is also the AEAD associated data, so a payload cannot
be moved under another key. Decoding an unknown key id is refused. Keys come from
``Settings.kernel`` as ``SecretStr``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from autobiz.errors import AutobizError, ConfigError
from autobiz.settings import Settings
from kernel.codes import ErrorCode

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(AutobizError):
    code = ErrorCode.CODEC_ERROR


class AesGcmCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ConfigError(f"codec active key {active_key_id!r} is not among the keys")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ConfigError(f"codec key {key_id!r} must be 32 bytes (AES-256)")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active = active_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> AesGcmCodec:
        ks = settings.kernel
        keys: dict[str, bytes] = {}
        for key_id, secret in ks.codec_keys.items():
            if settings.is_production and key_id.startswith("dev-"):
                continue
            try:
                keys[key_id] = base64.b64decode(secret.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"codec key {key_id!r} is not valid base64") from None
        if ks.codec_active_key not in keys:
            raise ConfigError(
                f"codec active key {ks.codec_active_key!r} is not configured"
                + (" (dev keys are refused in production)" if settings.is_production else ""),
                hint="set AUTOBIZ_KERNEL__CODEC_KEYS and AUTOBIZ_KERNEL__CODEC_ACTIVE_KEY",
            )
        return cls(keys, ks.codec_active_key)

    @property
    def active_key_id(self) -> str:
        return self._active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._active]
        key_id = self._active.encode()
        out: list[Payload] = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id)
            out.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out: list[Payload] = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecError(
                    f"unknown payload key id {key_id!r}", code=ErrorCode.CODEC_UNKNOWN_KEY
                )
            data = payload.data
            try:
                plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
            except InvalidTag:
                raise CodecError(
                    f"payload under key {key_id!r} failed authentication",
                    code=ErrorCode.CODEC_TAMPERED,
                ) from None
            decoded = Payload()
            decoded.ParseFromString(plain)
            out.append(decoded)
        return out
