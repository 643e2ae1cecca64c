"""``invora token``: shows expiry, subject, org and scopes — never the secret, the token only on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INVORA = Path(sys.executable).with_name("invora")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INVORA), *args], env=env, input="", capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def tenant(invora_sandbox: Any) -> Any:
    return invora_sandbox.create_tenant("CLI Token Co")


@pytest.fixture()
def env(invora_sandbox: Any, tenant: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    env.update(
        INVORA_TOKEN_URL=invora_sandbox.token_url,
        INVORA_CLIENT_ID=tenant.client_id,
        INVORA_CLIENT_SECRET=tenant.client_secret,
    )
    return env


def _secrets_absent(r: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for text in (r.stdout, r.stderr):
        for secret in secrets:
            assert secret not in text


def test_text_output_shows_claims_without_token_or_secret(
    env: dict[str, str], tenant: Any, invora_sandbox: Any
) -> None:
    before = invora_sandbox.token_requests
    r = run(env, "token")
    assert r.returncode == 0, r.stderr
    assert invora_sandbox.token_requests == before + 1  # a real grant happened
    out = r.stdout
    assert f"subject         {tenant.client_id}" in out
    assert f"home org        {tenant.org_id}" in out
    assert "expires at" in out and "(in 11h59m" in out
    assert "scopes          openid" in out
    _secrets_absent(r, tenant.client_secret, "eyJ")  # a JWT starts with eyJ: no token printed


def test_json_output(env: dict[str, str], tenant: Any, invora_sandbox: Any) -> None:
    r = run(env, "token", "-o", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["subject"] == tenant.client_id and info["org_id"] == tenant.org_id
    assert info["token_url"] == invora_sandbox.token_url and info["format"] == "jwt"
    assert 43000 < info["expires_in"] <= 43200
    assert "openid" in info["scopes"]
    _secrets_absent(r, tenant.client_secret, "eyJ")


def test_print_token_prints_only_a_working_token(
    env: dict[str, str], tenant: Any, invora_sandbox: Any
) -> None:
    r = run(env, "token", "--print-token")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert r.stdout.count("\n") == 1 and token.count(".") == 2
    assert tenant.client_secret not in r.stdout
    # The printed token works as a static token, and `token --token` inspects it offline.
    static_env = {k: v for k, v in env.items() if not k.startswith("INVORA_CLIENT")}
    static_env.update(INVORA_TOKEN=token, INVORA_TARGET=invora_sandbox.grpc_target)
    listed = run(static_env, "call", "simple.invoices.list")
    assert listed.returncode == 0, listed.stderr
    before = invora_sandbox.token_requests
    inspected = run(static_env, "token", "-o", "json")
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["org_id"] == tenant.org_id
    assert invora_sandbox.token_requests == before  # no grant for a static token
    _secrets_absent(inspected, token)


def test_expired_static_token_is_flagged(env: dict[str, str], tenant: Any, invora_sandbox: Any) -> None:
    expired = invora_sandbox.mint_token(tenant, expired=True)
    static_env = {k: v for k, v in env.items() if not k.startswith("INVORA_CLIENT")}
    r = run(static_env, "token", "--token", expired)
    assert r.returncode == 0, r.stderr
    assert "EXPIRED" in r.stdout and expired not in r.stdout
    info = json.loads(run(static_env, "token", "--token", expired, "-o", "json").stdout)
    assert info["expires_in"] < 0


def test_wrong_secret_exits_3_without_echoing_it(env: dict[str, str], tenant: Any) -> None:
    r = run(env, "token", "--client-secret", "not-the-secret-42")
    assert r.returncode == 3
    assert "invalid_client" in r.stderr and "HTTP 401" in r.stderr
    _secrets_absent(r, "not-the-secret-42", tenant.client_secret)


def test_token_endpoint_fault_is_reported(env: dict[str, str], invora_sandbox: Any) -> None:
    invora_sandbox.inject_token_fault("garbage")
    r = run(env, "token")
    assert r.returncode == 3 and "non-JSON body" in r.stderr and "Traceback" not in r.stderr


def test_missing_or_conflicting_credentials_are_usage_errors(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("INVORA_")}
    r = run(bare, "token")
    assert r.returncode == 2 and "needs --client-id and --client-secret" in r.stderr
    r = run(bare, "token", "--client-id", "abc")
    assert r.returncode == 2 and "--client-id needs --client-secret" in r.stderr
    r = run(bare, "token", "--client-id", "abc", "--client-secret", "s3cr3t-value", "--token", "t")
    assert r.returncode == 2 and "not both" in r.stderr and "s3cr3t-value" not in r.stderr


def test_help_offers_only_the_flags_that_apply(env: dict[str, str]) -> None:
    r = run(env, "token", "--help")
    assert r.returncode == 0
    assert "--client-id" in r.stdout and "--client-secret" in r.stdout and "--token-url" in r.stdout
    for flag in ("--data", "--org-id", "--target", "--transport", "--env "):
        assert flag not in r.stdout, flag
