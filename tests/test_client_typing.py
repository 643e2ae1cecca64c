"""Static typing: the hand-written client passes ``mypy --strict``; user code sees precise generated types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIENT_FILES = [
    "src/invora/__init__.py",
    "src/invora/_client.py",
    "src/invora/_core.py",
    "src/invora/_service.py",
    "src/invora/_target.py",
    "src/invora/auth.py",
    "src/invora/errors.py",
    "src/invora/pagination.py",
    "src/invora/retry.py",
    "src/invora/transport",
]


def _mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_client_code_passes_mypy_strict() -> None:
    out = _mypy(*CLIENT_FILES)  # strict settings come from pyproject.toml
    assert out.returncode == 0, out.stdout + out.stderr


USER_CODE = """
import invora

async def use_async(client: invora.AsyncClient) -> None:
    frozen = await client.simple.invoices.freeze(key="INV-1", concurrency_stamp="s")
    reveal_type(frozen)
    async for summary in client.simple.invoices.list(filter={"text_search": "acme"}):
        reveal_type(summary)

def use(client: invora.Client) -> str:
    resp = client.with_org("org-2").simple.invoices.get(key="INV-1", timeout=5, retry=None)
    reveal_type(resp)
    pager = client.billing.plans.list(page_size=5)
    reveal_type(pager)
    client.simple.invoices.get(key=1)
    return resp.details.key
"""


@pytest.mark.slow
def test_user_code_sees_generated_types(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(USER_CODE)
    # No mypy_path: mypy finds `invora` where a user's would, in the environment (an editable install or
    # the wheel), through its py.typed marker.
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n[mypy-grpc.*,grpc_status.*,google.rpc.*]\nignore_missing_imports = True\n"
    )
    out = _mypy("--config-file", "mypy.ini", "user.py", cwd=tmp_path)
    text = out.stdout
    assert 'Revealed type is "invora._proto.invora.simple.invoices.v1.service_pb2.FreezeResponse"' in text, (
        text
    )
    assert 'Revealed type is "invora._proto.invora.simple.invoices.v1.service_pb2.InvoiceSummary"' in text, (
        text
    )
    assert 'Revealed type is "invora._proto.invora.simple.invoices.v1.service_pb2.GetResponse"' in text, text
    assert (
        "invora.pagination.Pager[invora._proto.invora.billing.common.v2.models_pb2.BillingPlan, " in text
    ), text
    # the one deliberate mistake is caught, and nothing else is reported
    errors = [line for line in text.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'Argument "key"' in errors[0], text
