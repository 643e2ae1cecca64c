"""The tools under hostile settings (issue 12, item 10): bench without a target, mixed sandbox and
production settings, missing extras, money as Decimal/float, interrupted JSON output, a busy port."""

from __future__ import annotations

import decimal
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import invora
from invora.cli import main
from invora.decimal import from_decimal
from invora.sandbox import Sandbox

ENV = ("INVORA_TARGET", "INVORA_ENV", "INVORA_TOKEN_URL", "INVORA_CLIENT_ID", "INVORA_CLIENT_SECRET",
       "INVORA_TOKEN", "INVORA_ORG_ID", "INVORA_DATA", "INVORA_TRANSPORT")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def idle_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    sys.stdin.isatty = lambda: True  # type: ignore[method-assign]


def _traffic(sb: Sandbox) -> tuple[int, int]:
    return sb.token_requests, len(sb.calls)


def test_bench_refuses_to_pick_production_by_default(
    capsys: pytest.CaptureFixture[str], idle_stdin: None
) -> None:
    code = main(["bench", "simple.invoices.get", "--data", '{"key": "k"}', "--total", "1", "--quiet"])
    assert code == 2
    assert "explicit --target" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["call", "bench"])
def test_mixed_sandbox_and_production_settings_send_nothing(
    invora_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], command: str, idle_stdin: None
) -> None:
    sb = invora_sandbox
    creds = ["--client-id", sb.client_id, "--client-secret", sb.client_secret]
    extra = ["--total", "1", "--quiet"] if command == "bench" else []
    base = [command, "simple.invoices.get", "--data", '{"key": "k"}', *creds, *extra]
    before = _traffic(sb)
    # A sandbox target without its token endpoint: the secret would go to Invora's production endpoint.
    assert main([*base, "--target", sb.grpc_target]) == 2
    assert "--token-url" in capsys.readouterr().err
    # A sandbox token endpoint without a target: the sandbox token would go to production.
    assert main([*base, "--token-url", sb.token_url]) == 2
    assert "--target" in capsys.readouterr().err
    assert main([*base, "--token-url", sb.token_url, "--env", "staging"]) == 2
    assert _traffic(sb) == before


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_missing_extras_name_the_install_line(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    bench = _python(
        "import sys; sys.modules['hdrh'] = None\n"
        "from invora.cli import main\n"
        "sys.exit(main(sys.argv[1:]))",
        "bench", "simple.invoices.get", "--data", '{"key": "k"}', "--total", "1", "--quiet",
        "--target", sb.grpc_target, "--token-url", sb.token_url,
        "--client-id", sb.client_id, "--client-secret", sb.client_secret,
    )  # fmt: skip
    assert bench.returncode == 2, bench.stderr
    assert "pip install 'invora[bench]'" in bench.stderr and "Traceback" not in bench.stderr
    hooks = _python(
        "import sys; sys.modules['cryptography'] = None\n"
        "import invora.webhooks as w\n"
        "try:\n"
        "    w.JWKS({'keys': [{'kty': 'RSA', 'n': 'AQAB', 'e': 'AQAB', 'kid': 'a'}]})\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'invora[webhooks]'" in hooks.stdout, hooks.stderr
    sandbox = _python(
        "import sys; sys.modules['cryptography'] = None\n"
        "from invora.cli import main\n"
        "sys.exit(main(['sandbox', '--grpc-port', '0', '--http-port', '0']))"
    )
    assert sandbox.returncode == 2 and "pip install 'invora[sandbox]'" in sandbox.stderr


def test_money_as_decimal_or_float_points_to_from_decimal() -> None:
    with invora.Client("127.0.0.1:1", retry=None) as client:
        for amount in (decimal.Decimal("1.50"), 1.5):
            with pytest.raises(TypeError, match="from_decimal"):
                client.simple.invoices.create(changes={"lines": [{"quantity": amount}]})
    with pytest.raises(ValueError, match="resolution"):
        from_decimal("1e-10")
    assert from_decimal("0.1234567894").nanos == 123456789  # ordinary rounding is unchanged


class _Interrupting(io.StringIO):
    """stdout that is interrupted (Ctrl-C) on its ``after``-th write."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == self.after:
            raise KeyboardInterrupt
        return super().write(text)


@pytest.fixture()
def tenant_with_invoices(invora_sandbox: Sandbox) -> Iterator[Any]:
    sb = invora_sandbox
    tenant = sb.create_tenant("JSON output")
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    with invora.Client(sb.grpc_target, credentials=creds) as client:
        changes = {
            "buyer": {"name": "Najd Foods", "vat_number": "300000000000003"},
            "currency_code": "SAR",
            "issue_date": {"year": 2026, "month": 3, "day": 1},
            "lines": [{"description": "Consulting", "quantity": from_decimal("1"),
                       "unit_price": from_decimal("10"), "tax_rate": from_decimal("15")}],
        }  # fmt: skip
        for i in range(3):
            client.simple.invoices.create(key=f"OUT-{i}", changes=changes)
    yield tenant


def test_interrupted_json_output_is_still_a_json_array(
    invora_sandbox: Sandbox, tenant_with_invoices: Any, monkeypatch: pytest.MonkeyPatch, idle_stdin: None
) -> None:
    sb, tenant = invora_sandbox, tenant_with_invoices
    out = _Interrupting(after=3)  # "[", the first item, then Ctrl-C
    monkeypatch.setattr(sys, "stdout", out)
    code = main([
        "list", "simple.invoices", "--page-size", "1", "-o", "json", "--target", sb.grpc_target,
        "--token-url", sb.token_url, "--client-id", tenant.client_id, "--client-secret", tenant.client_secret,
    ])  # fmt: skip
    assert code == 130
    items = json.loads(out.getvalue())
    assert isinstance(items, list) and len(items) == 1


def test_the_sandbox_names_the_port_it_could_not_bind() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _python(
            "import sys\nfrom invora.cli import main\nsys.exit(main(sys.argv[1:]))",
            "sandbox", "--grpc-port", "0", "--http-port", str(port),
        )  # fmt: skip
    assert (
        result.returncode == 1 and f"HTTP port {port}" in result.stderr and "Traceback" not in result.stderr
    )


def test_native_grpc_log_lines_stay_off_the_cli_stderr(invora_sandbox: Sandbox) -> None:
    # TLS to a plaintext port: grpc's C core logs every failed handshake to file descriptor 2.
    result = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom invora.cli import main\nsys.exit(main(sys.argv[1:]))",
         "call", "simple.invoices.get", "--data", '{"key": "k"}', "--token", "opaque-token-123456",
         "--target", f"https://{invora_sandbox.grpc_target}"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
    assert "ssl_transport_security" not in result.stderr and ".cc:" not in result.stderr
    assert "absl" not in result.stderr  # the line grpc prints before its first log line, when it does
