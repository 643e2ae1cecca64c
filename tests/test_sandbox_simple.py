"""Simple documents end to end against a running sandbox, over plain grpcio stubs and REST."""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from invora._catalog import method
from invora.decimal import from_decimal, to_decimal
from invora.sandbox import Sandbox, Tenant
from invora.sandbox.domain.simple import decode_tlv
from invora.sandbox.testing import RawCaller

INV = "simple.invoices"
CN = "simple.credit_notes"


@pytest.fixture
def tenant(invora_sandbox: Sandbox) -> Tenant:
    return invora_sandbox.create_tenant(f"Shop {uuid.uuid4().hex[:6]}")


@pytest.fixture
def raw(invora_sandbox: Sandbox, tenant: Tenant) -> Any:
    with RawCaller(invora_sandbox.grpc_target, token=invora_sandbox.mint_token(tenant)) as r:
        yield r


def changes(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "buyer": {"name": "Najd Foods", "vat_number": "300000000000003"},
        "currency_code": "SAR",
        "issue_date": {"year": 2026, "month": 3, "day": 1},
        "lines": [
            {
                "description": "Consulting",
                "quantity": from_decimal("3"),
                "unit_price": from_decimal("100.10"),
                "tax_rate": from_decimal("15"),
            },
            {
                "description": "Licence",
                "quantity": from_decimal("1"),
                "unit_price": from_decimal("49.99"),
                "tax_rate": from_decimal("15"),
                "discount_amount": from_decimal("4.99"),
            },
        ],
    }
    base.update(kw)
    return base


def create(raw: RawCaller, svc: str = INV, **kw: Any) -> Any:
    req = method(f"{svc}.create").request_class(changes=changes(**kw.pop("changes", {})), **kw)
    return raw.call(f"{svc}.create", req).details


def status_of(err: grpc.RpcError) -> status_pb2.Status:
    for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no grpc-status-details-bin trailer")


def details_of(err: grpc.RpcError, cls: Any) -> list[Any]:
    out = []
    for anyd in status_of(err).details:
        if anyd.Is(cls.DESCRIPTOR):
            d = cls()
            anyd.Unpack(d)
            out.append(d)
    return out


def reason_of(err: grpc.RpcError) -> str:
    infos = details_of(err, error_details_pb2.ErrorInfo)
    assert infos, "no ErrorInfo detail"
    assert infos[0].domain == "invora.app"
    return str(infos[0].reason)


def test_totals_are_exact_decimals(raw: RawCaller) -> None:
    doc = create(raw)
    assert not doc.frozen and doc.sequence_number == 0 and doc.number == ""
    assert doc.key and doc.concurrency_stamp
    # 3 × 100.10 = 300.30; 49.99 − 4.99 = 45.00; tax 15 % each: 45.05 (45.045 rounded half-up) + 6.75.
    assert [to_decimal(line.line_extension_amount) for line in doc.lines] == [
        Decimal("300.30"),
        Decimal("45"),
    ]
    assert [to_decimal(line.tax_amount) for line in doc.lines] == [Decimal("45.05"), Decimal("6.75")]
    t = doc.totals
    assert to_decimal(t.line_extension_amount) == Decimal("345.30")
    assert to_decimal(t.discount_amount) == Decimal("4.99")
    assert to_decimal(t.tax_amount) == Decimal("51.80")
    assert to_decimal(t.payable_amount) == Decimal("397.10")
    assert len(t.tax_subtotals) == 1 and to_decimal(t.tax_subtotals[0].taxable_amount) == Decimal("345.30")
    assert doc.seller.name and doc.seller.address.country_code == "SA"
    assert doc.lines[0].unit_code == "EA"


