"""REST-specific behaviour: what reaches the wire, bodies that are not google.rpc.Status, streaming, and
property-based round trips of the client's encoding through the sandbox's decoding."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

import invora
from invora import _catalog, transcoding
from invora._pbcompat import is_repeated


class _Canned(BaseHTTPRequestHandler):
    """Answers every request with the status/body queued for its path; records what it received."""

    replies: ClassVar[dict[str, tuple[int, bytes, str]]] = {}
    seen: ClassVar[list[dict[str, Any]]] = []

    def _reply(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self.seen.append(
            {"path": url.path, "query": parse_qsl(url.query), "headers": dict(self.headers), "body": body}
        )
        status, payload, ctype = self.replies.get(url.path, (200, b"{}", "application/json"))
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _reply

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, type[_Canned]]]:
    _Canned.replies, _Canned.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Canned
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str) -> invora.Client:
    return invora.Client(
        target=url,
        transport="rest",
        credentials=invora.StaticToken("pat-123"),
        org_id="123456789012345678",
        retry=None,
    )


def test_headers_path_and_body_on_the_wire(canned: tuple[str, type[_Canned]]) -> None:
    url, server = canned
    with _client(url) as client:
        client.simple.invoices.freeze(key="a/b c", concurrency_stamp="s1", metadata=[("x-trace", "t1")])
        client.simple.invoices.get(key="k1", mask={"paths": ["number", "totals"]})
    freeze, get = server.seen
    assert freeze["path"] == "/api/v1/simple/invoices/a%2Fb%20c/freeze"
    body = json.loads(freeze["body"])
    assert body["concurrencyStamp"] == "s1" and "key" not in body and body.get("requestId")  # filled UUID4
    headers = {k.lower(): v for k, v in freeze["headers"].items()}
    assert headers["authorization"] == "Bearer pat-123"
    assert headers["x-target-org-id"] == "123456789012345678"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("invora-python/")
    assert headers["x-trace"] == "t1"
    assert get["path"] == "/api/v1/simple/invoices/k1" and get["body"] == b""
    assert ("mask", "number,totals") in get["query"]


@pytest.mark.parametrize(
    ("status", "body", "ctype", "cls", "needle"),
    [
        (
            502,
            b"<html><body>Bad Gateway from proxy</body></html>",
            "text/html",
            invora.Unavailable,
            "Bad Gateway",
        ),
        (503, b"", "text/plain", invora.Unavailable, "(empty body)"),
        (404, b"not here", "text/plain", invora.NotFound, "not here"),
        (200, b"<html>login page</html>", "text/html", invora.Internal, "login page"),
    ],
)
def test_bodies_that_are_not_a_status(
    canned: tuple[str, type[_Canned]], status: int, body: bytes, ctype: str, cls: type[Exception], needle: str
) -> None:
    url, server = canned
    server.replies["/api/v1/simple/invoices/k"] = (status, body, ctype)
    with _client(url) as client, pytest.raises(cls) as info:
        client.simple.invoices.get(key="k")
    assert needle in str(info.value) and "pat-123" not in str(info.value)


def test_status_json_with_details(canned: tuple[str, type[_Canned]]) -> None:
    url, server = canned
    status = {
        "code": 9,
        "message": "invoice is frozen",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FROZEN", "domain": "invora.app"},
            {"@type": "type.googleapis.com/unknown.Thing", "x": 1},
        ],
    }
    server.replies["/api/v1/simple/invoices/k"] = (400, json.dumps(status).encode(), "application/json")
    with _client(url) as client, pytest.raises(invora.FailedPrecondition) as info:
        client.simple.invoices.get(key="k")
    assert info.value.error_info is not None and info.value.error_info.reason == "FROZEN"
    assert info.value.http_status == 400


def test_streaming_rpcs_fail_before_any_network() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with _client(f"http://127.0.0.1:{port}") as client, pytest.raises(invora.Unimplemented) as info:
        list(client.documents.stream_create([]))
    assert "transport='grpc'" in str(info.value)


def test_connection_refused_is_unavailable_and_marked_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _client(f"http://127.0.0.1:{port}") as client, pytest.raises(invora.Unavailable) as info:
        client.simple.invoices.get(key="k")
    assert info.value.request_not_sent


def test_bearer_token_over_plaintext_to_a_remote_host_is_refused() -> None:
    with pytest.raises(invora.InvoraError, match=r"(?i)plaintext|tls|https"):
        client = invora.Client(
            target="http://example.invalid:8080", transport="rest", credentials=invora.StaticToken("t")
        )
        client.simple.invoices.get(key="k")


# -- property-based: client encoding -> sandbox decoding ------------------------------------------------
ROUND_TRIP = [
    "simple.invoices.create",
    "simple.invoices.update",
    "simple.invoices.freeze",
    "simple.invoices.get",
    "simple.credit_notes.list",
    "billing.plans.get",
    "billing.plans.list",
    "billing.customers.create",
    "identity.connected_business.get_connected_business",
    "documents.get",
]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_SCALARS: dict[int, Any] = {
    FieldDescriptor.TYPE_STRING: _TEXT,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=8),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.integers(-1000, 1000).map(float),
    FieldDescriptor.TYPE_FLOAT: st.integers(-1000, 1000).map(float),
}


def _fill(data: st.DataObject, msg: Message, depth: int, query_only: bool) -> None:
    for fd in msg.DESCRIPTOR.fields:
        if not data.draw(st.booleans()):
            continue
        if fd.message_type is not None:
            if fd.message_type.full_name.startswith("google.protobuf.") or depth >= 2:
                continue
            if fd.message_type.GetOptions().map_entry:
                continue
            if is_repeated(fd):
                if query_only:
                    continue  # repeated messages cannot travel as query parameters
                for _ in range(data.draw(st.integers(0, 2))):
                    _fill(data, getattr(msg, fd.name).add(), depth + 1, query_only)
            else:
                sub = getattr(msg, fd.name)
                sub.SetInParent()
                _fill(data, sub, depth + 1, query_only)
                if query_only and sub.ByteSize() == 0:
                    # Query parameters cannot say "present but empty"; servers treat both alike.
                    msg.ClearField(fd.name)
            continue
        if fd.type == FieldDescriptor.TYPE_ENUM:
            strategy: Any = st.sampled_from([v.number for v in fd.enum_type.values])
        else:
            strategy = _SCALARS[fd.type]
        if is_repeated(fd):
            getattr(msg, fd.name).extend(data.draw(st.lists(strategy, max_size=3)))
        else:
            setattr(msg, fd.name, data.draw(strategy))


@pytest.mark.parametrize("spec", ROUND_TRIP)
@settings(max_examples=60)
@given(data=st.data())
def test_client_encoding_round_trips_through_sandbox_decoding(spec: str, data: st.DataObject) -> None:
    method = _catalog.method(spec)
    rule = method.http
    assert rule is not None
    request = method.request_class()
    _fill(data, request, 0, query_only=rule.body != "*")
    for variable in transcoding.parse_template(rule.path).variables:
        *parents, leaf = variable.field_path
        target: Any = request
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, data.draw(_TEXT.filter(bool)))  # path variables are never empty
    verb, path, query, body = transcoding.expand(rule, request)
    route = transcoding.router().match(verb, path)
    assert route is not None, f"{verb} {path} does not route"
    matched, bindings = route
    assert matched.method.full_name == method.full_name, f"{verb} {path} routes to {matched.method.full_name}"
    raw = json.dumps(body).encode() if body is not None else None
    decoded = transcoding.decode(rule, bindings, query, raw, method.request_class)
    assert decoded == request, f"{spec}: {verb} {path} {query} {body}"


def test_status_codes_match_the_published_table() -> None:
    table = {
        grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.UNAVAILABLE: 503,
    }  # fmt: skip
    for code, status in table.items():
        assert invora.errors.error_class(code)("x").http_status == status
