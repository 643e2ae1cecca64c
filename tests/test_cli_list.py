"""``invora list``: auto-pagination, --limit/--page-size, filters, sort and the three output formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INVORA = Path(sys.executable).with_name("invora")
BUYERS = ["Al Noor Trading", "Delta Supplies", "Najd Foods", "Red Sea Logistics", "Oasis Tech", "Najd Dates"]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INVORA), *args], env=env, input="", capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def setup(invora_sandbox: Any) -> tuple[dict[str, str], list[Any]]:
    """A tenant with six invoices (every other one frozen, issue dates 2026-01-01..06, EUR for the last)."""
    import invora

    tenant = invora_sandbox.create_tenant("CLI List Co")
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, invora_sandbox.token_url)
    made = []
    with invora.Client(invora_sandbox.grpc_target, credentials=creds) as client:
        for i, buyer in enumerate(BUYERS):
            changes = {
                "currency_code": "EUR" if i == 5 else "SAR",
                "issue_date": {"year": 2026, "month": 1, "day": i + 1},
                "buyer": {"name": buyer},
                "lines": [
                    {"description": "item", "quantity": {"units": 1}, "unit_price": {"units": 10 * (i + 1)}}
                ],
            }
            made.append(client.simple.invoices.create(changes=changes, freeze_immediately=i % 2 == 0).details)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    env.update(
        INVORA_TARGET=invora_sandbox.grpc_target,
        INVORA_TOKEN_URL=invora_sandbox.token_url,
        INVORA_CLIENT_ID=tenant.client_id,
        INVORA_CLIENT_SECRET=tenant.client_secret,
    )
    return env, made


def test_json_array_follows_every_page(setup: Any, invora_sandbox: Any) -> None:
    env, made = setup
    invora_sandbox.clear_calls()
    r = run(env, "list", "simple.invoices", "--page-size", "2")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert sorted(i["key"] for i in items) == sorted(m.key for m in made)
    pages = [c for c in invora_sandbox.calls if c.method.endswith("SimpleInvoiceService/List")]
    assert len(pages) == 3  # 6 items, 2 per page, cursors followed


def test_limit_stops_early(setup: Any) -> None:
    env, _ = setup
    r = run(env, "list", "simple.invoices.list", "--limit", "4", "--page-size", "3", "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and all(json.loads(x)["key"] for x in lines)
    # Compact, as `invora call -o jsonl` prints.
    assert lines == [json.dumps(json.loads(x), separators=(",", ":"), ensure_ascii=False) for x in lines]


def test_table_output(setup: Any) -> None:
    env, made = setup
    r = run(
        env,
        "list",
        "simple.invoices",
        "-o",
        "table",
        "--columns",
        "key,number,buyer_name,frozen,payableAmount,issue_date",
    )
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["key", "number", "buyer_name", "frozen", "payable_amount", "issue_date"]
    assert len(rows) == len(made)
    frozen_row = next(row for row in rows if made[0].key in row)
    assert "INV-2026-" in frozen_row and "yes" in frozen_row and "2026-01-01" in frozen_row
    assert " 10 " in frozen_row + " "  # decimals rendered as numbers, not {units, nanos}
    default = run(env, "list", "simple.invoices", "-o", "table")
    assert default.returncode == 0 and "regulation_status" in default.stdout.splitlines()[0]
    assert "ACCEPTED" in default.stdout  # enum printed without its type prefix


def keys(r: subprocess.CompletedProcess[str]) -> list[str]:
    assert r.returncode == 0, r.stderr
    return sorted(item["key"] for item in json.loads(r.stdout))


def test_filter_text_typed_json_and_combined(setup: Any) -> None:
    env, made = setup
    najd = run(env, "list", "simple.invoices", "--filter", "text=Najd")
    assert keys(najd) == sorted([made[2].key, made[5].key])
    frozen = run(env, "list", "simple.invoices", "--filter", "frozen=true")
    assert keys(frozen) == sorted(m.key for m in made if m.frozen)
    both = run(env, "list", "simple.invoices", "--filter", "frozen=true", "--filter", "text=Najd")
    assert keys(both) == [made[2].key]
    eur = run(env, "list", "simple.invoices", "--filter", "currency_code=EUR")
    assert keys(eur) == [made[5].key]
    dates = run(env, "list", "simple.invoices", "--filter", "issue_date=2026-01-02..2026-01-04")
    assert keys(dates) == sorted([made[1].key, made[2].key])
    raw = run(env, "list", "simple.invoices", "--filter", '{"part": {"not": {"frozen": true}}}')
    assert keys(raw) == sorted(m.key for m in made if not m.frozen)
    mixed = run(
        env,
        "list",
        "simple.invoices",
        "--filter",
        '{"part": {"not": {"frozen": true}}}',
        "--filter",
        "currency_code=EUR",
    )
    assert keys(mixed) == [made[5].key]  # the JSON part and the typed condition, combined with AND


def test_sort(setup: Any) -> None:
    env, made = setup
    r = run(env, "list", "simple.invoices", "--sort", "issue_date:desc", "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["key"] for x in r.stdout.splitlines()] == [m.key for m in reversed(made)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["simple.invoices.get"], "is not a paginated method"),
        (["simple.invoices", "--filter", "nope=1"], "has no condition 'nope'"),
        (["simple.invoices", "--filter", "frozen=maybe"], "expected true or false"),
        (["simple.invoices", "--filter", "issue_date=yesterday"], "dates are YYYY-MM-DD"),
        (["simple.invoices", "--filter", "{bad json"], "--filter"),
        (["simple.invoices", "--filter", "justtext"], "expected text=WORDS"),
        (["simple.invoices", "--sort", "buyer:desc"], "cannot sort by 'buyer'"),
        (["simple.invoices", "--sort", "issue_date:sideways"], "direction is asc or desc"),
        (["simple.invoices", "--limit", "0"], "must be at least 1"),
        (["simple.invoices", "-o", "table", "--columns", "nope"], "has no field 'nope'"),
        (["simple.invoices", "--columns", "key"], "--columns applies to --output table"),
    ],
)
def test_list_usage_errors(setup: Any, args: list[str], needle: str) -> None:
    env, _ = setup
    r = run(env, "list", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_output_into_a_closed_pipe_stops_quietly(setup: Any) -> None:
    env, _ = setup
    r = subprocess.run(
        ["bash", "-c", f"'{INVORA}' list simple.invoices --page-size 1 -o jsonl | head -1; echo \"rc=${{PIPESTATUS[0]}}\""],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = r.stdout.splitlines()
    assert json.loads(lines[0])["key"] and lines[-1] == "rc=0"
    assert r.stderr == ""
