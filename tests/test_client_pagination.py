"""Pagination over a real gRPC server: both cursor kinds, prefetch, max_items, resume, cursor errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from _calls import record

import invora
from invora import _catalog


class ListServer:
    """``simple.invoices`` (optional string cursor) and ``billing.plans`` (StringValue cursor) lists."""

    def __init__(self, total: int = 95) -> None:
        self.total = total
        self.requests: list[tuple[str, str, int, dict[str, str]]] = []  # (rpc, cursor, limit, metadata)
        self.lock = threading.Lock()
        self.fail_page: tuple[int, grpc.StatusCode] | None = None  # (request number, code)
        handlers: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for accessor, item_field in (("simple.invoices", "key"), ("billing.plans", "id")):
            svc = _catalog.service(accessor)
            m = svc.method("List")
            handlers[svc.full_name] = {"List": self._handler(accessor, m, item_field)}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            tuple(grpc.method_handlers_generic_handler(name, h) for name, h in handlers.items())
        )
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _handler(self, accessor: str, m: _catalog.MethodInfo, item_field: str) -> grpc.RpcMethodHandler:

        def handle(req: Any, context: grpc.ServicerContext) -> Any:
            cursor = req.pagination.cursor
            limit = req.pagination.limit.value if req.pagination.HasField("limit") else 10
            with self.lock:
                self.requests.append((accessor, cursor, limit, dict(context.invocation_metadata())))
                number = len(self.requests)
            if self.fail_page is not None and self.fail_page[0] == number:
                context.abort(self.fail_page[1], "scripted page failure")
            if cursor and not cursor.startswith("c:"):
                context.abort(grpc.StatusCode.OUT_OF_RANGE, "cursor is malformed or expired")
            start = int(cursor[2:]) if cursor else 0
            resp = m.response_class(total_count=self.total)
            for i in range(start, min(start + limit, self.total)):
                setattr(resp.items.add(), item_field, f"{accessor}-{i}")
            if start + limit < self.total:
                resp.next_page_cursor = f"c:{start + limit}"
            return resp

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=m.request_class.FromString,
            response_serializer=m.response_class.SerializeToString,
        )

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.requests) >= n:
                return True
            time.sleep(0.005)
        return False


@pytest.fixture(scope="module")
def module_server() -> Iterator[ListServer]:
    srv = ListServer()
    yield srv
    srv.server.stop(None)


@pytest.fixture()
def server(module_server: ListServer) -> ListServer:
    module_server.requests.clear()
    module_server.fail_page = None
    return module_server


def test_items_across_pages_with_string_cursor(server: ListServer) -> None:
    with invora.Client(server.target, org_id="org-a", credentials="pat") as client:
        pager = client.simple.invoices.list(page_size=20, metadata=[("x-trace", "t1")], timeout=5)
        keys = [inv.key for inv in pager]
    assert keys == [f"simple.invoices-{i}" for i in range(95)]
    assert [c for _, c, _, _ in server.requests] == ["", "c:20", "c:40", "c:60", "c:80"]
    assert {lim for _, _, lim, _ in server.requests} == {20}
    for *_, md in server.requests:  # tenancy, credentials and metadata on every page
        assert (
            md["x-target-org-id"] == "org-a" and md["authorization"] == "Bearer pat" and md["x-trace"] == "t1"
        )
    assert pager.total_count == 95 and pager.next_page_cursor is None and pager.pages_fetched == 5


def test_billing_pages_and_per_call_org(server: ListServer) -> None:
    with invora.Client(server.target, org_id="org-a") as client:
        pages = list(client.billing.plans.list(page_size=50, org_id="org-b").pages)
    assert [len(p.items) for p in pages] == [50, 45]
    assert pages[0].next_page_cursor == "c:50" and not pages[1].HasField("next_page_cursor")
    assert [md["x-target-org-id"] for *_, md in server.requests] == ["org-b", "org-b"]


def test_next_page_is_prefetched_while_the_caller_holds_the_current_one(server: ListServer) -> None:
    with invora.Client(server.target) as client:
        pages = client.simple.invoices.list(page_size=10).pages
        first = next(pages)
        assert first.items[0].key == "simple.invoices-0"
        # The caller has not asked for page 2 yet, but its request already reached the server...
        assert server.wait_for_requests(2), "page 2 was not prefetched"
        assert server.requests[1][1] == "c:10"
        time.sleep(0.2)
        assert len(server.requests) == 2  # ...and no further than one page ahead.
        second = next(pages)
        assert second.items[0].key == "simple.invoices-10"
        assert server.wait_for_requests(3)


def test_prefetch_can_be_disabled(server: ListServer) -> None:
    with invora.Client(server.target, prefetch=False) as client:
        pages = client.simple.invoices.list(page_size=10).pages
        next(pages)
        time.sleep(0.2)
        assert len(server.requests) == 1
        next(pages)
        assert len(server.requests) == 2


def test_observer_sees_every_page(server: ListServer) -> None:
    seen: list[tuple[str, grpc.StatusCode, int, int]] = []
    with invora.Client(server.target, hooks=[record(seen)]) as client:
        assert len(list(client.simple.invoices.list(page_size=40))) == 95
    assert [(m, c) for m, c, _, _ in seen] == [
        ("invora.simple.invoices.v1.SimpleInvoiceService/List", grpc.StatusCode.OK)
    ] * 3
    assert all(q > 0 and r > 0 for *_, q, r in seen)


def test_max_items_stops_early_without_fetching_more(server: ListServer) -> None:
    with invora.Client(server.target) as client:
        pager = client.simple.invoices.list(page_size=10, max_items=25)
        assert len(list(pager)) == 25
        time.sleep(0.1)
    assert len(server.requests) == 3  # 3 pages cover 25 items; no prefetch of a 4th
    with invora.Client(server.target) as client:
        assert list(client.simple.invoices.list(page_size=10, max_items=0)) == []


def test_resume_from_next_page_cursor(server: ListServer) -> None:
    with invora.Client(server.target, prefetch=False) as client:
        pager = client.simple.invoices.list(page_size=30)
        pages = pager.pages
        next(pages)
        cursor = pager.next_page_cursor
        assert cursor == "c:30"
        rest = [inv.key for inv in client.simple.invoices.list(pagination={"cursor": cursor, "limit": 30})]
    assert rest[0] == "simple.invoices-30" and len(rest) == 65


def test_total_count_fetches_the_first_page_once(server: ListServer) -> None:
    with invora.Client(server.target) as client:
        pager = client.simple.invoices.list(page_size=50)
        assert pager.total_count == 95
        assert len(server.requests) == 1
        assert len(list(pager)) == 95
    assert [c for _, c, _, _ in server.requests] == ["", "c:50"]


def test_rejected_cursor_surfaces_as_out_of_range_naming_the_cursor(server: ListServer) -> None:
    with invora.Client(server.target) as client, pytest.raises(invora.OutOfRange) as info:
        list(client.simple.invoices.list(pagination={"cursor": "forged-cursor"}))
    msg = str(info.value)
    assert "forged-cursor" in msg and "cursor" in msg and "cursor is malformed or expired" in msg
    assert isinstance(info.value.__cause__, invora.OutOfRange)


def test_page_failure_mid_listing_is_raised_to_the_consumer(server: ListServer) -> None:
    server.fail_page = (3, grpc.StatusCode.PERMISSION_DENIED)
    got = []
    with invora.Client(server.target) as client, pytest.raises(invora.PermissionDenied):
        for inv in client.simple.invoices.list(page_size=10):
            got.append(inv.key)
    assert len(got) == 20


def test_pages_are_retried_like_any_read(server: ListServer) -> None:
    server.fail_page = (2, grpc.StatusCode.UNAVAILABLE)
    fast = invora.Retry(initial=0.01, maximum=0.01)
    with invora.Client(server.target, retry=fast) as client:
        assert len(list(client.simple.invoices.list(page_size=50))) == 95
    assert [c for _, c, _, _ in server.requests] == ["", "c:50", "c:50"]


def test_invoke_returns_a_pager(server: ListServer) -> None:
    with invora.Client(server.target) as client:
        pager = client.invoke("billing.plans.list", {}, page_size=30, max_items=31)
        assert isinstance(pager, invora.Pager)
        assert len(list(pager)) == 31


async def test_async_pager_items_pages_and_prefetch(server: ListServer) -> None:
    async with invora.AsyncClient(server.target, org_id="org-x") as client:
        keys = [inv.key async for inv in client.simple.invoices.list(page_size=20)]
        assert len(keys) == 95 and keys[-1] == "simple.invoices-94"
        server.requests.clear()
        pager = client.billing.plans.list(page_size=10)
        assert isinstance(pager, invora.AsyncPager)
        pages = pager.pages
        first = await pages.__anext__()
        assert len(first.items) == 10
        for _ in range(200):  # the prefetch task runs while this consumer holds page 1
            if len(server.requests) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(server.requests) == 2 and server.requests[1][1] == "c:10"
        assert await pager.fetch_total_count() == 95
        rest = [p async for p in pages]
        assert len(rest) == 9
    assert all(md["x-target-org-id"] == "org-x" for *_, md in server.requests)


async def test_async_max_items_and_bad_cursor(server: ListServer) -> None:
    async with invora.AsyncClient(server.target) as client:
        assert len([i async for i in client.simple.invoices.list(page_size=7, max_items=9)]) == 9
        with pytest.raises(invora.OutOfRange, match="nope"):
            async for _ in client.simple.invoices.list(pagination={"cursor": "nope"}):
                pass
        pager = client.simple.invoices.list(page_size=60)
        assert await pager.fetch_total_count() == 95
        assert len([i async for i in pager]) == 95
