"""TLS channels: custom roots reach a TLS server on loopback; untrusted servers fail fast, never hang."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import invora
from invora import _catalog


def make_cert() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "invora-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("sandbox.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[str, bytes, list[dict[str, str]]]]:
    cert, key = make_cert()
    seen: list[dict[str, str]] = []
    m = _catalog.method("simple.invoices.get")

    def handle(req: Any, context: grpc.ServicerContext) -> Any:
        seen.append(dict(context.invocation_metadata()))
        return m.response_class()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=m.request_class.FromString,
        response_serializer=m.response_class.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(m.service.full_name, {"Get": handler}),)
    )
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    yield f"127.0.0.1:{port}", cert, seen
    server.stop(None)


def test_custom_roots_over_tls(tls_server: tuple[str, bytes, list[dict[str, str]]], tmp_path: Any) -> None:
    target, cert, seen = tls_server
    with invora.Client(target, root_certificates=cert, credentials="pat-tls") as client:
        assert client._settings.config.secure
        client.simple.invoices.get(key="k")
    assert seen[-1]["authorization"] == "Bearer pat-tls"
    path = tmp_path / "ca.pem"
    path.write_bytes(cert)
    with invora.Client(
        f"https://{target}", root_certificates=str(path), ssl_target_name="sandbox.test"
    ) as client:
        client.simple.invoices.get(key="k")


async def test_custom_roots_over_tls_async(tls_server: tuple[str, bytes, list[dict[str, str]]]) -> None:
    target, cert, _ = tls_server
    async with invora.AsyncClient(target, root_certificates=cert) as client:
        await client.simple.invoices.get(key="k")


def test_untrusted_server_fails_fast(tls_server: tuple[str, bytes, list[dict[str, str]]]) -> None:
    target, _, _ = tls_server
    with invora.Client(target, tls=True, retry=None, timeout=10) as client, pytest.raises(invora.Unavailable):
        client.simple.invoices.get(key="k")


def test_plaintext_client_against_tls_server_fails_fast(
    tls_server: tuple[str, bytes, list[dict[str, str]]],
) -> None:
    target, _, _ = tls_server
    with invora.Client(target, retry=None, timeout=10) as client, pytest.raises(invora.Unavailable):
        client.simple.invoices.get(key="k")
