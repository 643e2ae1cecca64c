"""Retry policy: the decision table, backoff and budget, and the retry loop against a real gRPC server."""

from __future__ import annotations

import copy
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from hypothesis import given
from hypothesis import strategies as st

import invora
from invora import _catalog
from invora._request import idempotency_key
from invora.errors import error_class
from invora.retry import Retry

SERVICE = "invora.simple.invoices.v1.SimpleInvoiceService"
C = grpc.StatusCode


# -- the decision table -------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", list(C), ids=lambda c: c.name)
def test_which_codes_are_retried(code: grpc.StatusCode) -> None:
    policy = Retry()
    err = error_class(code)("x")
    idem = code in (C.UNAVAILABLE, C.RESOURCE_EXHAUSTED, C.ABORTED, C.DEADLINE_EXCEEDED)
    assert policy.should_retry(err, idempotent=True) is idem
    assert policy.should_retry(err, idempotent=False) is False  # may have reached the server
    not_sent = error_class(code)("x", request_not_sent=True)
    assert policy.should_retry(not_sent, idempotent=False) is (code == C.UNAVAILABLE)


@given(
    retry_number=st.integers(1, 12),
    initial=st.floats(0.001, 2.0),
    maximum=st.floats(0.0, 10.0),
    multiplier=st.floats(1.0, 4.0),
)
def test_full_jitter_backoff_bounds(
    retry_number: int, initial: float, maximum: float, multiplier: float
) -> None:
    policy = Retry(initial=initial, maximum=maximum, multiplier=multiplier)
    ceiling = min(maximum, initial * multiplier ** (retry_number - 1))
    for _ in range(20):
        assert 0.0 <= policy.backoff(retry_number) <= ceiling + 1e-12


def test_backoff_is_jittered() -> None:
    policy = Retry(initial=1.0, maximum=1.0)
    assert len({policy.backoff(1) for _ in range(20)}) > 10


def test_attempts_retry_info_cap_and_budget() -> None:
    unavailable = invora.Unavailable("down")
    state = Retry(attempts=3, deadline=None).start(idempotent=True)
    assert state.next_delay(unavailable) is not None
    assert state.next_delay(unavailable) is not None
    assert state.next_delay(unavailable) is None  # third attempt was the last
    assert state.attempt == 3

    def with_retry_info(seconds: float) -> invora.InvoraError:
        return invora.ResourceExhausted("slow down", retry_delay=seconds)

    capped = Retry(max_retry_delay=0.5, deadline=None).start(idempotent=True)
    assert capped.next_delay(with_retry_info(0.2)) == 0.2  # honoured exactly, no jitter
    assert capped.next_delay(with_retry_info(120)) == 0.5  # capped
    budget = Retry(deadline=1.0).start(idempotent=True)
    assert budget.next_delay(with_retry_info(5.0)) is None  # would end after the budget
    assert budget.attempt_timeout(30.0) <= 1.0
    assert Retry(deadline=None).start(True).attempt_timeout(30.0) == 30.0
    old = Retry(deadline=2.0).start(True, started=time.monotonic() - 10)
    assert old.next_delay(unavailable) is None  # budget already spent


def test_retry_is_an_immutable_value() -> None:
    policy, same = Retry(attempts=3, deadline=None), Retry(attempts=3, deadline=None)
    assert policy == same and hash(policy) == hash(same) and len({policy, same}) == 1
    assert policy != Retry(attempts=3) and policy != (3, None)
    assert pickle.loads(pickle.dumps(policy)) == policy and copy.deepcopy(policy) == policy
    assert repr(policy).startswith(
        "Retry(attempts=3, initial=0.1, maximum=5.0, multiplier=2.0, deadline=None,"
    )
    with pytest.raises(AttributeError, match="immutable"):
        policy.attempts = 5  # type: ignore[misc]
    assert Retry(5, 0.2).attempts == 5 and Retry(5, 0.2).initial == 0.2  # positional, in field order


def test_idempotency_key_is_a_canonical_uuid4() -> None:
    ids = [idempotency_key() for _ in range(500)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)


