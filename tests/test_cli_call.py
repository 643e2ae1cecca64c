"""``invora call``: the real console script in a subprocess against the sandbox (inline/@file/stdin data,
streams, and every error exit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INVORA = Path(sys.executable).with_name("invora")
INVOICE = {
    "changes": {
        "currencyCode": "SAR",
        "buyer": {"name": "Najd Foods"},
        "lines": [
            {"description": "Consulting", "quantity": {"units": "3"}, "unitPrice": {"units": "250"},
             "taxRate": {"units": "15"}},
        ],
    }
}  # fmt: skip


def cli_env(sb: Any, tenant: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    env.update(
        INVORA_TARGET=sb.grpc_target,
        INVORA_TOKEN_URL=sb.token_url,
        INVORA_CLIENT_ID=tenant.client_id,
        INVORA_CLIENT_SECRET=tenant.client_secret,
    )
    return env


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INVORA), *args], env=env, input=stdin if stdin is not None else "", capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tenant(invora_sandbox: Any) -> Any:
    return invora_sandbox.create_tenant("CLI Call Co")


@pytest.fixture(scope="module")
def env(invora_sandbox: Any, tenant: Any) -> dict[str, str]:
    return cli_env(invora_sandbox, tenant)


def test_console_script_is_installed() -> None:
    assert INVORA.exists(), "run `make install`: the invora console script is missing from the venv"


def test_call_inline_data_prints_proto3_json(env: dict[str, str], tenant: Any) -> None:
    r = run(env, "call", "simple.invoices.create", "--data", json.dumps(INVOICE))
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)["details"]
    assert created["buyer"]["name"] == "Najd Foods"
    assert "concurrencyStamp" in created and "concurrency_stamp" not in created  # camelCase
    assert created["totals"]["payableAmount"] == {"units": "862", "nanos": 500000000}  # int64 as strings
    # Full method name, @file and stdin give the same document back.
    r2 = run(
        env,
        "call",
        "invora.simple.invoices.v1.SimpleInvoiceService/Get",
        "--data",
        json.dumps({"key": created["key"]}),
    )
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["details"]["key"] == created["key"]


def test_call_data_from_file_and_stdin(env: dict[str, str], tmp_path: Path) -> None:
    req = tmp_path / "invoice.json"
    req.write_text(json.dumps(INVOICE))
    by_file = run(env, "call", "simple.invoices.create", "--data", f"@{req}")
    assert by_file.returncode == 0, by_file.stderr
    key = json.loads(by_file.stdout)["details"]["key"]
    by_stdin = run(env, "call", "simple.invoices.get", stdin=json.dumps({"key": key}))
    assert by_stdin.returncode == 0, by_stdin.stderr
    assert json.loads(by_stdin.stdout)["details"]["key"] == key
    dash = run(
        env, "call", "simple.invoices.get", "--data", "-", "-o", "jsonl", stdin=json.dumps({"key": key})
    )
    assert dash.returncode == 0 and dash.stdout.count("\n") == 1
    assert json.loads(dash.stdout)["details"]["key"] == key


def test_call_snake_case_input_and_all_fields(env: dict[str, str]) -> None:
    body = {"changes": {"currency_code": "SAR", "buyer": {"name": "B"},
            "lines": [{"description": "x", "quantity": {"units": 1}, "unit_price": {"units": 5}}]}}  # fmt: skip
    r = run(env, "call", "simple.invoices.create", "--data", json.dumps(body), "--all-fields")
    assert r.returncode == 0, r.stderr
    details = json.loads(r.stdout)["details"]
    assert details["frozen"] is False and details["number"] == ""  # defaults printed with --all-fields


def test_call_verbose_prints_metadata_to_stderr_only(env: dict[str, str]) -> None:
    r = run(env, "call", "simple.invoices.list", "--verbose", "--data", "{}")
    assert r.returncode == 0, r.stderr
    assert "response headers:" in r.stderr and "response trailers:" in r.stderr
    json.loads(r.stdout)  # stdout stays pure JSON


def test_call_server_and_client_streams(env: dict[str, str]) -> None:
    created = run(env, "call", "documents.stream_create", "-o", "jsonl", "--data", "[{}, {}, {}]")
    assert created.returncode == 0, created.stderr
    lines = [json.loads(line) for line in created.stdout.splitlines()]
    assert len(lines) == 3 and all("successKey" in ln["result"] for ln in lines)
    streamed = run(env, "call", "documents.list_stream", "-o", "jsonl")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.strip(), "a server stream prints at least one message"


def test_not_found_exits_1_with_status_and_details(env: dict[str, str]) -> None:
    r = run(env, "call", "simple.invoices.get", "--data", '{"key": "no-such-invoice"}')
    assert r.returncode == 1
    assert r.stdout == ""
    assert "NOT_FOUND (HTTP 404)" in r.stderr and "no-such-invoice" in r.stderr
    assert "error info: reason=NOT_FOUND" in r.stderr
    assert "Traceback" not in r.stderr


def test_validation_error_prints_every_detail(env: dict[str, str]) -> None:
    r = run(env, "call", "simple.invoices.create", "--data", '{"changes": {"currencyCode": "SAR"}}')
    assert r.returncode == 1
    assert "INVALID_ARGUMENT (HTTP 400)" in r.stderr
    assert "field violation: changes.buyer.name" in r.stderr
    assert "validation error: field=changes.lines" in r.stderr


def test_frozen_invoice_edit_is_failed_precondition(env: dict[str, str]) -> None:
    body = dict(INVOICE, freezeImmediately=True)
    made = json.loads(run(env, "call", "simple.invoices.create", "--data", json.dumps(body)).stdout)[
        "details"
    ]
    assert made["frozen"] is True
    upd = {"key": made["key"], "concurrencyStamp": made["concurrencyStamp"], "changes": {"note": "late"},
           "mask": "note"}  # fmt: skip
    r = run(env, "call", "simple.invoices.update", "--data", json.dumps(upd))
    assert r.returncode == 1 and "FAILED_PRECONDITION (HTTP 400)" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["call", "simple.invoice.get"], "did you mean: simple.invoices.get"),
        (["call", "nope.Svc/Get"], "unknown method 'nope.Svc/Get'"),
        (["call", "simple.invoices.get", "--data", '{"key":'], "invalid JSON in --data"),
        (["call", "simple.invoices.get", "--data", '{"kee": "x"}'], 'has no field named "kee"'),
        (["call", "simple.invoices.get", "--data", "[1, 2]"], "takes one request object"),
        (["call", "simple.invoices.get", "--data", "@/nonexistent/req.json"], "cannot read --data file"),
        (["call", "simple.invoices.get", "--org-id", "bad org"], "invalid org id 'bad org'"),
        (["call", "simple.invoices.get", "--target", "not a target"], "has no port"),
        (["call", "simple.invoices.get", "--transport", "carrier-pigeon"], "--transport: invalid value"),
        (["call"], "the following arguments are required: method"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_without_traceback(env: dict[str, str], args: list[str], needle: str) -> None:
    r = run(env, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_foreign_org_is_permission_denied(env: dict[str, str], invora_sandbox: Any) -> None:
    other = invora_sandbox.create_tenant("Somebody Else")
    r = run(env, "call", "simple.invoices.list", "--org-id", other.org_id)
    assert r.returncode == 1
    assert "PERMISSION_DENIED (HTTP 403)" in r.stderr and "TENANT_FORBIDDEN" in r.stderr


def test_unreachable_target_is_a_clear_unavailable(env: dict[str, str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    get = ("call", "simple.invoices.get", "--data", '{"key": "x"}')
    for target in (
        ["--target", f"127.0.0.1:{port}"],
        ["--transport", "rest", "--target", f"http://127.0.0.1:{port}"],
    ):
        r = run(env, *get, *target)
        assert r.returncode == 1
        # No response came, so no HTTP status is shown (over REST, none exists).
        assert "UNAVAILABLE (connection failed, no response)" in r.stderr, r.stderr
        assert "HTTP 503" not in r.stderr and "is the target reachable?" in r.stderr
        assert "Traceback" not in r.stderr


def test_wrong_protocol_for_the_port_gets_a_hint(env: dict[str, str], invora_sandbox: Any) -> None:
    get = ("call", "simple.invoices.get", "--data", '{"key": "x"}')
    rest_port = invora_sandbox.rest_url.removeprefix("http://")
    r = run(env, *get, "--target", rest_port)  # gRPC to the REST (HTTP/1) port
    assert r.returncode == 1 and "hint: the target does not speak gRPC" in r.stderr, r.stderr
    assert "--transport rest" in r.stderr
    r = run(env, *get, "--transport", "rest", "--target", f"http://{invora_sandbox.grpc_target}")  # and back
    assert r.returncode == 1 and "(no HTTP response)" in r.stderr, r.stderr
    assert "drop --transport rest" in r.stderr


def test_a_secret_starting_with_a_dash(env: dict[str, str]) -> None:
    r = run(env, "call", "simple.invoices.get", "--data", '{"key": "x"}', "--client-secret", "-abc")
    assert r.returncode == 2 and "--client-secret=VALUE" in r.stderr and "INVORA_CLIENT_SECRET" in r.stderr
    r = run(env, "call", "simple.invoices.get", "--data", '{"key": "x"}', "--client-secret=-abc")
    assert r.returncode == 3 and "-abc" not in r.stderr  # reached the token endpoint, which refused it


def test_plaintext_to_remote_host_with_credentials_is_refused(env: dict[str, str]) -> None:
    r = run(env, "call", "simple.invoices.get", "--target", "http://example.com:8080")
    assert r.returncode == 2
    assert "over a plaintext channel to example.com" in r.stderr


def test_no_secret_in_any_output(env: dict[str, str], tenant: Any) -> None:
    r = run(
        env, "call", "simple.invoices.get", "--data", '{"key": "x"}', "--client-secret", "wrong-secret-123"
    )
    assert r.returncode == 3
    assert "authentication failed" in r.stderr
    for text in (r.stdout, r.stderr):
        assert "wrong-secret-123" not in text and tenant.client_secret not in text


def test_rest_transport(env: dict[str, str], invora_sandbox: Any, tenant: Any) -> None:
    rest = {**env, "INVORA_TRANSPORT": "rest", "INVORA_TARGET": invora_sandbox.rest_url}
    invora_sandbox.clear_calls()
    made = run(rest, "call", "simple.invoices.create", "--data", json.dumps(INVOICE))
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["details"]["key"]
    listed = run(
        env,
        "list",
        "simple.invoices",
        "-o",
        "jsonl",
        "--transport",
        "rest",
        "--target",
        invora_sandbox.rest_url,
    )
    assert listed.returncode == 0 and key in listed.stdout
    mine = [c for c in invora_sandbox.calls if c.org_id == tenant.org_id]
    assert mine and all(c.transport == "rest" for c in mine)
    missing = run(rest, "call", "simple.invoices.get", "--data", '{"key": "nope"}')
    assert missing.returncode == 1 and "NOT_FOUND (HTTP 404)" in missing.stderr
    stream = run(rest, "call", "documents.list_stream")
    assert stream.returncode == 1 and "UNIMPLEMENTED" in stream.stderr and "Traceback" not in stream.stderr


def test_no_credentials_is_unauthenticated_with_a_hint(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("INVORA_CLIENT")}
    r = run(bare, "call", "simple.invoices.list")
    assert r.returncode == 1
    assert "UNAUTHENTICATED (HTTP 401)" in r.stderr and "hint: check the credentials" in r.stderr
