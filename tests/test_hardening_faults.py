"""Fault injection over real sockets: lying servers, failing request iterators, a token endpoint that
hangs at refresh, a server restarted on the same port (issue 12, items 1–4)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from _hardening import GrpcStub, HttpStub, TokenEndpoint, ends, json_reply, record

import invora
from invora import _catalog
from invora.auth import ClientCredentials

# Texts grpc itself uses for connection failures, which the old client matched in the status message.
LIES = [
    "Connection refused",
    "DNS resolution failed",
    "failed to connect to all addresses",
    "name resolution failed",
    "Failed to connect to remote host",
]
FAST = invora.Retry(attempts=4, initial=0.01, maximum=0.02, deadline=20)


@pytest.fixture()
def stub() -> Iterator[GrpcStub]:
    s = GrpcStub()
    yield s
    s.stop()


# -- 1. request_not_sent comes from the client, never from the server's words --------------------------------
@pytest.mark.parametrize("lie", LIES)
def test_a_write_stored_then_answered_unavailable_is_never_sent_again(stub: GrpcStub, lie: str) -> None:
    def store_then_lie(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAVAILABLE, f"upstream: {lie} (ipv4:10.0.0.1:443)")

    stub.handlers["Update"] = store_then_lie
    with invora.Client(stub.target, retry=FAST) as client:
        for i in range(5):
            with pytest.raises(invora.Unavailable) as info:
                client.simple.invoices.update(key=f"INV-{i}", concurrency_stamp="s")
            assert not info.value.request_not_sent and info.value.attempts == 1
    stored = stub.count("Update")
    record("duplicated non-idempotent writes (sync, gRPC): " + lie, stored - 5)
    assert stored == 5


async def test_async_writes_are_not_duplicated_by_a_lying_server(stub: GrpcStub) -> None:
    def store_then_lie(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAVAILABLE, "Connection refused; DNS resolution failed")

    stub.handlers["Update"] = store_then_lie
    async with invora.AsyncClient(stub.target, retry=FAST) as client:
        for i in range(5):
            with pytest.raises(invora.Unavailable):
                await client.simple.invoices.update(key=f"INV-{i}")
    record("duplicated non-idempotent writes (async, gRPC)", stub.count("Update") - 5)
    assert stub.count("Update") == 5


def test_rest_writes_are_not_duplicated_by_a_lying_server() -> None:
    body = {"code": 14, "message": "failed to connect to all addresses; Connection refused"}
    http = HttpStub(lambda *_: json_reply(body, 503))
    try:
        with invora.Client(http.url, transport="rest", retry=FAST) as client:
            for i in range(5):
                with pytest.raises(invora.Unavailable) as info:
                    client.simple.invoices.update(key=f"INV-{i}")
                assert not info.value.request_not_sent
    finally:
        http.close()
    record("duplicated non-idempotent writes (REST)", len(http.requests) - 5)
    assert len(http.requests) == 5


def test_a_write_to_a_closed_port_is_retried_because_the_client_saw_no_connection() -> None:
    target = f"127.0.0.1:{_closed_port()}"
    with invora.Client(target, retry=FAST, timeout=5) as client, pytest.raises(invora.Unavailable) as info:
        client.simple.invoices.update(key="INV-1")
    assert info.value.request_not_sent and info.value.attempts == 4


def _closed_port() -> int:
    from _hardening import free_port

    return free_port()


# -- 2. a failing request iterator ends the call with the caller's own exception ----------------------------
class Boom(Exception):
    pass


class Bidi:
    """DocumentsService/StreamCreate answering one result per request."""

    def __init__(self) -> None:
        sc = _catalog.method("documents.stream_create")
        self.seen = 0

        def stream_create(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for i, _ in enumerate(requests):
                self.seen += 1
                yield sc.response_class(result={"index": i})

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.stream_stream_rpc_method_handler(
            stream_create,
            request_deserializer=sc.request_class.FromString,
            response_serializer=sc.response_class.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(sc.service.full_name, {"StreamCreate": handler}),)
        )
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


@pytest.fixture(scope="module")
def bidi() -> Iterator[Bidi]:
    b = Bidi()
    yield b
    b.server.stop(None)


def _requests(failure: BaseException | None) -> Iterator[Any]:
    yield {"item": {"key": "A"}}
    time.sleep(0.05)
    if failure is not None:
        raise failure
    yield 42  # not a request


DEADLINE = 3.0


@pytest.mark.parametrize("kind", ["raises", "wrong type"])
def test_sync_stream_with_a_failing_iterator_ends_with_the_callers_exception(bidi: Bidi, kind: str) -> None:
    mine = Boom("the caller's own failure") if kind == "raises" else None

    def run() -> list[Any]:
        with invora.Client(bidi.target) as client:
            return [r.result.index for r in client.documents.stream_create(_requests(mine), timeout=DEADLINE)]

    _, error, seconds = ends(run, within=DEADLINE + 30)
    record(f"sync stream, iterator {kind}: seconds to end (deadline {DEADLINE:g}s)", round(seconds, 3))
    if mine is not None:
        assert error is mine
    else:
        assert isinstance(error, TypeError) and "got int" in str(error)


@pytest.mark.parametrize("kind", ["raises", "wrong type"])
def test_async_stream_with_a_failing_iterator_ends_with_the_callers_exception(bidi: Bidi, kind: str) -> None:
    mine = Boom("the caller's own failure") if kind == "raises" else None

    async def main() -> list[Any]:
        async with invora.AsyncClient(bidi.target) as client:
            stream = client.documents.stream_create(_requests(mine), timeout=DEADLINE)
            return [r.result.index async for r in stream]

    _, error, seconds = ends(lambda: asyncio.run(main()), within=DEADLINE + 30)
    record(f"async stream, iterator {kind}: seconds to end (deadline {DEADLINE:g}s)", round(seconds, 3))
    if mine is not None:
        assert error is mine
    else:
        assert isinstance(error, TypeError) and "got int" in str(error)


async def test_async_iterable_that_raises(bidi: Bidi) -> None:
    mine = Boom("async source")

    async def source() -> Any:
        yield {"item": {"key": "A"}}
        raise mine

    async with invora.AsyncClient(bidi.target) as client:
        with pytest.raises(Boom) as info:
            async for _ in client.documents.stream_create(source(), timeout=DEADLINE):
                pass
    assert info.value is mine


# -- 3. a token endpoint that hangs at refresh --------------------------------------------------------------
THREADS = 64
TOKEN_TIMEOUT = 2.0


def test_refresh_against_a_hanging_endpoint_blocks_nobody_and_fails_once_per_flight(stub: GrpcStub) -> None:
    ep = TokenEndpoint(ttl=8)  # refreshed 4 s in (min(buffer, ttl / 2)), valid for 8 s
    creds = ClientCredentials("client", "secret-for-refresh-test", ep.token_url, timeout=TOKEN_TIMEOUT)
    waits: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    try:
        with invora.Client(stub.target, credentials=creds, retry=None) as client:
            client.simple.invoices.get(key="warm")  # the first token
            ep.mode = "hang"
            refresh_due = time.monotonic() + 4.0
            valid_until = refresh_due + 3.0  # a margin under the 8 s expiry

            def worker() -> None:
                while time.monotonic() < valid_until:
                    started = time.monotonic()
                    try:
                        client.simple.invoices.get(key="k")
                    except BaseException as exc:
                        with lock:
                            failures.append(exc)
                    with lock:
                        waits.append(time.monotonic() - started)
                    time.sleep(0.05)

            threads = [threading.Thread(target=worker) for _ in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads), "callers hang"
            posts_while_valid = ep.posts - 1
            # Past expiry, with the endpoint still hanging: every caller waits for the same flight.
            time.sleep(max(0.0, refresh_due + 4.5 - time.monotonic()))
            outage: list[tuple[Any, BaseException | None, float]] = []
            outage_threads = [
                threading.Thread(
                    target=lambda: outage.append(ends(lambda: client.simple.invoices.get(key="x"), 60))
                )
                for _ in range(THREADS)
            ]
            for t in outage_threads:
                t.start()
            for t in outage_threads:
                t.join(90)
    finally:
        ep.close()
    record(f"token endpoint hanging at refresh, {THREADS} threads: longest call while the token was valid (s)",
           round(max(waits), 3))  # fmt: skip
    record(f"token endpoint hanging at refresh, {THREADS} threads: failures while the token was valid",
           len(failures))  # fmt: skip
    record(f"token outage, {THREADS} threads: longest wait (s), token timeout {TOKEN_TIMEOUT:g}s",
           round(max(s for _, _, s in outage), 3))  # fmt: skip
    assert failures == []
    assert posts_while_valid == 1  # one background flight, not one fetch per waiting thread
    errors = [e for _, e, _ in outage]
    assert all(isinstance(e, invora.AuthenticationError) for e in errors)
    # Waiters share their flight's outcome: far fewer endpoint requests than callers.
    assert ep.posts - 1 - posts_while_valid <= 2


async def test_async_callers_share_the_flight_and_its_failure() -> None:
    ep = TokenEndpoint()
    creds = ClientCredentials("client", "secret-async-test", ep.token_url, timeout=TOKEN_TIMEOUT)
    ep.mode = "hang"
    try:
        results = await asyncio.gather(*(creds.ametadata() for _ in range(32)), return_exceptions=True)
    finally:
        ep.close()
    assert all(isinstance(r, invora.AuthenticationError) for r in results)
    assert ep.posts == 1


# -- 4. a server restarted on the same port is found by the default retry -----------------------------------
RESTART = 2.0


@pytest.mark.parametrize("rpc", ["get", "update"])
def test_first_call_after_a_restart_succeeds_with_the_default_retry(rpc: str) -> None:
    stub = GrpcStub()
    port = stub.port
    try:
        with invora.Client(stub.target) as client:  # the default Retry()
            call = getattr(client.simple.invoices, rpc)
            call(key="before")
            stub.stop()

            def restart() -> None:
                time.sleep(RESTART)
                stub.port = port
                stub.start()

            threading.Thread(target=restart, daemon=True).start()
            _, error, seconds = ends(lambda: call(key="after"), within=120)
    finally:
        stub.stop()
    outcome = f"ok after {seconds:.1f}s" if error is None else repr(error)
    record(f"first {rpc} after a {RESTART:g}s restart, default retry", outcome)
    assert error is None
    assert [r for r, req, _ in stub.received if req.key == "after"]