# -- the loop against a real server -------------------------------------------------------------------------
class Script:
    """Per-RPC queue of actions the server performs, and a log of what it received."""

    def __init__(self) -> None:
        self.actions: dict[str, list[Any]] = {}
        self.seen: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def next(self, rpc: str) -> Any:
        with self.lock:
            queue = self.actions.get(rpc) or []
            return queue.pop(0) if queue else None


def _status(code: grpc.StatusCode, delay: float | None) -> Any:
    st = status_pb2.Status(code=code.value[0], message=f"scripted {code.name}")
    if delay is not None:
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(delay), nanos=int((delay % 1) * 1e9))
        )
        st.details.add().Pack(info)
    return rpc_status.to_status(st)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    svc = _catalog.service("simple.invoices")

    def make(rpc: str) -> grpc.RpcMethodHandler:
        m = svc.method(rpc)
        req_cls, resp_cls = m.request_class, m.response_class

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with script.lock:
                script.seen.append((rpc, request))
            action = script.next(rpc)
            if action is not None:
                kind, *args = action
                if kind == "sleep":
                    time.sleep(args[0])
                else:
                    context.abort_with_status(_status(args[0], args[1] if len(args) > 1 else None))
            return resp_cls()

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString
        )

    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    srv.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {n: make(n) for n in ("Get", "Update", "Freeze", "Create")}
            ),
        )
    )
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", script
    srv.stop(None)


@pytest.fixture()
def script(server: tuple[str, Script]) -> Script:
    server[1].actions.clear()
    server[1].seen.clear()
    return server[1]


FAST = Retry(attempts=4, initial=0.01, maximum=0.02, deadline=10)


def test_unavailable_read_is_retried_until_success(server: tuple[str, Script], script: Script) -> None:
    observed: list[grpc.StatusCode] = []
    script.actions["Get"] = [("code", C.UNAVAILABLE), ("code", C.UNAVAILABLE)]
    with invora.Client(
        server[0], retry=FAST, hooks=[lambda e: lambda done: observed.append(done.code)]
    ) as client:
        client.simple.invoices.get(key="INV-1")
    assert [rpc for rpc, _ in script.seen] == ["Get"] * 3
    assert observed == [C.UNAVAILABLE, C.UNAVAILABLE, C.OK]


def test_gives_up_after_attempts_and_reports_them(server: tuple[str, Script], script: Script) -> None:
    script.actions["Get"] = [("code", C.UNAVAILABLE)] * 10
    with invora.Client(server[0], retry=FAST) as client, pytest.raises(invora.Unavailable) as info:
        client.simple.invoices.get(key="INV-1")
    assert info.value.attempts == 4 and len(script.seen) == 4


@pytest.mark.parametrize("code", [C.UNAVAILABLE, C.RESOURCE_EXHAUSTED, C.ABORTED, C.DEADLINE_EXCEEDED])
def test_unsafe_write_is_never_retried_once_sent(
    server: tuple[str, Script], script: Script, code: Any
) -> None:
    script.actions["Update"] = [("code", code)]
    with invora.Client(server[0], retry=FAST) as client, pytest.raises(invora.InvoraError) as info:
        client.simple.invoices.update(key="INV-1", concurrency_stamp="s")
    assert info.value.code is code and info.value.attempts == 1
    assert [rpc for rpc, _ in script.seen] == ["Update"]


def test_write_with_request_id_is_retried_with_the_same_id(
    server: tuple[str, Script], script: Script
) -> None:
    script.actions["Freeze"] = [("code", C.UNAVAILABLE), ("code", C.ABORTED)]
    with invora.Client(server[0], retry=FAST) as client:
        client.simple.invoices.freeze(key="INV-1", concurrency_stamp="s")
        client.simple.invoices.freeze(key="INV-2", concurrency_stamp="s")
    ids = [req.request_id for _, req in script.seen]
    assert len(ids) == 4 and ids[0] == ids[1] == ids[2] != ids[3]
    assert all(len(i) == 36 for i in ids)


