"""Every RPC of the schema, over gRPC and over REST: it works or answers a mapped status — never a crash."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from invora import _catalog, transcoding
from invora.sandbox import Sandbox
from invora.sandbox.testing import RawCaller

# What an empty or minimal request may legitimately get.
MAPPED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.ALREADY_EXISTS,
}
ALL = [m for s in _catalog.services() for m in s.methods.values()]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=3) as sandbox:
        yield sandbox


def _fill_path_fields(req: Any, tpl: transcoding.PathTemplate) -> None:
    for var in tpl.variables:
        msg = req
        for step in var.field_path[:-1]:
            msg = getattr(msg, step)
        fd = msg.DESCRIPTOR.fields_by_name[var.field_path[-1]]
        if fd.cpp_type == fd.CPPTYPE_STRING:
            setattr(msg, fd.name, "walk-x")
        elif fd.enum_type is not None:
            setattr(msg, fd.name, 1)
        else:
            setattr(msg, fd.name, 1)


def test_catalog_size() -> None:
    assert len(_catalog.services()) == 48 and len(ALL) == 408


def test_every_rpc_over_grpc(sb: Sandbox) -> None:
    codes: Counter[str] = Counter()
    bad = []
    with RawCaller(sb.grpc_target, token=sb.mint_token(sb.tenant)) as raw:
        for m in ALL:
            req = m.request_class()
            try:
                if m.client_streaming:
                    raw.stream(m.full_name, [req])
                else:
                    raw.call(m.full_name, req)
                code = grpc.StatusCode.OK
            except grpc.RpcError as err:
                code = err.code()
                if code not in MAPPED or not err.details():
                    bad.append((m.full_name, code, err.details()))
            codes[code.name] += 1
    assert not bad, bad
    # The generic store serves most of the schema: a regression to "UNIMPLEMENTED everywhere" fails here.
    # Billing's domain handlers answer an empty request INVALID_ARGUMENT (required fields) rather than OK.
    assert codes["OK"] >= 120 and codes["UNIMPLEMENTED"] <= 100, codes


def test_unimplemented_messages_are_clear(sb: Sandbox) -> None:
    with (
        RawCaller(sb.grpc_target, token=sb.mint_token(sb.tenant)) as raw,
        pytest.raises(grpc.RpcError) as exc,
    ):
        raw.call("billing.invoices.download_invoice")
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "InvoicesService/DownloadInvoice is not implemented by the sandbox" in (exc.value.details() or "")


def test_every_rpc_over_rest(sb: Sandbox) -> None:
    router = transcoding.router()
    codes: Counter[int] = Counter()
    bad = []
    token = sb.mint_token(sb.tenant)
    with httpx.Client(base_url=sb.rest_url, headers={"authorization": f"Bearer {token}"}, timeout=10) as http:
        for m in ALL:
            if m.http is None:
                assert m.is_streaming, f"{m.full_name} has no HTTP rule but is unary"
                continue
            req = m.request_class()
            _fill_path_fields(req, transcoding.parse_template(m.http.path))
            verb, path, query, body = transcoding.expand(m.http, req)
            found = router.match(verb, path)
            assert found is not None and found[0].method is m, (
                f"{verb} {path} does not route to {m.full_name}"
            )
            r = http.request(verb, path, params=query, json=body if m.http.body else None)
            codes[r.status_code] += 1
            data = r.json()
            if r.status_code >= 500 and r.status_code != 501:
                bad.append((m.full_name, r.status_code, r.text[:200]))
            elif r.status_code != 200:
                assert isinstance(data.get("code"), int) and data.get("message"), (m.full_name, data)
    assert not bad, bad
    assert codes[200] >= 100, codes


def test_no_rest_route_is_shadowed() -> None:
    """Every RPC with an HTTP rule owns its route: no two rules share a verb and path template."""
    assert transcoding.router().shadowed == {}


def test_generic_crud_billing_plan(sb: Sandbox) -> None:
    """Billing's flat requests and string ids (plans have domain rules on top: see test_sandbox_billing)."""
    t = sb.create_tenant("Billing Co")
    with RawCaller(sb.grpc_target, token=sb.mint_token(t)) as raw:
        plan = raw.call(
            "billing.plans.create",
            name="Pro",
            code="pro",
            amount_cents=1900,
            amount_currency=110,
            interval=1,
        ).plan
        assert plan.id and plan.name == "Pro" and plan.amount_cents == 1900 and plan.HasField("created_at")
        got = raw.call("billing.plans.get", id=plan.id).plan
        assert got == plan
        upd = raw.call("billing.plans.update", id=plan.id, name="Pro+").plan
        assert upd.name == "Pro+" and upd.code == "pro"
        lst = raw.call("billing.plans.list")
        assert lst.total_count == 1 and lst.items[0].name == "Pro+"
        assert raw.call("billing.plans.list", filter={"part": {"with_deleted": True}}).total_count == 1
        assert raw.call("billing.plans.list", filter={"text_search": "pro+"}).total_count == 1
        assert raw.call("billing.plans.list", filter={"text_search": "basic"}).total_count == 0
        raw.call("billing.plans.delete", id=plan.id)
        with pytest.raises(grpc.RpcError) as exc:
            raw.call("billing.plans.get", id=plan.id)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_generic_crud_documents(sb: Sandbox) -> None:
    """Key/stamp/freeze conventions, bulk results, clone, streams — on documents.v2."""
    from invora._catalog import method

    t = sb.create_tenant("Docs Co")
    with RawCaller(sb.grpc_target, token=sb.mint_token(t)) as raw:
        doc = raw.call("documents.create", key="d1").details
        assert doc.id.key == "d1" and doc.id.version == 1 and doc.edit_state == 1 and doc.concurrency_stamp
        with pytest.raises(grpc.RpcError) as exc:
            raw.call("documents.create", key="d1")
        assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as exc:
            raw.call("documents.update", key="d1", concurrency_stamp="stale")
        assert exc.value.code() == grpc.StatusCode.ABORTED
        frozen = raw.call("documents.freeze", key="d1", concurrency_stamp=doc.concurrency_stamp).details
        assert frozen.edit_state == 3 and frozen.HasField("frozen_at")
        with pytest.raises(grpc.RpcError) as exc:
            raw.call("documents.delete", keys=["d1"])
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        clone = raw.call("documents.clone", source_key="d1", new_key="d2").details
        assert clone.id.key == "d2" and clone.edit_state == 1
        bulk = raw.call("documents.bulk_create", items=[{"key": "d3"}, {"key": "d1"}])
        assert bulk.items[0].success_key == "d3" and bulk.items[1].error.code == "ALREADY_EXISTS"
        # Documents' generic field conditions and edit_state filter.
        cls = method("documents.list").request_class
        drafts = raw.call("documents.list", cls(filter={"part": {"edit_state": {"in_values": [1]}}}))
        assert {d.id.key for d in drafts.items} == {"d2", "d3"}
        unary = {"unary_field": {"field_path": "frozen_at", "op": 2}}  # IS_SET
        assert [d.id.key for d in raw.call("documents.list", cls(filter={"part": unary})).items] == ["d1"]
        fld = {"field": {"field_path": "id.key", "op": 8, "value": {"string_value": "d"}}}  # STARTS_WITH
        assert raw.call("documents.list", cls(filter={"part": fld})).total_count == 3
        # Server stream: the initial list; bidi stream: one result per request.
        stream = raw.call("documents.list_stream", method("documents.list_stream").request_class(request={}))
        assert stream[0].initial.total_count == 3
        results = raw.stream(
            "documents.stream_create", [method("documents.stream_create").request_class(item={"key": "d9"})]
        )
        assert results[0].result.success_key == "d9"
