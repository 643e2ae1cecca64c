"""``invora.types`` and ``invora.catalog``: what users import instead of private modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import invora.catalog
from invora import _catalog

ROOT = Path(__file__).resolve().parents[1]


def test_types_are_the_classes_the_client_returns() -> None:
    from invora.types.billing.common import BillingPlan, CurrencyEnum
    from invora.types.billing.plans import CreateRequest
    from invora.types.kernel import DecimalValue
    from invora.types.simple.invoices import Invoice, InvoiceSummary

    assert type(_catalog.method("billing.plans.get").response_class().plan) is BillingPlan
    assert _catalog.method("billing.plans.create").request_class is CreateRequest
    assert type(_catalog.method("simple.invoices.get").response_class().details) is Invoice
    assert type(_catalog.method("simple.invoices.list").response_class().items.add()) is InvoiceSummary
    assert DecimalValue.DESCRIPTOR.full_name == "kernel.DecimalValue"
    assert CurrencyEnum.Value("CURRENCY_ENUM_SAR") > 0


def test_every_request_and_response_type_is_exported() -> None:
    import importlib

    def module_of(full_name: str) -> object:
        segs = [s for s in full_name.split(".")[:-1] if not (s[0] == "v" and s[1:].isdigit())]
        return importlib.import_module("invora.types." + ".".join(segs[1:] if segs[0] == "invora" else segs))

    for m in _catalog.services():
        for info in m.methods.values():
            for cls in (info.request_class, info.response_class):
                full = cls.DESCRIPTOR.full_name
                if "." in full.rsplit(".", 1)[0] and cls.DESCRIPTOR.containing_type is None:
                    assert getattr(module_of(full), cls.DESCRIPTOR.name) is cls, full
    ubl = importlib.import_module("invora.types.ubl.commonaggregatecomponents_2")
    assert "PartyType" in ubl.__all__  # type: ignore[attr-defined]


def test_import_invora_loads_no_types_module() -> None:
    code = "import invora, sys; print([m for m in sys.modules if m.startswith('invora.types')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_catalog_is_public() -> None:
    m = invora.catalog.method("billing.events.batch_create")
    assert isinstance(m, invora.catalog.MethodInfo)
    assert m.idempotency_key == "events.transaction_id" and not m.read
    assert invora.catalog.service("billing.plans").full_name == "invora.billing.plans.v2.PlansService"
    assert len(invora.catalog.services()) == 48


@pytest.mark.slow
def test_user_annotations_type_check(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(
        "import invora\n"
        "from invora.types.billing.common import BillingPlan\n\n"
        "def plan_of(client: invora.Client, plan_id: str) -> BillingPlan:\n"
        "    return client.billing.plans.get(id=plan_id).plan\n\n"
        "def wrong(client: invora.Client) -> BillingPlan:\n"
        "    return client.billing.customers.get(id='c').customer\n"
    )
    (tmp_path / "mypy.ini").write_text(
        f"[mypy]\nstrict = True\nmypy_path = {ROOT / 'src'}\n"
        "[mypy-grpc.*,grpc_status.*,google.rpc.*]\nignore_missing_imports = True\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "mypy.ini", "user.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "user.py:8" in errors[0] and "BillingCustomer" in errors[0], out.stdout