def test_retry_info_replaces_backoff_and_is_capped(server: tuple[str, Script], script: Script) -> None:
    # Backoff alone could wait up to 1000 s: finishing at all shows RetryInfo's short delay was used.
    slow_backoff = Retry(attempts=3, initial=1000, maximum=1000, deadline=None, max_retry_delay=0.05)
    script.actions["Get"] = [("code", C.RESOURCE_EXHAUSTED, 0.02), ("code", C.UNAVAILABLE, 3600.0)]
    with invora.Client(server[0], retry=slow_backoff) as client:
        client.simple.invoices.get(key="INV-1")
    assert len(script.seen) == 3


def test_retry_info_beyond_the_budget_is_not_waited_for(server: tuple[str, Script], script: Script) -> None:
    script.actions["Get"] = [("code", C.UNAVAILABLE, 30.0)]
    with (
        invora.Client(server[0], retry=Retry(deadline=2.0)) as client,
        pytest.raises(invora.Unavailable) as info,
    ):
        client.simple.invoices.get(key="INV-1")
    assert info.value.attempts == 1 and info.value.retry_delay == 30.0


def test_deadline_exceeded_read_retried_with_a_fresh_attempt_deadline(
    server: tuple[str, Script], script: Script
) -> None:
    script.actions["Get"] = [("sleep", 1.0)]
    with invora.Client(server[0], retry=FAST, timeout=0.2) as client:
        client.simple.invoices.get(key="INV-1")
    assert len(script.seen) == 2


def test_per_call_retry_none_and_override(server: tuple[str, Script], script: Script) -> None:
    script.actions["Get"] = [("code", C.UNAVAILABLE)] * 3
    with invora.Client(server[0], retry=FAST) as client:
        with pytest.raises(invora.Unavailable):
            client.simple.invoices.get(key="INV-1", retry=None)
        assert len(script.seen) == 1
        client.simple.invoices.get(key="INV-1", retry=Retry(attempts=5, initial=0.01, maximum=0.01))
    assert len(script.seen) == 4


def test_connection_refused_write_is_retried_because_nothing_was_sent() -> None:
    # The later attempts wait their whole timeout for a reconnection that never comes: they end as
    # UNAVAILABLE, not sent (not as DEADLINE_EXCEEDED, which would stop a write's retries).
    with (
        invora.Client("127.0.0.1:1", retry=FAST, timeout=1) as client,
        pytest.raises(invora.Unavailable) as info,
    ):
        client.simple.invoices.update(key="INV-1", concurrency_stamp="s")
    assert info.value.request_not_sent and info.value.attempts == 4


async def test_async_connection_refused_write_is_retried_because_nothing_was_sent() -> None:
    async with invora.AsyncClient("127.0.0.1:1", retry=FAST, timeout=1) as client:
        with pytest.raises(invora.Unavailable) as info:
            await client.simple.invoices.update(key="INV-1", concurrency_stamp="s")
    assert info.value.request_not_sent and info.value.attempts == 4


async def test_async_retry_loop(server: tuple[str, Script], script: Script) -> None:
    script.actions["Get"] = [("code", C.UNAVAILABLE), ("code", C.UNAVAILABLE)]
    script.actions["Update"] = [("code", C.UNAVAILABLE)]
    async with invora.AsyncClient(server[0], retry=FAST) as client:
        await client.simple.invoices.get(key="INV-1")
        with pytest.raises(invora.Unavailable) as info:
            await client.simple.invoices.update(key="INV-1")
    assert info.value.attempts == 1
    assert [rpc for rpc, _ in script.seen] == ["Get", "Get", "Get", "Update"]


async def test_async_request_id_reused(server: tuple[str, Script], script: Script) -> None:
    script.actions["Create"] = [("code", C.RESOURCE_EXHAUSTED, 0.01)]
    async with invora.AsyncClient(server[0], retry=FAST) as client:
        await client.simple.invoices.create(key="INV-9")
    ids = [req.request_id for _, req in script.seen]
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0]
