"""The ``http2`` extra: the REST transport speaks HTTP/2 to a TLS server that offers it, seen on the wire.

The server is a few lines over the ``h2`` state machine on a real TLS socket; it records the protocol the
TLS handshake settled on (ALPN) and the request's pseudo-headers, and answers ``{}`` in either protocol,
so a client stuck on HTTP/1.1 completes its call and fails only the protocol assertion.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

import invora


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h2.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class WireServer:
    """TLS on a loopback port offering ``h2`` and ``http/1.1``; records (protocol, method, path) per request."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["h2", "http/1.1"])
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[str, str, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)  # every read is bounded: a stuck client cannot hold the test
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as tls:
                if tls.selected_alpn_protocol() == "h2":
                    self._h2(tls)
                else:
                    self._http11(tls)
        except (OSError, ssl.SSLError):
            pass

    def _h2(self, tls: ssl.SSLSocket) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        heads: dict[int, dict[str, str]] = {}
        while data := tls.recv(65536):
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived) and ev.stream_id is not None:
                    heads[ev.stream_id] = {str(k): str(v) for k, v in ev.headers or ()}
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id is not None:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id is not None:
                    h = heads.pop(ev.stream_id)
                    self.seen.append(("h2", h[":method"], h[":path"]))
                    body = b"{}"
                    conn.send_headers(
                        ev.stream_id,
                        [(":status", "200"), ("content-type", "application/json"), ("content-length", "2")],
                    )
                    conn.send_data(ev.stream_id, body, end_stream=True)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return
            tls.sendall(conn.data_to_send())

    def _http11(self, tls: ssl.SSLSocket) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            chunk = tls.recv(65536)
            if not chunk:
                return
            buf += chunk
        method, path, _ = buf.split(b"\r\n", 1)[0].decode().split(" ", 2)
        self.seen.append(("http/1.1", method, path))
        tls.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        )

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[WireServer, bytes]]:
    cert, key = _self_signed(tmp_path)
    srv = WireServer(cert, key)
    try:
        yield srv, cert.read_bytes()
    finally:
        srv.close()


def test_rest_speaks_http2_when_the_extra_is_installed(server: tuple[WireServer, bytes]) -> None:
    srv, cert = server
    target = f"https://127.0.0.1:{srv.port}"
    with invora.Client(
        target, transport="rest", root_certificates=cert, credentials="t", retry=None
    ) as client:
        client.simple.invoices.get(key="INV-1")
        client.simple.invoices.get(key="INV-2")
    assert srv.seen == [
        ("h2", "GET", "/api/v1/simple/invoices/INV-1"),
        ("h2", "GET", "/api/v1/simple/invoices/INV-2"),
    ]


async def test_async_rest_speaks_http2(server: tuple[WireServer, bytes]) -> None:
    srv, cert = server
    target = f"https://127.0.0.1:{srv.port}"
    async with invora.AsyncClient(
        target, transport="rest", root_certificates=cert, credentials="t"
    ) as client:
        await client.simple.invoices.get(key="INV-3")
    assert srv.seen == [("h2", "GET", "/api/v1/simple/invoices/INV-3")]
