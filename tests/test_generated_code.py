"""The generated Python: reproducible, lazily imported, and every stub usable."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from invora import _catalog

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_make_generate_reproduces_the_committed_output() -> None:
    """Drift check: regenerating from codegen/upstream must not change protos/ or src/invora/_proto."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "codegen" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"stale generated files:\n{result.stdout}\n{result.stderr}"


def test_import_invora_loads_no_schema_modules() -> None:
    code = (
        "import sys, json, invora\n"
        "mods = [m for m in sys.modules if m.endswith(('_pb2', '_pb2_grpc')) and m.startswith('invora.')]\n"
        "print(json.dumps(mods))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert loaded == [], f"import invora loaded generated modules: {loaded}"


def test_first_use_of_a_service_loads_only_its_modules() -> None:
    code = (
        "import sys, json\n"
        "from invora import _catalog\n"
        "_catalog.service('simple.invoices').method('Create').request_class\n"
        "mods = sorted(m for m in sys.modules if m.endswith('_pb2') and m.startswith('invora.'))\n"
        "print(json.dumps(mods))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "invora._proto.invora.simple.invoices.v1.service_pb2" in loaded
    assert not [m for m in loaded if ".documents." in m or ".oasis." in m], loaded


SERVICES = _catalog.services()


def test_catalog_covers_the_whole_schema() -> None:
    assert len(SERVICES) == 48
    assert sum(len(s.methods) for s in SERVICES) == 408
    accessors = [s.accessor for s in SERVICES]
    assert len(set(accessors)) == len(accessors)
    assert "simple.invoices" in accessors and "billing.plans" in accessors and "documents" in accessors


@pytest.mark.parametrize("svc", SERVICES, ids=[s.accessor for s in SERVICES])
def test_every_stub_instantiates_and_resolves_its_types(svc: _catalog.ServiceInfo) -> None:
    grpc_mod = svc.load_grpc()
    stub_cls = getattr(grpc_mod, f"{svc.name}Stub")
    servicer_cls = getattr(grpc_mod, f"{svc.name}Servicer")
    channel = grpc.insecure_channel("127.0.0.1:1")  # never connected: stubs are lazy
    try:
        stub = stub_cls(channel)
        for m in svc.methods.values():
            assert callable(getattr(stub, m.name)), m.full_name
            assert hasattr(servicer_cls, m.name), m.full_name
            req, resp = m.request_class, m.response_class
            assert req.DESCRIPTOR.full_name == m.input_type
            assert resp.DESCRIPTOR.full_name == m.output_type
            # The stub's serializers are bound to the same classes the catalog resolves.
            assert type(req.FromString(req().SerializeToString())) is req
    finally:
        channel.close()


@pytest.mark.parametrize("svc", SERVICES, ids=[s.accessor for s in SERVICES])
def test_every_typed_service_class_exposes_every_method(svc: _catalog.ServiceInfo) -> None:
    mod = importlib.import_module("invora._proto.services." + svc.accessor.replace(".", "__"))
    for cls_name in (svc.name, "Async" + svc.name):
        cls = getattr(mod, cls_name)
        for m in svc.methods.values():
            assert callable(getattr(cls, m.attr)), f"{cls_name}.{m.attr}"


def test_method_lookup_by_every_spelling() -> None:
    m = _catalog.method("invora.simple.invoices.v1.SimpleInvoiceService/Freeze")
    assert _catalog.method("/invora.simple.invoices.v1.SimpleInvoiceService/Freeze") is m
    assert _catalog.method("simple.invoices.freeze") is m
    assert m.http is not None and (m.http.verb, m.http.path, m.http.body) == (
        "post",
        "/api/v1/simple/invoices/{key}/freeze",
        "*",
    )
    assert m.scope == "Invora.Simple.Invoices.v1.Modify.Freeze"
    assert m.has_request_id and not m.read
    with pytest.raises(LookupError, match="no method 'Thaw'"):
        _catalog.method("simple.invoices.Thaw")
    with pytest.raises(LookupError, match="unknown service"):
        _catalog.method("nope.Service/Get")


def test_pagination_and_streaming_are_detected() -> None:
    lst = _catalog.method("simple.invoices.list")
    assert lst.page is not None and lst.page.total_count and lst.read
    docs = _catalog.service("documents")
    assert docs.method("ListStream").server_streaming and docs.method("ListStream").http is None
    assert any(m.client_streaming for s in SERVICES for m in s.methods.values())
    paged = [m for s in SERVICES for m in s.methods.values() if m.page]
    assert len(paged) > 20 and all(m.read for m in paged)


# -- the reconstructed Simple module --------------------------------------------------------------
@pytest.mark.parametrize(
    ("accessor", "path", "scope", "doc"),
    [
        ("simple.invoices", "/api/v1/simple/invoices", "Invora.Simple.Invoices.v1", "Invoice"),
        ("simple.credit_notes", "/api/v1/simple/credit-notes", "Invora.Simple.CreditNotes.v1", "CreditNote"),
        ("simple.debit_notes", "/api/v1/simple/debit-notes", "Invora.Simple.DebitNotes.v1", "DebitNote"),
    ],
)
def test_simple_services_follow_the_documented_shape(accessor: str, path: str, scope: str, doc: str) -> None:
    svc = _catalog.service(accessor)
    rules = {name: (m.http.verb, m.http.path, m.http.body) for name, m in svc.methods.items() if m.http}
    assert rules == {
        "Create": ("post", path, "*"),
        "Get": ("get", path + "/{key}", ""),
        "Update": ("put", path + "/{key}", "*"),
        "Delete": ("post", path + "/delete", "*"),
        "Freeze": ("post", path + "/{key}/freeze", "*"),
        "List": ("post", path + "/list", "*"),
    }
    scopes = {name: m.scope for name, m in svc.methods.items()}
    assert scopes["Get"] == f"{scope}.Get" and scopes["List"] == f"{scope}.List"
    assert scopes["Freeze"] == f"{scope}.Modify.Freeze" and scopes["Create"] == f"{scope}.Modify.Create"

    freeze = svc.method("Freeze").request_class.DESCRIPTOR
    assert [(f.name, f.number) for f in freeze.fields][:2] == [("key", 1), ("concurrency_stamp", 2)]
    create = svc.method("Create").request_class.DESCRIPTOR
    assert (
        create.fields_by_name["freeze_immediately"].type
        == create.fields_by_name["freeze_immediately"].TYPE_BOOL
    )
    for d in (create, freeze):
        rid = d.fields_by_name["request_id"]
        assert rid.has_presence and rid.type == rid.TYPE_STRING
    document = svc.method("Get").response_class.DESCRIPTOR.fields_by_name["details"].message_type
    assert document.name == doc
    assert {"frozen", "regulation_metadata", "concurrency_stamp", "totals"} <= set(document.fields_by_name)
    items = svc.method("List").response_class.DESCRIPTOR.fields_by_name["items"].message_type
    assert items.name == f"{doc}Summary"


def test_simple_list_request_parses_the_documented_json() -> None:
    req_cls = _catalog.method("simple.invoices.list").request_class
    req = json_format.Parse('{"filter":{"textSearch":"INV-2026"},"pagination":{"limit":"20"}}', req_cls())
    assert req.filter.text_search == "INV-2026"
    assert req.pagination.limit.value == 20
    resp_cls = _catalog.method("simple.invoices.list").response_class
    resp = resp_cls(total_count=42, next_page_cursor="abc")
    assert json_format.MessageToDict(resp) == {"totalCount": "42", "nextPageCursor": "abc"}


def test_reconstructed_files_say_so() -> None:
    for kind in ("invoices", "credit_notes", "debit_notes"):
        text = (ROOT / "protos" / "invora" / "simple" / kind / "v1" / "service.proto").read_text()
        assert "RECONSTRUCTED" in text.splitlines()[2]
    cac = ROOT / "protos/oasis/names/specification/ubl/schema/xsd/commonaggregatecomponents_2/models.proto"
    assert "RECONSTRUCTED" in cac.read_text()[:600]
