"""Every example runs as a subprocess: against the session sandbox through INVORA_* variables (the way a
user points them at an environment), and stand-alone with its embedded sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, env: dict[str, str] | None = None, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], env={**base, **(env or {})}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def env_for(sb: Any, tenant: Any) -> dict[str, str]:
    return {
        "INVORA_TARGET": sb.grpc_target,
        "INVORA_TOKEN_URL": sb.token_url,
        "INVORA_CLIENT_ID": tenant.client_id,
        "INVORA_CLIENT_SECRET": tenant.client_secret,
    }


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def test_demo_walks_every_step() -> None:
    out = ok(run("demo.py"))
    for n in range(1, 10):
        assert f"[{n}/9]" in out
    assert "client_secret received" in out and "CreateConnectedBusiness" in out
    assert "INV-2026-000003  ZATCA ACCEPTED" in out
    assert "page 2: INV-2026-000003" in out and "total_count 3, last page" in out
    assert "except invora.FailedPrecondition:  FAILED_PRECONDITION -> HTTP 400" in out
    assert "ErrorInfo: reason=DOCUMENT_FROZEN" in out
    assert "subscribed as najd-foods-pro: ACTIVE" in out
    assert "sent 6 events (5 transaction ids) in one BatchCreate; 5 stored" in out
    assert "api_calls: 5 units from 5 events -> 0.25 SAR" in out
    assert "current usage so far this period: 0.25 SAR" in out


def test_quickstart_sync_against_a_configured_target(invora_sandbox: Any) -> None:
    tenant = invora_sandbox.create_tenant("Example Sync Co")
    out = ok(run("quickstart_sync.py", env_for(invora_sandbox, tenant)))
    assert "embedded sandbox" not in out  # it used the environment
    assert "payable 862.5 SAR" in out and "frozen as INV-2026-000001" in out
    assert "NotFound: Invoice 'no-such-invoice' not found (HTTP 404" in out
    calls = [c for c in invora_sandbox.calls if c.org_id == tenant.org_id]
    assert {c.method.rsplit("/", 1)[1] for c in calls} >= {"Create", "Freeze", "List", "Get"}


def test_quickstart_sync_standalone() -> None:
    out = ok(run("quickstart_sync.py"))
    assert "using an embedded sandbox" in out and "frozen as INV-2026-000001" in out


def test_quickstart_async(invora_sandbox: Any) -> None:
    tenant = invora_sandbox.create_tenant("Example Async Co")
    before = invora_sandbox.token_requests
    out = ok(run("quickstart_async.py", env_for(invora_sandbox, tenant)))
    assert (
        "frozen: INV-2026-000001, INV-2026-000002, INV-2026-000003, INV-2026-000004, INV-2026-000005" in out
    )
    assert "5 frozen invoices" in out and "NotFound: NOT_FOUND -> HTTP 404" in out
    assert invora_sandbox.token_requests == before + 1  # five concurrent creates, one token


def test_platform_connected_businesses(invora_sandbox: Any) -> None:
    platform = invora_sandbox.create_tenant("Example Platform Co", kind="platform")
    out = ok(run("platform_connected_businesses.py", env_for(invora_sandbox, platform)))
    assert "Dune Coffee Roasters: 2 invoice(s): INV-2026-000001, draft" in out
    assert "Jeddah Book House: 1 invoice(s): INV-2026-000001" in out
    assert "platform's own organization: 0 invoice(s)" in out
    assert "PermissionDenied for a foreign org" in out
    # The tenancy header really carried the connected businesses' org ids.
    orgs = {c.org_id for c in invora_sandbox.calls if c.method.endswith("SimpleInvoiceService/Create")}
    managed = [o for o in invora_sandbox.orgs() if o.parent == platform.org_id]
    assert len(managed) == 2 and {o.org_id for o in managed} <= orgs


def test_usage_metering_uploader_standalone_retries_and_dedups() -> None:
    out = ok(run("usage_metering_uploader.py"))
    assert "UNAVAILABLE, re-sending" in out
    assert "uploaded 250 events in 4 BatchCreate calls" in out
    assert "kept its first copy: True" in out


def test_usage_metering_uploader_from_file(invora_sandbox: Any, tmp_path: Path) -> None:
    tenant = invora_sandbox.create_tenant("Example Metering Co")
    events = tmp_path / "events.jsonl"
    lines = [
        {
            "transaction_id": f"tx-{i}",
            "external_subscription_id": "sub_1",
            "code": "sms",
            "properties": {"n": i},
        }
        for i in range(120)
    ]
    events.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    invora_sandbox.clear_calls()
    out = ok(run("usage_metering_uploader.py", env_for(invora_sandbox, tenant), str(events)))
    assert "uploaded 120 events in 2 BatchCreate calls" in out and "kept its first copy: True" in out
    batch_calls = [c for c in invora_sandbox.calls if c.method.endswith("EventsService/BatchCreate")]
    assert len(batch_calls) == 4 and all(c.org_id == tenant.org_id for c in batch_calls)


@pytest.mark.parametrize(
    "script", sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
)
def test_every_example_has_a_docstring_with_its_command(script: str) -> None:
    text = (EXAMPLES / script).read_text()
    assert text.startswith('"""'), f"{script} must open with a docstring saying what it shows"
