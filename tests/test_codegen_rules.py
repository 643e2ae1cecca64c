"""The schema-derived rules (codegen/rules.py): names, reads, idempotency keys, pagination."""

from __future__ import annotations

import pathlib

import rules
from google.protobuf import descriptor_pb2

from invora import _catalog

ROOT = pathlib.Path(__file__).resolve().parents[1]
FDP = descriptor_pb2.FieldDescriptorProto


def _msg(name: str, *fields: tuple[str, int, int, str]) -> descriptor_pb2.DescriptorProto:
    """A message with (name, type, label, type_name) fields."""
    m = descriptor_pb2.DescriptorProto(name=name)
    for i, (fname, ftype, label, type_name) in enumerate(fields, 1):
        m.field.add(name=fname, number=i, type=ftype, label=label, type_name=type_name)  # type: ignore[arg-type]
    return m


OPT, REP = FDP.LABEL_OPTIONAL, FDP.LABEL_REPEATED


def test_billing_accessors_are_the_names_users_guess() -> None:
    by_accessor = {s.accessor: s.full_name for s in _catalog.services()}
    for name in [
        "plans",
        "customers",
        "subscriptions",
        "payments",
        "invoices",
        "credit_notes",
        "wallets",
        "coupons",
        "events",
        "metrics",
        "taxes",
        "alerts",
        "accounts",
        "webhook_endpoints",
        "integrations",
        "observability",
        "payment_providers",
    ]:
        assert f"billing.{name}" in by_accessor, name
    assert by_accessor["billing.metrics"] == "invora.billing.metering.v2.BillableMetricsService"
    admin = sorted(a for a in by_accessor if a.startswith("admin."))
    assert all(by_accessor[a].startswith("invora.admin.") for a in admin) and len(admin) == 8
    assert not [a for a in by_accessor if by_accessor[a].startswith("invora.admin.") and a not in admin]


def test_accessor_rule_without_overrides() -> None:
    paths = rules.accessor_paths(
        [("invora.x.v2", "ThingsService"), ("invora.y.v1", "AService"), ("invora.y.v1", "BService")]
    )
    assert paths == {
        "invora.x.v2.ThingsService": "x",
        "invora.y.v1.AService": "y.a",
        "invora.y.v1.BService": "y.b",
    }
    # A namespace and a service never share an attribute.
    clash = rules.accessor_paths([("invora.p.v1", "PService"), ("invora.p.q.v1", "QService")])
    assert clash == {"invora.p.v1.PService": "p_service", "invora.p.q.v1.QService": "p.q"}


def test_reads() -> None:
    assert rules.is_read("List", "post", "Invora.Billing.Plans.v2.List")
    assert rules.is_read("GetEstimate", "post", "Invora.Billing.CreditNotes.v2.Get")
    assert rules.is_read("Download", "get", "Invora.Billing.CreditNotes.v2.Download")
    # A list-shaped RPC without a List name is a read by its scope.
    assert rules.is_read("CustomerInvoices", "post", "Invora.Billing.Invoices.v2.List")
    assert not rules.is_read("Create", "post", "Invora.Billing.Plans.v2.Modify.Create")
    assert not rules.is_read("Listen", "post", None)  # a name merely starting with "List"
    assert not rules.is_read("Terminate", "post", "Invora.Billing.Wallets.v2.Modify.List")
    assert not rules.is_read("ProvisionOrg", "post", "Invora.Admin.Billing.v2.ProvisionOrg")


