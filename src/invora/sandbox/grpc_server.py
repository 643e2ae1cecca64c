"""The gRPC side: one generic handler routing ``/pkg.Service/Method`` to precomputed method handlers.

A ``grpc.aio`` server on its own event loop in a daemon thread. Unary calls (nearly every call of a load
test) run on that loop: the gateway pipeline takes some 20 µs and never waits, so handing each call to a
thread pool — what a synchronous grpcio server does — would cost more than the call (thread wake-ups and
GIL hand-offs between 50+ busy threads). Streaming calls, and every call while a latency knob is set
(it sleeps), run in a thread pool so they never hold up the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from concurrent import futures
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio
from grpc_status import rpc_status

from invora.sandbox.faults import Fault

if TYPE_CHECKING:
    from invora.sandbox.app import MethodEntry, Sandbox

_log = logging.getLogger("invora.sandbox")
_T = TypeVar("_T")
POOL_THREADS = 64  # streaming calls and calls slowed by the latency knob, at once


def _metadata(context: Any) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}


def _status(fault: Fault) -> tuple[grpc.StatusCode, str, Any]:
    """Code, message and trailing metadata (with ``grpc-status-details-bin``) of a fault, for ``abort``
    (the aio server's thread-run contexts have no ``abort_with_status``)."""
    status = rpc_status.to_status(fault.status())
    return status.code, status.details, status.trailing_metadata


def _internal_message(full: str, exc: BaseException) -> str:
    _log.error("sandbox handler of %s failed", full, exc_info=exc)
    return f"sandbox bug in {full}: {type(exc).__name__}: {exc}"


class _Router(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(self, sandbox: Sandbox, pool: futures.Executor) -> None:
        self._pool = pool
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for entry in sandbox.methods.values():
            self._handlers[entry.info.path] = self._make(sandbox, entry)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(handler_call_details.method)

    def _make(self, sb: Sandbox, entry: MethodEntry) -> grpc.RpcMethodHandler[Any, Any]:
        info = entry.info
        deser = info.request_class.FromString
        ser = info.response_class.SerializeToString
        dispatch = sb.dispatch
        full = entry.full
        pool = self._pool

        if not info.is_streaming:

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                md = _metadata(context)
                try:
                    if sb.blocking:
                        loop = asyncio.get_running_loop()
                        return await loop.run_in_executor(pool, dispatch, entry, request, md, "grpc")
                    return dispatch(entry, request, md, "grpc")
                except Fault as f:
                    await context.abort(*_status(f))
                except Exception as exc:
                    await context.abort(grpc.StatusCode.INTERNAL, _internal_message(full, exc))

            return grpc.unary_unary_rpc_method_handler(unary, deser, ser)

        # Streaming: plain functions, which the aio server runs in its thread pool with plain iterators.
        # (Their context is the aio server's thread-side one: abort takes trailing metadata, unlike the stubs'.)
        def stream(request: Any, context: Any) -> Iterator[Any]:
            try:
                yield from dispatch(entry, request, _metadata(context), "grpc")
            except Fault as f:
                context.abort(*_status(f))
            except Exception as exc:
                context.abort(grpc.StatusCode.INTERNAL, _internal_message(full, exc))

        if info.client_streaming and info.server_streaming:
            return grpc.stream_stream_rpc_method_handler(stream, deser, ser)
        if info.client_streaming:

            def client_stream(requests: Any, context: Any) -> Any:
                try:
                    out = list(dispatch(entry, requests, _metadata(context), "grpc"))
                    return out[-1] if out else info.response_class()
                except Fault as f:
                    context.abort(*_status(f))
                except Exception as exc:
                    context.abort(grpc.StatusCode.INTERNAL, _internal_message(full, exc))
                return None

            return grpc.stream_unary_rpc_method_handler(client_stream, deser, ser)
        return grpc.unary_stream_rpc_method_handler(stream, deser, ser)


class GrpcServer:
    """A ``grpc.aio`` server on a private event loop in a daemon thread, bound at construction."""

    def __init__(self, sandbox: Sandbox, host: str, port: int, tls: tuple[bytes, bytes] | None) -> None:
        self._pool = futures.ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="sandbox-grpc")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-grpc-loop", daemon=True)
        self._thread.start()
        self._server: grpc.aio.Server | None = None
        try:
            self.port = self._run(self._build(sandbox, host, port, tls))
        except BaseException:
            self._close_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    async def _build(self, sandbox: Sandbox, host: str, port: int, tls: tuple[bytes, bytes] | None) -> int:
        # grpc.aio objects belong to the loop they are created on: build the server on ours.
        server = self._server = grpc.aio.server(
            migration_thread_pool=self._pool,
            handlers=[_Router(sandbox, self._pool)],
            options=[("grpc.so_reuseport", 0)],
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if tls is not None:
                cert, key = tls
                bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc reports a failed bind (port in use) this way
            await server.stop(None)
            raise OSError(f"cannot bind the gRPC server to {address}: {exc}") from None
        if not bound:
            await server.stop(None)
            raise OSError(f"cannot bind the gRPC server to {address}")
        return int(bound)

    def start(self) -> None:
        assert self._server is not None
        self._run(self._server.start())

    def stop(self, grace: float = 0.5) -> None:
        if self._server is not None and not self._loop.is_closed():
            self._run(self._server.stop(grace))
        self._close_loop()

    def _close_loop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()
        self._pool.shutdown(wait=False)