def test_draft_lifecycle(invora_sandbox: Sandbox, raw: RawCaller, tenant: Tenant) -> None:
    doc = create(raw)
    # Update with a mask: only the note changes, the lines stay.
    upd = method("simple.invoices.update").request_class(
        key=doc.key, concurrency_stamp=doc.concurrency_stamp, changes={"note": "net 30"}
    )
    upd.mask.paths.append("note")
    updated = raw.call("simple.invoices.update", upd).details
    assert updated.note == "net 30" and len(updated.lines) == 2
    assert updated.concurrency_stamp != doc.concurrency_stamp

    # The old stamp is stale now.
    stale = method("simple.invoices.update").request_class(
        key=doc.key, concurrency_stamp=doc.concurrency_stamp, changes={"note": "x"}
    )
    stale.mask.paths.append("note")
    with pytest.raises(grpc.RpcError) as exc:
        raw.call("simple.invoices.update", stale)
    assert exc.value.code() == grpc.StatusCode.ABORTED
    assert reason_of(exc.value) == "CONCURRENCY_STAMP_MISMATCH"

    # Freeze: number, sequence, regulation metadata.
    frozen = raw.call(
        "simple.invoices.freeze", key=doc.key, concurrency_stamp=updated.concurrency_stamp
    ).details
    assert frozen.frozen and frozen.sequence_number == 1
    assert frozen.number == "INV-2026-000001"
    rm = frozen.regulation_metadata
    assert rm.authority == "ZATCA" and rm.status == 3  # SUBMISSION_STATUS_ACCEPTED
    assert rm.authority_reference and rm.signed_artifact_id and rm.document_hash
    tlv = decode_tlv(rm.qr_code)
    assert tlv[1] == tenant.name and tlv[4] == "397.1" and tlv[5] == "51.8"
    assert base64.b64decode(rm.document_hash)

    # Frozen documents are immutable.
    for call, req in (
        ("simple.invoices.update", {"key": doc.key, "concurrency_stamp": frozen.concurrency_stamp}),
        ("simple.invoices.delete", {"keys": [doc.key]}),
        ("simple.invoices.freeze", {"key": doc.key, "concurrency_stamp": frozen.concurrency_stamp}),
    ):
        with pytest.raises(grpc.RpcError) as exc:
            raw.call(call, **req)
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION, call

    # The next frozen invoice gets the next number: gapless per organization.
    second = create(raw, freeze_immediately=True)
    assert second.sequence_number == 2 and second.number == "INV-2026-000002"

    # A credit note must reference a frozen invoice of the same organization.
    note = create(raw, CN, changes={"billing_reference": {"invoice_key": doc.key}, "reason": "discount"})
    assert note.billing_reference.invoice_number == "INV-2026-000001"
    note = raw.call(
        "simple.credit_notes.freeze", key=note.key, concurrency_stamp=note.concurrency_stamp
    ).details
    assert note.number == "CN-2026-000001"

    draft = create(raw)
    with pytest.raises(grpc.RpcError) as exc:
        create(raw, CN, changes={"billing_reference": {"invoice_key": draft.key}})
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as exc:
        create(raw, CN, changes={"billing_reference": {"invoice_key": "missing"}})
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    # Another organization's invoice is invisible.
    other = invora_sandbox.create_tenant("Other")
    with RawCaller(invora_sandbox.grpc_target, token=invora_sandbox.mint_token(other)) as raw2:
        with pytest.raises(grpc.RpcError) as exc:
            create(raw2, CN, changes={"billing_reference": {"invoice_key": doc.key}})
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as exc:
            raw2.call("simple.invoices.get", key=doc.key)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

    # Drafts can be deleted.
    raw.call("simple.invoices.delete", keys=[draft.key])
    with pytest.raises(grpc.RpcError) as exc:
        raw.call("simple.invoices.get", key=draft.key)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_client_key_and_collision(raw: RawCaller) -> None:
    doc = create(raw, key="my-key-1")
    assert doc.key == "my-key-1"
    with pytest.raises(grpc.RpcError) as exc:
        create(raw, key="my-key-1")
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_request_id_dedup(invora_sandbox: Sandbox, raw: RawCaller, tenant: Tenant) -> None:
    rid = str(uuid.uuid4())
    a = create(raw, request_id=rid)
    b = create(raw, request_id=rid)
    assert a.key == b.key and a == b
    listing = raw.call("simple.invoices.list")
    assert listing.total_count == 1
    # Freeze with a request id: the repeat answers the first response instead of FAILED_PRECONDITION.
    fid = str(uuid.uuid4())
    f1 = raw.call("simple.invoices.freeze", key=a.key, concurrency_stamp=a.concurrency_stamp, request_id=fid)
    f2 = raw.call("simple.invoices.freeze", key=a.key, concurrency_stamp=a.concurrency_stamp, request_id=fid)
    assert f1 == f2 and f1.details.sequence_number == 1
    # Also over REST, with the same request id as the gRPC create.
    r = httpx.post(
        f"{invora_sandbox.rest_url}/api/v1/simple/invoices",
        headers={"Authorization": f"Bearer {invora_sandbox.mint_token(tenant)}"},
        json={"changes": {"buyer": {"name": "x"}, "lines": []}, "requestId": rid},
    )
    assert r.status_code == 200, r.text
    assert r.json()["details"]["key"] == a.key