def test_idempotency_keys() -> None:
    item = _msg("Ev", ("transaction_id", FDP.TYPE_STRING, OPT, ""))
    messages = {".p.Ev": item}
    batch = _msg("Batch", ("events", FDP.TYPE_MESSAGE, REP, ".p.Ev"))
    assert rules.idempotency_key(batch, messages) == ("events.transaction_id", False)
    single = _msg("Create", ("transaction_id", FDP.TYPE_STRING, OPT, ""), ("code", FDP.TYPE_STRING, OPT, ""))
    assert rules.idempotency_key(single, messages) == ("transaction_id", False)
    with_rid = _msg("Freeze", ("key", FDP.TYPE_STRING, OPT, ""), ("request_id", FDP.TYPE_STRING, OPT, ""))
    assert rules.idempotency_key(with_rid, messages) == ("request_id", True)
    # Repeated or non-string fields of that name are no key; the client fills top-level request_id only.
    assert rules.idempotency_key(_msg("R", ("request_id", FDP.TYPE_STRING, REP, "")), messages) is None
    assert rules.idempotency_key(_msg("R", ("transaction_id", FDP.TYPE_INT64, OPT, "")), messages) is None
    nested_rid = {".p.I": _msg("I", ("request_id", FDP.TYPE_STRING, OPT, ""))}
    bulk = _msg("Bulk", ("items", FDP.TYPE_MESSAGE, REP, ".p.I"))
    assert rules.idempotency_key(bulk, nested_rid) is None


def test_idempotency_in_the_catalog() -> None:
    keys = {
        m.full_name: (m.idempotency_key, m.has_request_id)
        for s in _catalog.services()
        for m in s.methods.values()
        if m.idempotency_key
    }
    assert keys["invora.billing.events.v2.EventsService/Create"] == ("transaction_id", False)
    assert keys["invora.billing.events.v2.EventsService/BatchCreate"] == ("events.transaction_id", False)
    assert keys["invora.documents.v2.DocumentsService/Create"] == ("request_id", True)
    assert keys["invora.documents.v2.DocumentsService/Freeze"] == ("request_id", True)
    assert keys["invora.billing.payments.v2.PaymentsService/Create"] == ("request_id", True)
    for kind in ("invoices", "credit_notes", "debit_notes"):
        svc = _catalog.service(f"simple.{kind}")
        assert svc.method("Create").has_request_id and svc.method("Freeze").has_request_id
    # Reads never carry a key (nothing to deduplicate), and no other write is treated as idempotent.
    assert not any(_catalog.method(n).read for n in keys)
    assert len(keys) == 11


def test_pagination_shapes() -> None:
    page_req = _msg("L", ("pagination", FDP.TYPE_MESSAGE, OPT, ".kernel.PaginationInfo"))
    resp = _msg(
        "R",
        ("items", FDP.TYPE_STRING, REP, ""),
        ("total_count", FDP.TYPE_UINT64, OPT, ""),
        ("next_page_cursor", FDP.TYPE_STRING, OPT, ""),
    )
    assert rules.page_shape(True, False, page_req, resp) == {"items": "items", "total_count": True}
    assert rules.page_shape(False, False, page_req, resp) is None  # writes never paginate
    assert rules.page_shape(True, True, page_req, resp) is None  # nor do streams
    token_req = _msg("L", ("page_token", FDP.TYPE_STRING, OPT, ""))
    assert rules.page_shape(True, False, token_req, resp) is None
    customer_invoices = _catalog.method("billing.invoices.customer_invoices")
    assert customer_invoices.read and customer_invoices.page is not None
    for accessor in ("billing.plans.list", "billing.events.list", "billing.subscriptions.list_entitlements"):
        assert _catalog.method(accessor).page is not None, accessor


def test_no_generated_module_outlives_its_proto() -> None:
    """Every generated message module has its .proto: nothing the current build removed remains."""
    protos = {
        p.relative_to(ROOT / "protos").with_suffix("").as_posix() for p in (ROOT / "protos").rglob("*.proto")
    }
    pyout = ROOT / "src" / "invora" / "_proto"
    modules = {p.relative_to(pyout).as_posix()[: -len("_pb2.py")] for p in pyout.rglob("*_pb2.py")}
    assert modules == protos
    assert not (pyout / "invora" / "billing" / "add_ons").exists()
    assert not (ROOT / "protos" / "invora" / "billing" / "entitlements").exists()
