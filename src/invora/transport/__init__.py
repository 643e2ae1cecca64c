"""The seam between the per-call logic and the wire.

The core (credentials, tenancy metadata, ``request_id``, the retry loop, pagination, the observer) never
touches gRPC: it asks a transport for a callable per method and calls it with a request message, a
timeout in seconds and a metadata tuple. A transport:

- returns the response message, or raises an :class:`invora.InvoraError` subclass (chained from its own
  exception), setting ``request_not_sent=True`` when it knows the request never left the client;
- sends metadata as gRPC metadata or HTTP headers (keys are lower-case);
- creates its connections lazily and reports whether it has any (``has_connections``), which lets a
  client created before ``fork()`` but never used still work in the child.

``transport="grpc"`` is :mod:`invora.transport.grpc`; a REST transport registers under ``"rest"`` by
providing ``invora.transport.rest`` with ``RestTransport`` / ``AsyncRestTransport`` classes that take a
:class:`TransportConfig`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message

    from invora._catalog import MethodInfo

__all__ = [
    "AsyncRequestFeed",
    "AsyncStreamCall",
    "AsyncTransport",
    "Metadata",
    "RawResponse",
    "RequestFeed",
    "StreamCall",
    "Transport",
    "TransportConfig",
]

Metadata = tuple[tuple[str, str], ...]

# The two records below are NamedTuples rather than frozen dataclasses: the client imports this module,
# and generating dataclass methods would cost every program about a millisecond per class at start.


class RawResponse(NamedTuple):
    """A response with its call information (``client.raw(...)``).

    For streaming methods ``response`` is the list of all messages received.
    """

    response: Any
    initial_metadata: tuple[tuple[str, Any], ...]
    trailing_metadata: tuple[tuple[str, Any], ...]
    code: grpc.StatusCode


class TransportConfig(NamedTuple):
    """Everything a transport needs to reach the API (decided and validated by the client)."""

    host: str
    port: int
    secure: bool
    root_certificates: bytes | None = None
    private_key: bytes | None = None  # mutual TLS (optional)
    certificate_chain: bytes | None = None
    ssl_target_name: str | None = None
    channel_options: tuple[tuple[str, Any], ...] = ()
    user_agent: str = "invora-python"
    extra: Mapping[str, Any] = MappingProxyType({})  # transport-specific settings

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``https://host:port`` (or ``http://`` on plaintext loopback) for HTTP transports."""
        return ("https://" if self.secure else "http://") + self.address


UnaryCallable = Callable[["Message", float, Metadata], "Message"]
RawCallable = Callable[["Message", float, Metadata], RawResponse]
AsyncUnaryCallable = Callable[["Message", float, Metadata], Awaitable["Message"]]
AsyncRawCallable = Callable[["Message", float, Metadata], Awaitable[RawResponse]]


class StreamCall(Protocol):
    """A running stream: iterate responses (errors raise InvoraError), cancel, read metadata."""

    def __iter__(self) -> Iterator[Any]: ...
    def __next__(self) -> Any: ...
    def cancel(self) -> bool: ...
    def initial_metadata(self) -> tuple[tuple[str, Any], ...]: ...
    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]: ...


class AsyncStreamCall(Protocol):
    def __aiter__(self) -> AsyncIterator[Any]: ...
    async def __anext__(self) -> Any: ...
    def cancel(self) -> bool: ...
    async def initial_metadata(self) -> tuple[tuple[str, Any], ...]: ...
    async def trailing_metadata(self) -> tuple[tuple[str, Any], ...]: ...


