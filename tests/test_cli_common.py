"""Common flags and their INVORA_* fallbacks, client construction, and the sandbox/bench/help plumbing."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import invora
from invora.cli.common import (
    FLAGS,
    UsageError,
    add_common_flags,
    client_from_args,
    credentials_from_args,
    read_data,
    read_json,
    resolve,
)

INVORA = Path(sys.executable).with_name("invora")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("INVORA_"):
            monkeypatch.delenv(key)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_common_flags(p)
    return p.parse_args(argv)


def test_every_flag_has_its_env_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [f.name for f in FLAGS] == [
        "target", "transport", "token-url", "client-id", "client-secret", "token", "org-id", "env", "data",
    ]  # fmt: skip
    values = {"transport": "grpc", "env": "staging"}
    for flag in FLAGS:
        monkeypatch.setenv(flag.env, values.get(flag.name, f"v-{flag.dest}"))
    args = parse()
    for flag in FLAGS:
        assert resolve(args, flag.dest) == values.get(flag.name, f"v-{flag.dest}")
    assert FLAGS[4].env == "INVORA_CLIENT_SECRET" and FLAGS[0].env == "INVORA_TARGET"


def test_flag_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVORA_ORG_ID", "from-env")
    assert resolve(parse("--org-id", "from-flag"), "org_id") == "from-flag"
    assert resolve(parse(), "org_id") == "from-env"


def test_choices_are_validated_for_env_values_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVORA_TRANSPORT", "smoke-signals")
    with pytest.raises(UsageError, match="INVORA_TRANSPORT: invalid value 'smoke-signals'"):
        resolve(parse(), "transport")


def test_credentials_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials_from_args(parse()) is None
    static = credentials_from_args(parse("--token", "abc.def.ghi"))
    assert isinstance(static, invora.StaticToken)
    cc = credentials_from_args(
        parse("--client-id", "id1", "--client-secret", "sec", "--token-url", "http://127.0.0.1:9/t")
    )
    assert isinstance(cc, invora.ClientCredentials) and cc.client_id == "id1"
    assert cc.token_url == "http://127.0.0.1:9/t" and "sec" not in repr(cc)
    # An explicit flag of one kind wins over the other kind coming from the environment.
    monkeypatch.setenv("INVORA_TOKEN", "env-token")
    assert isinstance(
        credentials_from_args(parse("--client-id", "a", "--client-secret", "b")), invora.ClientCredentials
    )
    monkeypatch.delenv("INVORA_TOKEN")
    monkeypatch.setenv("INVORA_CLIENT_ID", "a")
    monkeypatch.setenv("INVORA_CLIENT_SECRET", "b")
    assert isinstance(credentials_from_args(parse("--token", "t")), invora.StaticToken)
    with pytest.raises(UsageError, match="not both"):
        credentials_from_args(parse("--token", "t", "--client-id", "a"))


def test_client_from_args_sync_and_async() -> None:
    args = parse("--target", "127.0.0.1:50051", "--token", "t", "--org-id", "42")
    with client_from_args(args) as client:
        assert isinstance(client, invora.Client)
        assert client.target == "127.0.0.1:50051" and client.org_id == "42"
    aclient = client_from_args(args, asynchronous=True)
    assert isinstance(aclient, invora.AsyncClient) and aclient.org_id == "42"


def test_environment_choice_and_conflicts(monkeypatch: pytest.MonkeyPatch) -> None:
    with client_from_args(parse("--env", "staging")) as c:
        assert c.target == "stg-gateway.invora.app:443"
    with client_from_args(parse()) as c:
        assert c.target == "gateway.invora.app:443"
    with pytest.raises(UsageError, match="either --target or --env"):
        client_from_args(parse("--env", "staging", "--target", "127.0.0.1:1"))
    monkeypatch.setenv("INVORA_ENV", "staging")  # an explicit --target overrides the environment's --env
    with client_from_args(parse("--target", "127.0.0.1:1")) as c:
        assert c.target == "127.0.0.1:1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "127.0.0.1:1", "--org-id", "a b"], "invalid org id"),
        (["--target", "ftp://x"], "unsupported scheme"),
        (
            ["--target", "example.com:443", "--token", "t", "--transport", "grpc", "--org-id", "\x01"],
            "invalid org id",
        ),
    ],
)
def test_configuration_errors_become_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        client_from_args(parse(*argv))


def test_read_json_sources(tmp_path: Path) -> None:
    assert read_json(parse("--data", '{"a": 1}')) == {"a": 1}
    f = tmp_path / "r.json"
    f.write_text('[{"a": 1}]')
    assert read_json(parse("--data", f"@{f}")) == [{"a": 1}]
    assert read_json(parse("--data", "-"), stdin=io.StringIO('{"b": 2}')) == {"b": 2}
    assert read_json(parse(), stdin=io.StringIO('{"c": 3}')) == {"c": 3}  # piped stdin without --data
    assert read_json(parse(), stdin=io.StringIO("  ")) is None
    with pytest.raises(UsageError, match="must be a JSON object"):
        read_data(parse("--data", "[1]"))
    with pytest.raises(UsageError, match="invalid JSON in stdin"):
        read_json(parse("--data", "-"), stdin=io.StringIO("{"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    return subprocess.run(
        [str(INVORA), *args],
        env={**base, **(env or {})},
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_and_version() -> None:
    r = run("--help")
    assert r.returncode == 0
    for command in ("call", "list", "describe", "token", "sandbox", "bench"):
        assert command in r.stdout
    assert "exit codes" in r.stdout
    codes = r.stdout.split("exit codes:", 1)[1]
    for code in (0, 1, 2, 3, 70, 130):  # the list in invora.cli.common and docs/cli.md
        assert f"{code} " in codes, code
    assert run("--version").stdout.strip() == f"invora {invora.__version__}"
    sub = run("list", "--help")
    assert sub.returncode == 0 and "INVORA_CLIENT_SECRET" in sub.stdout and "text=WORDS" in sub.stdout
    assert run().returncode == 2


def test_startup_imports_only_the_method_used() -> None:
    code = (
        "import sys, json, invora.cli, invora.cli.describe as d; d.describe('simple.invoices.get');"
        "print(json.dumps(sorted(m for m in sys.modules if m.endswith('_pb2') and m.startswith('invora._proto'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ["invora._proto.invora.simple.invoices.v1.service_pb2"] or all(
        m.startswith("invora._proto.kernel.") or m.endswith("simple.invoices.v1.service_pb2")
        for m in json.loads(out.stdout)
    ), out.stdout


def test_bench_is_delegated_or_explained() -> None:
    import importlib.util

    r = run("bench", "--help")
    if importlib.util.find_spec("invora.loadtest") is None:
        assert r.returncode == 2 and "invora.loadtest" in r.stderr and "Traceback" not in r.stderr
    else:
        assert r.returncode == 0 and "--target" in r.stdout


def test_sandbox_subcommand_delegates_to_the_sandbox_cli() -> None:
    proc = subprocess.Popen(
        [str(INVORA), "sandbox", "--grpc-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = json.loads(proc.stdout.readline())
        assert info["grpc_target"].startswith("127.0.0.1:") and info["client_secret"]
        env = {"INVORA_TARGET": info["grpc_target"], "INVORA_TOKEN_URL": info["token_url"],
               "INVORA_CLIENT_ID": info["client_id"], "INVORA_CLIENT_SECRET": info["client_secret"]}  # fmt: skip
        r = run("call", "simple.invoices.list", "-o", "jsonl", env=env)
        assert r.returncode == 0, r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert run("sandbox", "--help").stdout.startswith("usage: invora sandbox")
