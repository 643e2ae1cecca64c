"""Server- and bidi-streaming RPCs: credentials, tenancy, deadlines and error mapping; never retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import invora
from invora import _catalog
from invora.auth import AuthMetadata, Credentials

SERVICE = "invora.documents.v2.DocumentsService"


class Rotating(Credentials):
    """Refreshable credentials issuing tok-1, tok-2, ... (each invalidation moves to the next token)."""

    refreshable = True

    def __init__(self) -> None:
        self.n = 1
        self.lock = threading.Lock()

    def metadata(self) -> AuthMetadata:
        return (("authorization", f"Bearer tok-{self.n}"),)

    def invalidate(self, metadata: AuthMetadata) -> None:
        with self.lock:
            if metadata == self.metadata():
                self.n += 1


class Server:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.fail_with: grpc.StatusCode | None = None  # abort after two messages
        self.reject_token: str | None = None
        self.sleep = 0.0
        svc = _catalog.service("documents")
        ls, sc = svc.method("ListStream"), svc.method("StreamCreate")
        self.list_resp, self.create_resp = ls.response_class, sc.response_class

        def check(rpc: str, context: grpc.ServicerContext) -> None:
            md = dict(context.invocation_metadata())
            self.calls.append((rpc, md))
            if self.reject_token and md.get("authorization") == f"Bearer {self.reject_token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "token revoked")

        def list_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            check("ListStream", context)
            yield self.list_resp(initial={"total_count": 3})
            for i in range(3):
                if self.fail_with is not None and i == 1:
                    context.abort(self.fail_with, "stream broke")
                if self.sleep:
                    time.sleep(self.sleep)
                yield self.list_resp(change={"id": f"doc-{i}", "total_count": 3})

        def stream_create(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            check("StreamCreate", context)
            for i, req in enumerate(requests):
                yield self.create_resp(result={"index": i, "success_key": req.item.key or f"gen-{i}"})

        handlers = {
            "ListStream": grpc.unary_stream_rpc_method_handler(
                list_stream,
                request_deserializer=ls.request_class.FromString,
                response_serializer=ls.response_class.SerializeToString,
            ),
            "StreamCreate": grpc.stream_stream_rpc_method_handler(
                stream_create,
                request_deserializer=sc.request_class.FromString,
                response_serializer=sc.response_class.SerializeToString,
            ),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


@pytest.fixture(scope="module")
def module_server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.server.stop(None)


@pytest.fixture()
def server(module_server: Server) -> Server:
    module_server.calls.clear()
    module_server.fail_with = None
    module_server.reject_token = None
    module_server.sleep = 0.0
    return module_server


def test_server_stream_items_credentials_and_tenancy(server: Server) -> None:
    with invora.Client(server.target, credentials="pat-1", org_id="org-a") as client:
        stream = client.documents.list_stream(request_={"filter": {"text_search": "x"}}, org_id="org-b")
        items = list(stream)
    assert items[0].WhichOneof("type") == "initial"
    assert [i.change.id for i in items[1:]] == ["doc-0", "doc-1", "doc-2"]
    (_rpc, md), = server.calls  # fmt: skip
    assert md["authorization"] == "Bearer pat-1" and md["x-target-org-id"] == "org-b"
    assert stream.trailing_metadata() is not None


def test_stream_errors_are_invora_errors_and_not_retried(server: Server) -> None:
    server.fail_with = grpc.StatusCode.UNAVAILABLE
    got: list[Any] = []
    with invora.Client(server.target) as client, pytest.raises(invora.Unavailable) as info:
        for item in client.documents.list_stream():
            got.append(item)
    assert len(got) == 2 and info.value.message == "stream broke"
    # grpc's exception is not chained: it would print the server's words unscrubbed in tracebacks
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(server.calls) == 1  # streams are never retried implicitly


def test_stream_deadline(server: Server) -> None:
    server.sleep = 0.5
    with invora.Client(server.target) as client, pytest.raises(invora.DeadlineExceeded):
        list(client.documents.list_stream(timeout=0.2))


def test_token_refused_before_first_message_is_refreshed_once(server: Server) -> None:
    server.reject_token = "tok-1"
    creds = Rotating()
    with invora.Client(server.target, credentials=creds) as client:
        assert len(list(client.documents.list_stream())) == 4
        assert creds.n == 2
        server.reject_token = "tok-2"
        assert len(list(client.documents.list_stream())) == 4
    assert [md["authorization"] for _, md in server.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-2",
        "Bearer tok-3",
    ]


def test_bidi_stream_with_messages_and_dicts(server: Server) -> None:
    cls = _catalog.method("documents.stream_create").request_class
    requests = [cls(item={"key": "DOC-1"}), {"item": {"key": "DOC-2"}}, {}]
    with invora.Client(server.target, org_id="org-a", credentials="pat") as client:
        results = [r.result for r in client.documents.stream_create(iter(requests))]
    assert [(r.index, r.success_key) for r in results] == [(0, "DOC-1"), (1, "DOC-2"), (2, "gen-2")]
    assert server.calls[0][1]["x-target-org-id"] == "org-a"


def test_bidi_refused_token_is_not_replayed(server: Server) -> None:
    server.reject_token = "tok-1"
    with (
        invora.Client(server.target, credentials=Rotating()) as client,
        pytest.raises(invora.Unauthenticated),
    ):
        list(client.documents.stream_create([{"item": {"key": "A"}}]))
    assert len(server.calls) == 1


def test_raw_on_streaming_methods(server: Server) -> None:
    with invora.Client(server.target) as client:
        raw = client.raw("invora.documents.v2.DocumentsService/ListStream", {})
        assert raw.code is grpc.StatusCode.OK and len(raw.response) == 4
        bidi = client.raw("documents.stream_create", [{"item": {"key": "K"}}])
        assert [r.result.success_key for r in bidi.response] == ["K"]


def test_invoke_streams_by_name(server: Server) -> None:
    with invora.Client(server.target) as client:
        assert len(list(client.invoke("documents.list_stream", {}))) == 4


async def test_async_server_stream(server: Server) -> None:
    async with invora.AsyncClient(server.target, credentials="pat", org_id="org-z") as client:
        items = [i async for i in client.documents.list_stream()]
        assert len(items) == 4
        server.fail_with = grpc.StatusCode.INTERNAL
        with pytest.raises(invora.Internal):
            async for _ in client.documents.list_stream():
                pass
    assert all(md["x-target-org-id"] == "org-z" for _, md in server.calls)


async def test_async_auth_refresh_and_bidi_with_async_iterable(server: Server) -> None:
    server.reject_token = "tok-1"

    async def requests() -> Any:
        for key in ("A", "B"):
            yield {"item": {"key": key}}

    async with invora.AsyncClient(server.target, credentials=Rotating()) as client:
        assert len([i async for i in client.documents.list_stream()]) == 4
        server.reject_token = None
        keys = [r.result.success_key async for r in client.documents.stream_create(requests())]
        raw = await client.raw("documents.list_stream", {})
    assert keys == ["A", "B"] and len(raw.response) == 4
    assert [rpc for rpc, _ in server.calls] == ["ListStream", "ListStream", "StreamCreate", "ListStream"]
