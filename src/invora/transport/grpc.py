"""gRPC transport (sync and grpc.aio): channels, multicallables and status mapping.

Multicallables are built straight from the catalog (method path + message classes), one per method and
channel, so no generated ``*_pb2_grpc`` stub module is imported. The aio channel belongs to the event
loop that created it: it is opened lazily inside the running loop, and reopened if the client is later
used from another loop.

Whether a request left the client is decided here, from the channel's own state, never from a status
message. On a channel that is not connected, a unary attempt first waits (within its deadline) for a
connection. If none comes, the call is still made — grpc then fails it at once with its own account of
the connection failure — and an ``UNAVAILABLE`` it ends with while the channel is still in
TRANSIENT_FAILURE (it never connected since) is marked ``request_not_sent=True``: the one failure after
which even a non-idempotent write may be retried. A call made on a READY channel is never marked so,
whatever the server answers. A channel that already failed keeps reporting TRANSIENT_FAILURE while grpc
reconnects in the background every ``grpc.max_reconnect_backoff_ms`` at most (2 s here, instead of
grpc's 120 s), so an attempt waits a little longer than that for the next reconnection: the default retry
(4 attempts) then spans several seconds of outage, and a server restarted within them is found.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from invora.errors import RpcError, error_class, from_grpc_error
from invora.transport import (
    AsyncRawCallable,
    AsyncRequestFeed,
    AsyncTransport,
    AsyncUnaryCallable,
    Metadata,
    RawCallable,
    RawResponse,
    RequestFeed,
    Transport,
    TransportConfig,
    UnaryCallable,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from invora._catalog import MethodInfo

__all__ = ["AsyncGrpcTransport", "GrpcTransport", "channel_options"]

_EOF = grpc.aio.EOF  # type: ignore[attr-defined]
_MiB = 1024 * 1024
DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 64 * _MiB),
    ("grpc.max_send_message_length", 64 * _MiB),
    # Pings only while calls are active, at an interval default servers accept (5 min), to detect
    # half-dead connections on long streams without triggering "too_many_pings".
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # Reconnect at most every 2 s (grpc's default cap is 120 s) so a restarted server is found within the
    # retry budget; a connection attempt may still take 5 s (the "min backoff" is grpc's connect timeout).
    ("grpc.initial_reconnect_backoff_ms", 1000),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.min_reconnect_backoff_ms", 5000),
)
# cygrpc connectivity states (grpc.ChannelConnectivity values are tuples around these).
_IDLE, _READY, _FAILURE, _SHUTDOWN = 0, 2, 3, 4


def channel_options(config: TransportConfig) -> list[tuple[str, Any]]:
    """Defaults, then the user's options (which win), plus user agent and TLS name override.

    A plaintext channel never goes through an ``http_proxy``/``grpc_proxy`` from the environment: it is
    allowed only to loopback, and a proxy would receive the bearer token in clear.
    """
    merged: dict[str, Any] = dict(DEFAULT_OPTIONS)
    merged["grpc.primary_user_agent"] = config.user_agent
    if config.ssl_target_name:
        merged["grpc.ssl_target_name_override"] = config.ssl_target_name
    merged.update(dict(config.channel_options))
    if not config.secure:
        merged["grpc.enable_http_proxy"] = 0
    return list(merged.items())


def _patience(config: TransportConfig) -> float:
    """How long an attempt waits for a failing channel's next reconnection: the backoff cap plus its
    20 % jitter and a margin for the connection itself."""
    cap_ms = dict(channel_options(config)).get("grpc.max_reconnect_backoff_ms", 2000)
    try:
        cap = float(cap_ms) / 1000.0
    except (TypeError, ValueError):
        cap = 2.0
    return cap * 1.2 + 0.5


def _wait_ready(channel: grpc.Channel, timeout: float, patience: float) -> bool:
    """Whether ``channel`` is (or becomes, within ``min(timeout, patience)``) READY.

    A connection attempt started here that fails ends the wait at once; a channel already failing is
    given until its next reconnection. Uses the channel's cygrpc handle, as grpc's own ``subscribe`` does,
    because the public API only offers a polling thread per subscription.
    """
    cy = channel._channel  # type: ignore[attr-defined]
    state = cy.check_connectivity_state(True)
    if state == _READY:
        return True
    was_failing = state == _FAILURE
    end = time.time() + min(timeout, patience)
    while True:
        if state == _READY:
            return True
        if state == _SHUTDOWN or (state == _FAILURE and not was_failing):
            return False
        if state == _IDLE:
            cy.check_connectivity_state(True)
        left = end - time.time()
        if left <= 0:
            return False
        cy.watch_connectivity_state(state, time.time() + min(left, 0.5))
        state = cy.check_connectivity_state(False)


async def _await_ready(channel: grpc.aio.Channel, timeout: float, patience: float) -> bool:
    """:func:`_wait_ready` for grpc.aio (public API: ``get_state`` / ``wait_for_state_change``)."""
    ready, failing = grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE
    state = channel.get_state(try_to_connect=True)
    if state is ready:
        return True
    was_failing = state is failing
    loop = asyncio.get_running_loop()
    end = loop.time() + min(timeout, patience)
    while True:
        if state is ready:
            return True
        if state is grpc.ChannelConnectivity.SHUTDOWN or (state is failing and not was_failing):
            return False
        if state is grpc.ChannelConnectivity.IDLE:
            channel.get_state(try_to_connect=True)
        left = end - loop.time()
        if left <= 0:
            return False
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(channel.wait_for_state_change(state), min(left, 0.5))
        state = channel.get_state(try_to_connect=False)


def _budget(
    config: TransportConfig, method: MethodInfo, timeout: float, waited: float, ready: bool, failing: bool
) -> tuple[float, bool]:
    """The attempt's (timeout left, ready) after waiting ``waited`` s for a connection.

    When the wait used the whole attempt on a channel that is still failing, the attempt fails here, as
    not sent: a call now would end as DEADLINE_EXCEEDED, which the retry policy must treat as possibly
    sent, although grpc never sends on a failing channel. With time left, the call goes ahead and grpc's
    own UNAVAILABLE says why it could not connect."""
    left = timeout - waited
    if failing and left < 0.01:
        raise error_class(grpc.StatusCode.UNAVAILABLE)(
            f"no connection to {config.address} (waited {waited:.1f} s for one)",
            method=method.full_name,
            request_not_sent=True,
        )
    return max(left, 0.001), ready


def _channel_credentials(config: TransportConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=config.root_certificates,
        private_key=config.private_key,
        certificate_chain=config.certificate_chain,
    )


def _codecs(method: MethodInfo) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    return method.request_class.SerializeToString, method.response_class.FromString


def _multicallable(channel: Any, kind: str, method: MethodInfo) -> Any:
    ser, de = _codecs(method)
    return getattr(channel, kind)(
        method.path, request_serializer=ser, response_deserializer=de, _registered_method=True
    )


def _md(value: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((m[0], m[1]) for m in value) if value else ()


# -- sync -------------------------------------------------------------------------------------------------
def _failure(exc: grpc.RpcError, name: str | None, feed: Any) -> BaseException:
    """What a failed stream raises: the caller's own exception when its request iterator failed (the
    feed cancelled the call), else the InvoraError of the status."""
    if feed is not None and feed.error is not None:
        return feed.error  # type: ignore[no-any-return]
    return from_grpc_error(exc, name)


class _StreamCall:
    """What the sync and asyncio stream wrappers share: the call, and a request feed that cancels it."""

    __slots__ = ("_call", "_feed", "_name")

    def __init__(
        self, call: Any, name: str | None = None, feed: RequestFeed | AsyncRequestFeed | None = None
    ) -> None:
        self._call = call
        self._name = name
        self._feed = feed
        if feed is not None:
            feed.bind(call.cancel)

    def cancel(self) -> bool:
        return bool(self._call.cancel())


class _SyncStream(_StreamCall):
    """Iterator over a grpc stream call that raises InvoraError subclasses."""

    __slots__ = ()

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except grpc.RpcError as exc:
            raise _failure(exc, self._name, self._feed) from None

    def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        try:
            return _md(self._call.initial_metadata())
        except grpc.RpcError as exc:
            raise _failure(exc, self._name, self._feed) from None

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return _md(self._call.trailing_metadata())

    def code(self) -> grpc.StatusCode:
        return self._call.code()  # type: ignore[no-any-return]


class GrpcTransport(Transport):
    name = "grpc"

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._patience = _patience(config)

    @property
    def channel(self) -> grpc.Channel:
        """The channel, created on first use (no connection is attempted until the first call)."""
        channel = self._channel
        if channel is None:
            with self._lock:
                channel = self._channel
                if channel is None:
                    cfg = self.config
                    opts = channel_options(cfg)
                    if cfg.secure:
                        channel = grpc.secure_channel(cfg.address, _channel_credentials(cfg), opts)
                    else:
                        channel = grpc.insecure_channel(cfg.address, opts)
                    self._channel = channel
        return channel

    @property
    def has_connections(self) -> bool:
        return self._channel is not None

    def _unary_mc(self, method: MethodInfo) -> Any:
        return _multicallable(self.channel, "unary_unary", method)

    def _connector(self, method: MethodInfo) -> Callable[[float], tuple[float, bool]]:
        """``connected(timeout)`` for calls of ``method``: (the attempt's timeout left, whether the channel
        is READY) after waiting for a connection. Bound once per method: it runs before every call."""
        channel = self.channel  # a transport keeps its channel until it is closed
        state = channel._channel.check_connectivity_state  # type: ignore[attr-defined]
        patience, config = self._patience, self.config

        def connected(timeout: float) -> tuple[float, bool]:
            if state(False) == _READY:
                return timeout, True
            started = time.monotonic()
            ready = _wait_ready(channel, timeout, patience)
            failing = not ready and state(False) == _FAILURE
            return _budget(config, method, timeout, time.monotonic() - started, ready, failing)

        return connected

    def _error(self, exc: grpc.RpcError, method: MethodInfo, ready: bool) -> RpcError:
        """The error of a failed call; not sent only if it was made on a channel that had not connected
        and still has not (grpc fails such calls before writing anything)."""
        not_sent = (
            not ready
            and exc.code() == grpc.StatusCode.UNAVAILABLE
            and self.channel._channel.check_connectivity_state(False) == _FAILURE  # type: ignore[attr-defined]
        )
        return from_grpc_error(exc, method.full_name, request_not_sent=not_sent)

    def unary(self, method: MethodInfo) -> UnaryCallable:
        mc = self._unary_mc(method)
        connected = self._connector(method)

        def call(request: Message, timeout: float, metadata: Metadata) -> Message:
            timeout, ready = connected(timeout)
            try:
                return mc(request, timeout=timeout, metadata=metadata)  # type: ignore[no-any-return]
            except grpc.RpcError as exc:
                raise self._error(exc, method, ready) from None

        return call

    def unary_raw(self, method: MethodInfo) -> RawCallable:
        if method.server_streaming or method.client_streaming:
            start = self.server_stream(method) if not method.client_streaming else self.stream_stream(method)

            def call_stream(request: Any, timeout: float, metadata: Metadata) -> RawResponse:
                stream = start(request, timeout, metadata)
                items = list(stream)
                return RawResponse(
                    items, stream.initial_metadata(), stream.trailing_metadata(), grpc.StatusCode.OK
                )

            return call_stream
        mc = self._unary_mc(method)
        connected = self._connector(method)

        def call(request: Message, timeout: float, metadata: Metadata) -> RawResponse:
            timeout, ready = connected(timeout)
            try:
                response, rpc = mc.with_call(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                raise self._error(exc, method, ready) from None
            return RawResponse(
                response, _md(rpc.initial_metadata()), _md(rpc.trailing_metadata()), rpc.code()
            )

        return call

    def server_stream(self, method: MethodInfo) -> Callable[[Message, float, Metadata], _SyncStream]:
        mc = _multicallable(self.channel, "unary_stream", method)

        def call(request: Message, timeout: float, metadata: Metadata) -> _SyncStream:
            return _SyncStream(mc(request, timeout=timeout, metadata=metadata), method.full_name)

        return call

    def stream_stream(
        self, method: MethodInfo
    ) -> Callable[[Iterable[Message], float, Metadata], _SyncStream]:
        if method.server_streaming:
            mc = _multicallable(self.channel, "stream_stream", method)

            def call(requests: Iterable[Message], timeout: float, metadata: Metadata) -> _SyncStream:
                call = mc(iter(requests), timeout=timeout, metadata=metadata)
                return _SyncStream(call, method.full_name, _feed_of(requests))

            return call
        unary_mc = _multicallable(self.channel, "stream_unary", method)

        def call_unary(requests: Iterable[Message], timeout: float, metadata: Metadata) -> _SyncStream:
            future = unary_mc.future(iter(requests), timeout=timeout, metadata=metadata)
            return _SyncStream(_single(future), method.full_name, _feed_of(requests))

        return call_unary

    def close(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


def _feed_of(requests: Any) -> Any:
    return requests if isinstance(requests, (RequestFeed, AsyncRequestFeed)) else None


class _single:
    """A stream-unary future seen as a one-message stream."""

    def __init__(self, future: Any) -> None:
        self._future = future
        self._done = False

    def __iter__(self) -> _single:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        self._done = True
        return self._future.result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._future, name)


# -- asyncio ----------------------------------------------------------------------------------------------
class _AsyncStream(_StreamCall):
    """Async iterator over a grpc.aio stream call that raises InvoraError subclasses."""

    __slots__ = ()

    def __aiter__(self) -> _AsyncStream:
        return self

    async def _settle(self, awaitable: Awaitable[Any]) -> Any:
        """``await awaitable`` (a read, or a stream-unary call), raising what the caller should see."""
        try:
            return await awaitable
        except grpc.RpcError as exc:
            raise _failure(exc, self._name, self._feed) from None
        except asyncio.CancelledError:
            # grpc.aio reports the cancellation the feed made as CancelledError; a real one propagates.
            feed = self._feed
            if feed is None or feed.error is None:
                raise
            raise feed.error from None

    async def __anext__(self) -> Any:
        message = await self._settle(self._call.read())
        if message is _EOF:
            raise StopAsyncIteration
        return message

    async def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        return _md(await self._call.initial_metadata())

    async def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return _md(await self._call.trailing_metadata())

    async def code(self) -> grpc.StatusCode:
        return await self._call.code()  # type: ignore[no-any-return]


class _LoopChannel:
    __slots__ = ("channel", "loop", "mcs")

    def __init__(self, loop: asyncio.AbstractEventLoop, channel: grpc.aio.Channel) -> None:
        self.loop = loop
        self.channel = channel
        self.mcs: dict[tuple[str, str], Any] = {}


class AsyncGrpcTransport(AsyncTransport):
    name = "grpc"

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._current: _LoopChannel | None = None
        self._all: list[_LoopChannel] = []
        self._patience = _patience(config)
        _AIO_LIVE.add(self)

    @property
    def has_connections(self) -> bool:
        return bool(self._all)

    def _open(self) -> _LoopChannel:
        loop = asyncio.get_running_loop()
        current = self._current
        if current is not None and current.loop is loop:
            return current
        for lc in self._all:
            if lc.loop is loop:
                self._current = lc
                return lc
        cfg = self.config
        opts = channel_options(cfg)
        if cfg.secure:
            channel = grpc.aio.secure_channel(cfg.address, _channel_credentials(cfg), opts)
        else:
            channel = grpc.aio.insecure_channel(cfg.address, opts)
        lc = _LoopChannel(loop, channel)
        self.drop_closed_loops()
        self._all.append(lc)
        self._current = lc
        return lc

    def drop_closed_loops(self) -> None:
        """Release the channels of event loops that have closed (e.g. after ``asyncio.run``).

        Such a channel can no longer be used, yet while it exists grpc.aio keeps a poller thread waiting
        inside gRPC, and grpc (1.66 at least) then skips its fork() preparation: the child's and even the
        parent's later calls stall until their deadlines. Dropping the last reference closes the channel.
        """
        self._all = [lc for lc in self._all if not lc.loop.is_closed()]
        if self._current is not None and self._current.loop.is_closed():
            self._current = None

    def _mc(self, kind: str, method: MethodInfo, codecs: tuple[Any, Any]) -> Any:
        lc = self._current
        if lc is None or lc.loop is not asyncio.get_running_loop():
            lc = self._open()
        key = (kind, method.path)
        mc = lc.mcs.get(key)
        if mc is None:
            factory = getattr(lc.channel, kind)
            mc = lc.mcs[key] = factory(
                method.path,
                request_serializer=codecs[0],
                response_deserializer=codecs[1],
                _registered_method=True,
            )
        return mc

    def _channel(self) -> grpc.aio.Channel:
        return self._current.channel if self._current is not None else self._open().channel

    async def _connected(self, timeout: float, method: MethodInfo) -> tuple[float, bool]:
        """:meth:`GrpcTransport._connector`'s check for the channel of the running loop."""
        channel = self._channel()
        if channel.get_state() is grpc.ChannelConnectivity.READY:
            return timeout, True
        started = time.monotonic()
        ready = await _await_ready(channel, timeout, self._patience)
        failing = not ready and channel.get_state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        return _budget(self.config, method, timeout, time.monotonic() - started, ready, failing)

    def _error(self, exc: grpc.RpcError, method: MethodInfo, ready: bool) -> RpcError:
        """:meth:`GrpcTransport._error` for the channel of the running loop."""
        not_sent = (
            not ready
            and exc.code() == grpc.StatusCode.UNAVAILABLE
            and self._channel().get_state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE
        )
        return from_grpc_error(exc, method.full_name, request_not_sent=not_sent)

    def unary(self, method: MethodInfo) -> AsyncUnaryCallable:
        codecs = _codecs(method)
        mc_for = self._mc

        async def call(request: Message, timeout: float, metadata: Metadata) -> Message:
            mc = mc_for("unary_unary", method, codecs)
            timeout, ready = await self._connected(timeout, method)
            try:
                return await mc(request, timeout=timeout, metadata=metadata)  # type: ignore[no-any-return]
            except grpc.RpcError as exc:
                raise self._error(exc, method, ready) from None

        return call

    def unary_raw(self, method: MethodInfo) -> AsyncRawCallable:
        codecs = _codecs(method)
        streaming = method.server_streaming or method.client_streaming
        start: Any = None
        if streaming:
            start = self.stream_stream(method) if method.client_streaming else self.server_stream(method)

        async def call(request: Any, timeout: float, metadata: Metadata) -> RawResponse:
            if streaming:
                stream = start(request, timeout, metadata)
                items = [m async for m in stream]
                return RawResponse(
                    items,
                    await stream.initial_metadata(),
                    await stream.trailing_metadata(),
                    grpc.StatusCode.OK,
                )
            mc = self._mc("unary_unary", method, codecs)
            timeout, ready = await self._connected(timeout, method)
            rpc = mc(request, timeout=timeout, metadata=metadata)
            try:
                response = await rpc
                return RawResponse(
                    response,
                    _md(await rpc.initial_metadata()),
                    _md(await rpc.trailing_metadata()),
                    await rpc.code(),
                )
            except grpc.RpcError as exc:
                raise self._error(exc, method, ready) from None

        return call

    def server_stream(self, method: MethodInfo) -> Callable[[Message, float, Metadata], _AsyncStream]:
        codecs = _codecs(method)

        def call(request: Message, timeout: float, metadata: Metadata) -> _AsyncStream:
            mc = self._mc("unary_stream", method, codecs)
            return _AsyncStream(mc(request, timeout=timeout, metadata=metadata), method.full_name)

        return call

    def stream_stream(self, method: MethodInfo) -> Callable[[Any, float, Metadata], _AsyncStream]:
        codecs = _codecs(method)
        kind = "stream_stream" if method.server_streaming else "stream_unary"

        def call(
            requests: Iterable[Message] | AsyncIterable[Message], timeout: float, metadata: Metadata
        ) -> Any:
            mc = self._mc(kind, method, codecs)
            rpc = mc(requests, timeout=timeout, metadata=metadata)
            feed = _feed_of(requests)
            return (
                _AsyncStream(rpc, method.full_name, feed)
                if kind == "stream_stream"
                else _AsyncSingle(rpc, method.full_name, feed)
            )

        return call

    async def close(self) -> None:
        channels, self._all, self._current = self._all, [], None
        for lc in channels:
            if lc.loop.is_closed():
                continue
            try:
                if lc.loop is asyncio.get_running_loop():
                    await lc.channel.close(None)
                else:
                    asyncio.run_coroutine_threadsafe(lc.channel.close(None), lc.loop)
            except RuntimeError:
                pass


_AIO_LIVE: weakref.WeakSet[AsyncGrpcTransport] = weakref.WeakSet()


def _drop_closed_loops() -> None:
    for transport in list(_AIO_LIVE):
        transport.drop_closed_loops()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_drop_closed_loops)


class _AsyncSingle(_AsyncStream):
    """A stream-unary aio call seen as a one-message stream."""

    __slots__ = ("_done",)

    def __init__(self, call: Any, name: str | None = None, feed: AsyncRequestFeed | None = None) -> None:
        super().__init__(call, name, feed)
        self._done = False

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        self._done = True
        return await self._settle(self._call)
