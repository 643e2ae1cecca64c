"""``invora describe``: services, methods, messages and enums from the shipped schema (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INVORA = Path(sys.executable).with_name("invora")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INVORA), *args], env=ENV, input="", capture_output=True, text=True, timeout=60)


def describe_json(name: str) -> dict[str, object]:
    r = run("describe", name, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_no_argument_lists_every_service() -> None:
    from invora import _catalog

    r = run("describe", "-o", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kind"] == "services"
    assert {s["name"] for s in data["services"]} == {s.full_name for s in _catalog.services()}
    text = run("describe")
    assert text.returncode == 0
    assert "simple.invoices" in text.stdout and "invora.billing.plans.v2.PlansService" in text.stdout


@pytest.mark.parametrize(
    "name", ["simple.invoices", "invora.simple.invoices.v1.SimpleInvoiceService", "SimpleInvoiceService"]
)
def test_service_lists_rpcs_with_http_rules_and_scopes(name: str) -> None:
    d = describe_json(name)
    assert d["kind"] == "service" and d["accessor"] == "simple.invoices"
    methods = {m["name"]: m for m in d["methods"]}  # type: ignore[attr-defined]
    assert set(methods) == {"Create", "Get", "Update", "Delete", "Freeze", "List"}
    assert methods["Freeze"]["http"] == ["POST /api/v1/simple/invoices/{key}/freeze body=*"]
    assert methods["Freeze"]["scope"] == "Invora.Simple.Invoices.v1.Modify.Freeze"
    assert methods["List"]["paginated"] is True
    text = run("describe", name).stdout
    assert "GET /api/v1/simple/invoices/{key}" in text and "Invora.Simple.Invoices.v1.Get" in text


def test_method_by_accessor_and_full_name() -> None:
    a = describe_json("simple.invoices.list")
    b = describe_json("invora.simple.invoices.v1.SimpleInvoiceService/List")
    assert a == b
    assert a["kind"] == "method" and a["page"] == {"items": "items", "total_count": True}
    fields = {f["name"]: f for f in a["request"]["fields"]}  # type: ignore[index]
    assert fields["filter"]["type"] == "invora.simple.invoices.v1.ListFilter"
    text = run("describe", "documents.stream_create").stdout
    assert "stream_stream" in text and "gRPC only" in text
    events = run("describe", "billing.events.batch_create").stdout
    assert "safe (events.transaction_id idempotency key)" in events
    freeze = describe_json("documents.freeze")
    assert freeze["retry_safe"] is True and freeze["idempotency_key"] == "request_id"


def test_message_fields_and_behaviour() -> None:
    d = describe_json("invora.simple.invoices.v1.Line")
    fields = {f["name"]: f for f in d["fields"]}  # type: ignore[attr-defined]
    assert fields["unit_price"]["json_name"] == "unitPrice"
    assert fields["unit_price"]["type"] == "kernel.DecimalValue"
    assert fields["description"]["behavior"] == ["REQUIRED"]
    assert fields["tax_amount"]["behavior"] == ["OUTPUT_ONLY"]
    part = describe_json("invora.simple.invoices.v1.ListFilterPart")
    oneofs = {f["name"]: f["oneof"] for f in part["fields"]}  # type: ignore[attr-defined]
    assert oneofs["frozen"] == "type"
    nested = describe_json("invora.simple.invoices.v1.ListFilterPart.Operands")
    assert nested["fields"][0]["label"] == "repeated"  # type: ignore[index]


def test_enum_and_well_known_types() -> None:
    d = describe_json("kernel.SortDirection")
    assert d["kind"] == "enum"
    assert [v["name"] for v in d["values"]] == [  # type: ignore[attr-defined]
        "SORT_DIRECTION_UNSPECIFIED", "SORT_DIRECTION_ASCENDING", "SORT_DIRECTION_DESCENDING",
    ]  # fmt: skip
    assert describe_json("google.type.Date")["kind"] == "message"


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("simple.invoicez", "did you mean: simple.invoices"),
        ("invora.simple.invoices.v1.Invoise", "did you mean: invora.simple.invoices.v1.Invoice"),
        ("simple.invoices.frobnicate", "unknown method"),
        ("nothing.at.all", "nothing named 'nothing.at.all'"),
    ],
)
def test_unknown_names_exit_2_with_suggestions(name: str, needle: str) -> None:
    r = run("describe", name)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
