"""The CLI contract (first stdout line is JSON; SIGTERM exits 0) and TLS on both servers."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from invora._catalog import service
from invora.sandbox import Sandbox


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "invora.sandbox", "--grpc-port", "0", "--http-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    if not line or not line[0].strip():
        proc.kill()
        pytest.fail(f"no JSON line from the sandbox CLI; stderr: {proc.communicate()[1][:2000]}")
    return proc, json.loads(line[0])


def test_cli_subprocess_end_to_end() -> None:
    proc, info = _start("--seed", "3")
    try:
        assert set(info) >= {"grpc_target", "rest_url", "token_url", "client_id", "client_secret", "org_id"}
        assert info["token_url"] == info["rest_url"] + "/oauth/v2/token"
        r = httpx.post(
            info["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "scope": "openid",
            },
            timeout=10,
        )
        assert r.status_code == 200
        token = r.json()["access_token"]
        md = (("authorization", f"Bearer {token}"), ("x-target-org-id", info["org_id"]))
        # gRPC with plain generated stubs.
        svc = service("simple.invoices")
        stub_cls = svc.load_grpc().SimpleInvoiceServiceStub
        with grpc.insecure_channel(info["grpc_target"]) as channel:
            listing = stub_cls(channel).List(svc.method("List").request_class(), metadata=md, timeout=10)
        assert listing.total_count == 3
        # REST.
        key = listing.items[0].key
        g = httpx.get(f"{info['rest_url']}/api/v1/simple/invoices/{key}", headers=dict(md), timeout=10)
        assert g.status_code == 200 and g.json()["details"]["key"] == key
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert info["client_secret"] not in err


def test_cli_sigint_and_flags() -> None:
    proc, info = _start("--rate-limit", "100", "--token-ttl", "60", "--latency", "0", "--error-rate", "0")
    try:
        r = httpx.post(
            info["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
        )
        assert r.json()["expires_in"] == 60
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_cli_rejects_bad_flags() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "invora.sandbox", "--tls-cert", "x.pem"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--tls-key" in r.stderr


def test_main_is_importable() -> None:
    from invora.sandbox.__main__ import build_parser, main

    assert callable(main)
    args = build_parser().parse_args(["--grpc-port", "0", "--http-port", "0", "--seed", "5"])
    assert (args.grpc_port, args.http_port, args.seed) == (0, 0, 5)


# -- TLS ------------------------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.test")])
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
            x509.SubjectAlternativeName([x509.DNSName("sandbox.test"), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with Sandbox(tls=(cert, key), seed=2) as sb:
        assert sb.rest_url.startswith("https://") and sb.token_url.startswith("https://")
        ca = tmp_path / "ca.pem"
        ca.write_bytes(cert)
        import ssl

        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.check_hostname = False  # the certificate names sandbox.test, the URL an IP
        r = httpx.post(
            sb.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": sb.client_id,
                "client_secret": sb.client_secret,
            },
            verify=ctx,
        )
        assert r.status_code == 200
        token = r.json()["access_token"]
        creds = grpc.ssl_channel_credentials(root_certificates=cert)
        svc = service("simple.invoices")
        with grpc.secure_channel(
            sb.grpc_target, creds, options=[("grpc.ssl_target_name_override", "sandbox.test")]
        ) as channel:
            stub = svc.load_grpc().SimpleInvoiceServiceStub(channel)
            listing = stub.List(
                svc.method("List").request_class(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        assert listing.total_count == 2
        # A plaintext client cannot talk to the TLS port.
        with grpc.insecure_channel(sb.grpc_target) as plain, pytest.raises(grpc.RpcError) as exc:
            svc.load_grpc().SimpleInvoiceServiceStub(plain).List(
                svc.method("List").request_class(), timeout=3
            )
        assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        # An untrusted root is refused.
        with pytest.raises(httpx.ConnectError):
            httpx.get(sb.issuer + "/.well-known/openid-configuration")


def test_cli_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    proc, info = _start("--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))
    try:
        assert info["rest_url"].startswith("https://")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_fixed_port_conflict_is_reported() -> None:
    with Sandbox() as sb:
        with pytest.raises(OSError):
            Sandbox(grpc_port=sb.grpc_port).start()
        with pytest.raises(OSError):
            Sandbox(http_port=sb.http_port).start()


def test_env_file_is_sourced_by_a_shell_and_removed_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.env"
    proc, info = _start("--env-file", str(path))
    try:
        assert path.stat().st_mode & 0o777 == 0o600  # it holds the client secret
        script = (
            f'source {path}; printf "%s\\n" "$INVORA_TARGET" "$INVORA_TOKEN_URL" "$INVORA_CLIENT_ID" '
            + ('"$INVORA_CLIENT_SECRET" "$INVORA_ORG_ID"')
        )
        r = subprocess.run(["bash", "-euc", script], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        keys = ("grpc_target", "token_url", "client_id", "client_secret", "org_id")
        assert r.stdout.splitlines() == [info[k] for k in keys]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"source {path}" in err and info["client_secret"] not in err
    assert not path.exists()  # stale credentials would point at a sandbox that is gone


def test_env_line_quotes_every_value_for_the_shell() -> None:
    from invora.sandbox.__main__ import env_line

    nasty = {
        "grpc_target": "127.0.0.1:1",
        "token_url": "http://x/t?a=1&b=2",
        "client_id": "id with spaces",
        "client_secret": "-'$(touch /nonexistent)`x`\"",
        "org_id": "1",
    }
    script = (
        env_line(nasty) + '; printf "%s\\n" "$INVORA_TOKEN_URL" "$INVORA_CLIENT_ID" "$INVORA_CLIENT_SECRET"'
    )
    r = subprocess.run(["bash", "-euc", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [nasty["token_url"], nasty["client_id"], nasty["client_secret"]]


def test_issued_secrets_never_start_with_a_dash() -> None:
    # argparse reads `--client-secret -x...` as a missing value; one in 64 url-safe secrets would start so.
    with Sandbox(grpc_port=0, http_port=0) as sb:
        secrets = [sb.client_secret] + [sb.create_tenant(f"T{i}").client_secret for i in range(300)]
    assert len(set(secrets)) == len(secrets) and not [s for s in secrets if s.startswith("-")]


def test_help_shows_the_default_ports_and_the_env_file() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "invora.sandbox", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0
    assert "default 50051" in r.stdout and "default 8080" in r.stdout and "--env-file" in r.stdout