def test_validation_details(raw: RawCaller) -> None:
    from invora._proto.invora.documents.v2 import models_pb2

    bad = changes(buyer={"name": ""})
    bad["lines"][0]["quantity"] = from_decimal("-2")
    req = method("simple.invoices.create").request_class(changes=bad)
    with pytest.raises(grpc.RpcError) as exc:
        raw.call("simple.invoices.create", req)
    err = exc.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err) == "VALIDATION_FAILED"
    violations = details_of(err, error_details_pb2.BadRequest)[0].field_violations
    fields = {v.field for v in violations}
    assert {"changes.buyer.name", "changes.lines[0].quantity"} <= fields
    verrs = details_of(err, models_pb2.ValidationError)
    assert {(v.field, v.code) for v in verrs} >= {
        ("changes.buyer.name", "BUYER_NAME_REQUIRED"),
        ("changes.lines[0].quantity", "NEGATIVE_QUANTITY"),
    }
    assert all(v.severity == models_pb2.VALIDATION_SEVERITY_ERROR for v in verrs)

    with pytest.raises(grpc.RpcError) as exc:
        create(raw, changes={"lines": []})
    assert {v.code for v in details_of(exc.value, models_pb2.ValidationError)} == {"LINES_REQUIRED"}
    with pytest.raises(grpc.RpcError) as exc:
        create(raw, CN)  # no billing reference
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_filters_sort_and_cursors(raw: RawCaller) -> None:
    docs = []
    for i in range(7):
        d = create(
            raw,
            freeze_immediately=i % 2 == 0,
            changes={
                "issue_date": {"year": 2026, "month": 1 + i, "day": 10},
                "buyer": {"name": f"Buyer {i}", "vat_number": f"30000000000000{i}"},
                "note": "special" if i == 3 else "",
            },
        )
        docs.append(d)
    lst = "simple.invoices.list"
    cls = method(lst).request_class
    assert raw.call(lst).total_count == 7
    assert raw.call(lst, cls(filter={"part": {"frozen": True}})).total_count == 4
    assert raw.call(lst, cls(filter={"text_search": "special"})).items[0].key == docs[3].key
    assert raw.call(lst, cls(filter={"text_search": "INV-2026-000002"})).items[0].key == docs[2].key
    keys = {"in_values": [docs[1].key, docs[5].key]}
    assert {i.key for i in raw.call(lst, cls(filter={"part": {"key": keys}})).items} == {
        docs[1].key,
        docs[5].key,
    }
    date_range = {
        "range": {
            "from_inclusive": {"year": 2026, "month": 3, "day": 1},
            "to_exclusive": {"year": 2026, "month": 5, "day": 1},
        }
    }
    got = raw.call(lst, cls(filter={"part": {"issue_date": date_range}}))
    assert [i.key for i in got.items] == [docs[2].key, docs[3].key]
    # and / or / not
    both = {"and": {"operands": [{"frozen": True}, {"issue_date": date_range}]}}
    assert [i.key for i in raw.call(lst, cls(filter={"part": both})).items] == [docs[2].key]
    either = {
        "or": {
            "operands": [
                {"key": {"in_values": [docs[0].key]}},
                {"buyer_vat_number": {"in_values": ["300000000000006"]}},
            ]
        }
    }
    assert {i.key for i in raw.call(lst, cls(filter={"part": either})).items} == {docs[0].key, docs[6].key}
    assert raw.call(lst, cls(filter={"part": {"not": {"frozen": True}}})).total_count == 3
    # Sort by issue date descending.
    desc = cls(sort={"rules": [{"issue_date": 2}]})
    assert [i.key for i in raw.call(lst, desc).items] == [d.key for d in reversed(docs)]
    # Summaries carry the computed amounts and the buyer name.
    s = raw.call(lst, cls(filter={"part": {"key": {"in_values": [docs[0].key]}}})).items[0]
    assert (
        s.buyer_name == "Buyer 0"
        and to_decimal(s.payable_amount) == Decimal("397.10")
        and s.regulation_status == 3
    )

    # Cursor pagination walks every item once, in order.
    seen, cursor = [], None
    pages = 0
    while True:
        req = cls(sort={"rules": [{"issue_date": 1}]}, pagination={"limit": {"value": 3}})
        if cursor:
            req.pagination.cursor = cursor
        page = raw.call(lst, req)
        pages += 1
        assert page.total_count == 7
        seen.extend(i.key for i in page.items)
        if not page.HasField("next_page_cursor") or not page.next_page_cursor:
            break
        cursor = page.next_page_cursor
    assert seen == [d.key for d in docs] and pages == 3
    # skip
    assert [i.key for i in raw.call(lst, cls(pagination={"skip": 5})).items] == [docs[5].key, docs[6].key]

    first = raw.call(lst, cls(pagination={"limit": {"value": 2}}))
    good = first.next_page_cursor
    # A tampered cursor (one character changed) is refused with OUT_OF_RANGE naming the cursor.
    head, _, sig = good.partition(".")
    flipped = head[:-2] + ("A" if head[-2] != "A" else "B") + head[-1] + "." + sig
    for bad in (flipped, good + "x", "garbage"):
        with pytest.raises(grpc.RpcError) as exc:
            raw.call(lst, cls(pagination={"limit": {"value": 2}, "cursor": bad}))
        assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "cursor" in (exc.value.details() or "")
    # A cursor issued for another query is refused too.
    with pytest.raises(grpc.RpcError) as exc:
        raw.call(
            lst, cls(filter={"text_search": "Buyer"}, pagination={"limit": {"value": 2}, "cursor": good})
        )
    assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE
    # Page size above the maximum.
    with pytest.raises(grpc.RpcError) as exc:
        raw.call(lst, cls(pagination={"limit": {"value": 5000}}))
    assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_foreign_cursor_refused(invora_sandbox: Sandbox, raw: RawCaller) -> None:
    for _ in range(3):
        create(raw)
    cls = method("simple.invoices.list").request_class
    cursor = raw.call("simple.invoices.list", cls(pagination={"limit": {"value": 1}})).next_page_cursor
    other = invora_sandbox.create_tenant("Foreign")
    with (
        RawCaller(invora_sandbox.grpc_target, token=invora_sandbox.mint_token(other)) as raw2,
        pytest.raises(grpc.RpcError) as exc,
    ):
        raw2.call("simple.invoices.list", cls(pagination={"limit": {"value": 1}, "cursor": cursor}))
    assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "another list or organization" in (exc.value.details() or "")


