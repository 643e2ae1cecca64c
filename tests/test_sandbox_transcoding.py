"""``invora.transcoding`` (shared by the REST transport and the sandbox) and ``invora.decimal``."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invora import transcoding
from invora._catalog import HttpRule, method
from invora.decimal import DecimalValue, from_decimal, to_decimal
from invora.transcoding import TranscodingError, decode, expand, parse_template

# -- templates ------------------------------------------------------------------------------------------


def test_parse_and_match_simple_variable() -> None:
    t = parse_template("/api/v1/simple/invoices/{key}")
    assert t.match("/api/v1/simple/invoices/abc") == {"key": "abc"}
    assert t.match("/api/v1/simple/invoices/a%2Fb") == {"key": "a/b"}
    assert t.match("/api/v1/simple/invoices/abc/freeze") is None
    assert t.match("/api/v1/simple/invoices/") is None
    assert t.expand({"key": "a/b c"}) == "/api/v1/simple/invoices/a%2Fb%20c"


def test_nested_field_path_and_custom_verb() -> None:
    t = parse_template("/api/v2/billing/anrok-integrations/{input.id}")
    assert [v.field_path for v in t.variables] == [("input", "id")]
    assert t.match("/api/v2/billing/anrok-integrations/42") == {"input.id": "42"}
    v = parse_template("/api/v2/billing/events:batchCreate")
    assert v.verb == "batchCreate"
    assert v.match("/api/v2/billing/events:batchCreate") == {}
    assert v.match("/api/v2/billing/events") is None
    assert parse_template("/api/v2/billing/events").match("/api/v2/billing/events:batchCreate") is None
    assert v.expand({}) == "/api/v2/billing/events:batchCreate"


def test_multi_segment_variables() -> None:
    t = parse_template("/v1/{name=projects/*/docs/**}:get")
    assert t.match("/v1/projects/p1/docs/a/b/c:get") == {"name": "projects/p1/docs/a/b/c"}
    assert t.match("/v1/projects/p1/other/a:get") is None
    assert t.expand({"name": "projects/p 1/docs/x/y"}) == "/v1/projects/p%201/docs/x/y:get"
    u = parse_template("/v1/{parent=orgs/*}/items/{id}")
    assert u.match("/v1/orgs/o1/items/i9") == {"parent": "orgs/o1", "id": "i9"}
    assert u.match("/v1/orgs/o1/x/items/i9") is None


@pytest.mark.parametrize("bad", ["api/x", "/x/{unclosed", "/x/{a b}", "/x/pre{key}"])
def test_bad_templates(bad: str) -> None:
    with pytest.raises(TranscodingError):
        parse_template(bad)


@given(st.text(min_size=1, max_size=30))
def test_expand_match_roundtrip(value: str) -> None:
    t = parse_template("/api/v1/simple/invoices/{key}/freeze")
    assert t.match(t.expand({"key": value})) == {"key": value}


# -- routing --------------------------------------------------------------------------------------------


def test_router_prefers_literals_and_separates_verbs() -> None:
    r = transcoding.router()
    route, b = r.match("POST", "/api/v1/simple/invoices/list")  # type: ignore[misc]
    assert route.method.full_name.endswith("SimpleInvoiceService/List") and b == {}
    route, b = r.match("POST", "/api/v1/simple/invoices/k1/freeze")  # type: ignore[misc]
    assert route.method.name == "Freeze" and b == {"key": "k1"}
    route, _ = r.match("PUT", "/api/v1/simple/invoices/k1")  # type: ignore[misc]
    assert route.method.name == "Update"
    assert r.match("DELETE", "/api/v1/simple/invoices/k1") is None
    assert "GET" in r.allowed_verbs("/api/v1/simple/invoices/k1")
    route, _ = r.match("POST", "/api/billing/v2/events/batch-create")  # type: ignore[misc]
    assert route.method.name == "BatchCreate"
    route, b = r.match("GET", "/api/billing/v2/events/e1")  # type: ignore[misc]
    assert route.method.name == "Get" and b == {"id": "e1"}
    assert r.match("POST", "/api/v2/billing/events:batchCreate") is None  # the 1.0.0 route is gone


# -- request decode / encode ----------------------------------------------------------------------------


def test_decode_body_star_path_and_unknown_fields() -> None:
    m = method("simple.invoices.update")
    assert m.http is not None
    req = decode(
        m.http,
        {"key": "k1"},
        [],
        b'{"concurrencyStamp": "s", "mask": "note,lines", "changes": {"note": "hi"}}',
        m.request_class,
    )
    assert req.key == "k1" and req.concurrency_stamp == "s" and list(req.mask.paths) == ["note", "lines"]  # type: ignore[attr-defined]
    with pytest.raises(TranscodingError) as exc:
        decode(m.http, {"key": "k"}, [], b'{"nope": 1}', m.request_class)
    assert exc.value.field == "nope" and "nope" in str(exc.value)
    with pytest.raises(TranscodingError):
        decode(m.http, {"key": "k"}, [], b"{not json", m.request_class)


def test_query_parameters_nested_repeated_and_wkt() -> None:
    m = method("simple.invoices.get")
    assert m.http is not None
    req = decode(m.http, {"key": "k"}, [("mask", "key,number")], None, m.request_class)
    assert list(req.mask.paths) == ["key", "number"]  # type: ignore[attr-defined]
    lm = method("billing.plans.list")  # GET with everything in the query
    assert lm.http is not None
    q = [
        ("pagination.limit", "20"),
        ("pagination.cursor", "abc"),
        ("filter.textSearch", "pro"),
        ("readMask", "id,name"),
        ("view", "VIEW_BASIC"),
    ]
    req = decode(lm.http, {}, q, None, lm.request_class)
    assert req.pagination.limit.value == 20 and req.pagination.cursor == "abc"  # type: ignore[attr-defined]
    assert req.filter.text_search == "pro" and list(req.read_mask.paths) == ["id", "name"]  # type: ignore[attr-defined]
    with pytest.raises(TranscodingError) as exc:
        decode(lm.http, {}, [("pagination.bogus", "1")], None, lm.request_class)
    assert exc.value.field == "pagination.bogus"
    with pytest.raises(TranscodingError):
        decode(lm.http, {}, [("pagination.limit", "lots")], None, lm.request_class)
    # Repeated scalars: repeated keys.
    rule = HttpRule(verb="get", path="/x", body="", response_body="")
    dm = method("regulations.regulation_info.list_document_artifacts")
    req = decode(
        rule,
        {},
        [("documentKey", "d"), ("regulationIds", "a"), ("regulation_ids", "b")],
        None,
        dm.request_class,
    )
    assert list(req.regulation_ids) == ["a", "b"]  # type: ignore[attr-defined]


def test_expand_roundtrips_through_decode() -> None:
    # body "*" with a path variable: the bound field leaves the body.
    m = method("simple.invoices.freeze")
    req = m.request_class(key="k/1", concurrency_stamp="s", request_id="r")
    assert m.http is not None
    verb, path, query, body = expand(m.http, req)
    assert (verb, path, query) == ("POST", "/api/v1/simple/invoices/k%2F1/freeze", [])
    assert body == {"concurrencyStamp": "s", "requestId": "r"}
    found = transcoding.router().match(verb, path)
    assert found is not None
    assert decode(found[0].rule, found[1], query, __import__("json").dumps(body), m.request_class) == req
    # GET: everything not in the path goes to the query, nested with dots, WKTs as strings.
    lm = method("admin.regulations.list_tenant_regulations")
    assert lm.http is not None
    lreq = lm.request_class(tenant_id="t1", pagination={"limit": {"value": 5}, "cursor": "c"})
    verb, path, query, body = expand(lm.http, lreq)
    assert body is None and ("pagination.limit", "5") in query and ("pagination.cursor", "c") in query
    assert decode(lm.http, {"tenant_id": "t1"}, query, None, lm.request_class) == lreq
    gm = method("billing.plans.get")
    assert gm.http is not None
    greq = gm.request_class(id="p1", read_mask={"paths": ["id", "name"]})
    verb, path, query, body = expand(gm.http, greq)
    assert (verb, path, query) == ("GET", "/api/billing/v2/plans/p1", [("readMask", "id,name")])
    assert decode(gm.http, {"id": "p1"}, query, None, gm.request_class) == greq
    # A missing path field is an error, not an empty segment.
    with pytest.raises(TranscodingError):
        expand(method("simple.invoices.get").http, method("simple.invoices.get").request_class())  # type: ignore[arg-type]


def test_response_encode_decode() -> None:
    m = method("simple.invoices.list")
    resp = m.response_class(total_count=42, next_page_cursor="c")
    data = transcoding.encode_response(m.http, resp)
    assert data == {"totalCount": "42", "nextPageCursor": "c"}
    assert transcoding.decode_response(m.http, {**data, "newField": 1}, m.response_class) == resp


# -- decimals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units", "nanos"),
    [
        ("12.50", 12, 500_000_000),
        ("-1.5", -1, -500_000_000),
        ("0.000000001", 0, 1),
        ("-0.3", 0, -300_000_000),
        ("7", 7, 0),
    ],
)
def test_decimal_conversion(text: str, units: int, nanos: int) -> None:
    dv = from_decimal(text)
    assert (dv.units, dv.nanos) == (units, nanos)
    assert to_decimal(dv) == Decimal(text)
    assert isinstance(dv, DecimalValue)


@given(
    st.decimals(
        min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=9, allow_nan=False, allow_infinity=False
    )
)
def test_decimal_roundtrip(d: Decimal) -> None:
    assert to_decimal(from_decimal(d)) == d


def test_decimal_rejects() -> None:
    with pytest.raises(TypeError):
        from_decimal(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        from_decimal("abc")
    with pytest.raises(ValueError):
        from_decimal("1e30")
    with pytest.raises(ValueError):
        to_decimal(DecimalValue(units=1, nanos=-5))
    assert to_decimal(from_decimal("0.1234567894")) == Decimal("0.123456789")  # half-even at 9 places


# -- the pytest plugin ----------------------------------------------------------------------------------


def test_plugin_imports_cheaply() -> None:
    code = (
        "import sys, invora.sandbox.pytest_plugin, invora.sandbox; "
        "print(all(m not in sys.modules for m in ('cryptography', 'invora.sandbox.app', 'invora._proto.catalog')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"


def test_plugin_fixture(invora_sandbox: object) -> None:
    from invora.sandbox import Sandbox

    assert isinstance(invora_sandbox, Sandbox)
    for attr in ("grpc_target", "rest_url", "token_url", "client_id", "client_secret", "org_id"):
        assert getattr(invora_sandbox, attr)


def test_router_shortcut_matches_like_a_full_scan() -> None:
    """Router.match skips routes by their literal prefix; it must pick what trying every route picks."""
    from invora.transcoding import Variable

    r = transcoding.router()

    def full_scan(verb: str, path: str) -> object:
        for route in r.routes.get(verb, ()):
            bindings = route.template.match(path)
            if bindings is not None:
                return route, bindings
        return None

    paths: set[str] = set()
    for routes in r.routes.values():
        for route in routes:
            t = route.template
            for fill in ("x1", "a%2Fb", "a:b"):
                segs = []
                for s in t.segments:
                    if isinstance(s, Variable):
                        segs.append(
                            "/".join(fill if p == "*" else ("q/w" if p == "**" else p) for p in s.pattern)
                        )
                    else:
                        segs.append({"**": "m/n", "*": fill}.get(s, s))
                p = "/" + "/".join(segs) + (":" + t.verb if t.verb else "")
                paths.update((p, p + "/extra", p.rsplit("/", 1)[0], p + "?a=1"))
    checked = 0
    for p in sorted(paths):
        for verb in r.routes:
            assert r.match(verb, p) == full_scan(verb, p), (verb, p)
            checked += 1
    assert checked > 1000