class Transport(ABC):
    """Blocking transport; all methods are safe to call from many threads."""

    name = "abstract"

    def __init__(self, config: TransportConfig) -> None:
        self.config = config

    @abstractmethod
    def unary(self, method: MethodInfo) -> UnaryCallable:
        """A callable ``(request, timeout, metadata) -> response`` for a unary method."""

    @abstractmethod
    def unary_raw(self, method: MethodInfo) -> RawCallable:
        """Like :meth:`unary` but returning :class:`RawResponse`."""

    @abstractmethod
    def server_stream(self, method: MethodInfo) -> Callable[[Message, float, Metadata], StreamCall]:
        """A callable starting a server-streaming call."""

    @abstractmethod
    def stream_stream(self, method: MethodInfo) -> Callable[[Iterable[Message], float, Metadata], StreamCall]:
        """A callable starting a client- or bidi-streaming call (unsupported over REST)."""

    @property
    @abstractmethod
    def has_connections(self) -> bool:
        """Whether any connection/channel was opened (decides whether a forked child may use it)."""

    @abstractmethod
    def close(self) -> None: ...


class AsyncTransport(ABC):
    """asyncio transport; connections are created inside the running loop, lazily."""

    name = "abstract"

    def __init__(self, config: TransportConfig) -> None:
        self.config = config

    @abstractmethod
    def unary(self, method: MethodInfo) -> AsyncUnaryCallable: ...

    @abstractmethod
    def unary_raw(self, method: MethodInfo) -> AsyncRawCallable: ...

    @abstractmethod
    def server_stream(self, method: MethodInfo) -> Callable[[Message, float, Metadata], AsyncStreamCall]: ...

    @abstractmethod
    def stream_stream(self, method: MethodInfo) -> Callable[[Any, float, Metadata], AsyncStreamCall]: ...

    @property
    @abstractmethod
    def has_connections(self) -> bool: ...

    @abstractmethod
    async def close(self) -> None: ...


class RequestFeed:
    """The caller's request iterator as a transport consumes it: items coerced one by one; when the
    iterator raises (or yields something that cannot be coerced) the call is cancelled — never half-closed,
    so the server cannot act on a partial stream — and the stream re-raises the caller's own exception.

    The transport calls :meth:`bind` with its call right after starting it (the call's own thread may
    already be reading), and checks :attr:`error` when the call ends in cancellation.
    """

    def __init__(self, source: Iterable[Any], coerce: Callable[[Any], Any]) -> None:
        self._source = iter(source)
        self._coerce = coerce
        self._bound = threading.Event()
        self._cancel: Callable[[], Any] | None = None
        #: The exception the caller's iterator raised, if it did.
        self.error: Exception | None = None

    def bind(self, cancel: Callable[[], Any]) -> None:
        self._cancel = cancel
        self._bound.set()

    def __iter__(self) -> RequestFeed:
        return self

    def __next__(self) -> Any:
        if self.error is not None:
            raise StopIteration
        try:
            return self._coerce(next(self._source))
        except StopIteration:
            raise
        except Exception as exc:
            self.error = exc
        # The transport binds as soon as the call object exists, which is before it can fail to exist.
        self._bound.wait()
        assert self._cancel is not None
        self._cancel()
        raise StopIteration


class AsyncRequestFeed:
    """:class:`RequestFeed` for grpc.aio: takes a sync or an async iterable."""

    def __init__(self, source: Iterable[Any] | AsyncIterable[Any], coerce: Callable[[Any], Any]) -> None:
        self._async = source.__aiter__() if isinstance(source, AsyncIterable) else None
        self._sync = iter(source) if self._async is None else None  # type: ignore[arg-type]
        self._coerce = coerce
        self._cancel: Callable[[], Any] | None = None
        self.error: Exception | None = None

    def bind(self, cancel: Callable[[], Any]) -> None:
        self._cancel = cancel

    def __aiter__(self) -> AsyncRequestFeed:
        return self

    async def __anext__(self) -> Any:
        if self.error is not None:
            raise StopAsyncIteration
        try:
            item = await self._async.__anext__() if self._async is not None else next(self._sync)  # type: ignore[arg-type]
            return self._coerce(item)
        except (StopIteration, StopAsyncIteration):
            raise StopAsyncIteration from None
        except Exception as exc:
            self.error = exc
        if self._cancel is not None:  # bound synchronously when the call was created, before any read
            self._cancel()
        raise StopAsyncIteration
