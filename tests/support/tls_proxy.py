"""A TLS-terminating proxy in front of the plaintext Temporal dev server, for tests of
secured connections (the dev server itself has no TLS or auth flags).

``TlsProxy`` accepts TLS (ALPN ``h2``) and forwards the bytes to the dev server. With
``client_ca`` it demands a client certificate signed by that CA (mTLS, ``CERT_REQUIRED``);
with ``api_key`` it reads the HTTP/2 request headers the client sends (HPACK-decoded by
``tests.support.hpack_lite``) and drops the connection on the first request whose
``authorization`` is not ``Bearer <api_key>`` — what Temporal Cloud does with a bad key,
minus the gRPC status. Why a byte-level proxy and not a gRPC server: no ``grpcio``/``h2``
in the environment, and this way the dev server answers every call for real.

``CertificateAuthority`` makes the throwaway PKI (with ``cryptography``) at test time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.hpack_lite import Decoder, HpackError

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._name = subject
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(common_name),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


class TlsProxy:
    """TLS in front of ``upstream`` (host, port); see the module docstring."""

    def __init__(
        self,
        upstream: str,
        server: Issued,
        *,
        client_ca: bytes | None = None,
        api_key: str | None = None,
    ) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._api_key = api_key
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.set_alpn_protocols(["h2"])
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = server.write(Path(tmp), "server")
            self._context.load_cert_chain(cert, key)
        if client_ca is not None:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(cadata=client_ca.decode())
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted_requests = 0
        self.rejected_requests = 0
        self.handshake_failures: list[str] = []  # the TLS errors of refused handshakes
        self.tunnels = 0  # connections that got through the handshake to the dev server

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> TlsProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:  # the handshake here (not in start_server) so a refusal is seen and recorded
            await writer.start_tls(self._context, ssl_handshake_timeout=10)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.handshake_failures.append(getattr(exc, "reason", None) or type(exc).__name__)
            writer.close()
            self._tasks.discard(task)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        self.tunnels += 1
        try:
            client_to_server = (
                self._pipe(reader, up_writer)
                if self._api_key is None
                else self._checked_pipe(reader, up_writer)
            )
            pumps = [
                asyncio.ensure_future(client_to_server),
                asyncio.ensure_future(self._pipe(up_reader, writer)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    async def _checked_pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward HTTP/2 frame by frame; a header block goes on only once its
        ``authorization`` matched. A mismatch ends the connection."""
        assert self._api_key is not None
        expected = f"Bearer {self._api_key}".encode()
        decoder = Decoder()
        held: list[bytes] = []
        block = b""
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            if await reader.readexactly(len(_PREFACE)) != _PREFACE:
                return
            writer.write(_PREFACE)
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                frame = head + await reader.readexactly(length)
                if kind not in (_HEADERS, _CONTINUATION):
                    writer.write(frame)
                    await writer.drain()
                    continue
                held.append(frame)
                block += _header_fragment(kind, flags, frame[9:])
                if not flags & _END_HEADERS:
                    continue
                try:
                    headers = dict(decoder.decode(block))
                except HpackError:
                    return
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, expected):
                    self.rejected_requests += 1
                    return
                self.accepted_requests += 1
                for f in held:
                    writer.write(f)
                await writer.drain()
                held, block = [], b""


def _header_fragment(kind: int, flags: int, payload: bytes) -> bytes:
    if kind == _CONTINUATION:
        return payload
    start, end = 0, len(payload)
    if flags & _PADDED:
        start, end = 1, len(payload) - payload[0]
    if flags & _PRIORITY:
        start += 5
    return payload[start:end]