def test_expired_cursor(invora_sandbox: Sandbox, raw: RawCaller, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(2):
        create(raw)
    cls = method("simple.invoices.list").request_class
    monkeypatch.setattr(invora_sandbox.cursors, "ttl", -1.0)
    cursor = raw.call("simple.invoices.list", cls(pagination={"limit": {"value": 1}})).next_page_cursor
    with pytest.raises(grpc.RpcError) as exc:
        raw.call("simple.invoices.list", cls(pagination={"limit": {"value": 1}, "cursor": cursor}))
    assert exc.value.code() == grpc.StatusCode.OUT_OF_RANGE and "expired" in (exc.value.details() or "")


def test_documented_rest_list_request() -> None:
    with Sandbox(seed=25) as sb:
        token = sb.mint_token(sb.tenant)
        r = httpx.post(
            f"{sb.rest_url}/api/v1/simple/invoices/list",
            headers={"Authorization": f"Bearer {token}", "X-Target-Org-Id": sb.org_id},
            json={"filter": {"textSearch": "INV-2026"}, "pagination": {"limit": "20"}},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) == 9  # every third of 25 seeded invoices is frozen (has a number)
        assert body["totalCount"] == "9"
        assert "nextPageCursor" not in body
        assert all(i["number"].startswith("INV-2026-") for i in body["items"])
        # A page limit below the total yields a cursor, usable as pagination.cursor.
        r2 = httpx.post(
            f"{sb.rest_url}/api/v1/simple/invoices/list",
            headers={"Authorization": f"Bearer {token}"},
            json={"pagination": {"limit": "20"}},
        )
        page1 = r2.json()
        assert page1["totalCount"] == "25" and isinstance(page1["nextPageCursor"], str)
        r3 = httpx.post(
            f"{sb.rest_url}/api/v1/simple/invoices/list",
            headers={"Authorization": f"Bearer {token}"},
            json={"pagination": {"limit": "20", "cursor": page1["nextPageCursor"]}},
        )
        assert len(r3.json()["items"]) == 5
        # REST GET by key, camelCase JSON with int64 as strings and enums by name.
        key = body["items"][0]["key"]
        g = httpx.get(
            f"{sb.rest_url}/api/v1/simple/invoices/{key}", headers={"Authorization": f"Bearer {token}"}
        )
        d = g.json()["details"]
        assert d["frozen"] is True and d["sequenceNumber"] == "1"
        assert d["regulationMetadata"]["status"] == "SUBMISSION_STATUS_ACCEPTED"
        assert d["totals"]["payableAmount"]["units"] == "172"


def test_rest_errors_are_status_json(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    h = {"Authorization": f"Bearer {invora_sandbox.mint_token(tenant)}"}
    url = invora_sandbox.rest_url
    r = httpx.get(f"{url}/api/v1/simple/invoices/nope", headers=h)
    assert r.status_code == 404
    body = r.json()
    assert body["code"] == 5 and "nope" in body["message"]
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    # Validation over REST: 400 with BadRequest and ValidationError details.
    r = httpx.post(f"{url}/api/v1/simple/invoices", headers=h, json={"changes": {"lines": []}})
    assert r.status_code == 400
    types = {d["@type"] for d in r.json()["details"]}
    assert "type.googleapis.com/google.rpc.BadRequest" in types
    assert "type.googleapis.com/invora.documents.v2.ValidationError" in types
    # Unknown JSON field: INVALID_ARGUMENT naming it.
    r = httpx.post(f"{url}/api/v1/simple/invoices/list", headers=h, json={"bogusField": 1})
    assert r.status_code == 400 and "bogusField" in r.json()["message"]
    # Unknown route.
    r = httpx.get(f"{url}/api/v1/nothing-here", headers=h)
    assert r.status_code == 404 and r.json()["code"] == 5
