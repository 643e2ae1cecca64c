"""A fake transport for fast unit tests of code that uses the SDK: canned answers, recorded calls, no sockets.

    fake = FakeTransport()
    fake.respond("simple.invoices.get", {"details": {"key": "k1", "number": "INV-1"}})
    client = invora.Client(transport=fake)
    assert client.simple.invoices.get(key="k1").details.number == "INV-1"
    assert fake.calls[0].request.key == "k1"

Everything above the transport runs for real — request building, ``request_id``, tenancy metadata, retries,
pagination, error classes — so a test sees what the client would send. Answers are queued per method and
used in order; the last one repeats. An answer is a response message, a dict of its fields, an
:class:`invora.InvoraError` to raise (``fake.fail(method, grpc.StatusCode.NOT_FOUND)`` builds one), or a
callable ``(request) -> answer``. A method with no answer raises :class:`invora.Unimplemented`, naming it.
For :class:`invora.AsyncClient` pass ``transport=fake.aio`` (same answers, same record). For integration
tests over real sockets use the sandbox (:mod:`invora.sandbox`).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from invora import _catalog
from invora.errors import InvoraError, Unimplemented, error_class
from invora.transport import (
    AsyncStreamCall,
    AsyncTransport,
    Metadata,
    RawResponse,
    StreamCall,
    Transport,
    TransportConfig,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from invora._catalog import MethodInfo

__all__ = ["FakeCall", "FakeTransport"]

Answer = Message | dict[str, Any] | InvoraError | Callable[[Message], Any]


@dataclass(frozen=True)
class FakeCall:
    """One call as the transport received it."""

    method: str  # pkg.Service/Method
    request: Message  # for client-streaming calls, the last request sent
    metadata: dict[str, str]
    timeout: float


class FakeTransport(Transport):
    """Answers calls from queued answers and records every call (thread-safe)."""

    name = "fake"

    def __init__(self, config: TransportConfig | None = None) -> None:
        super().__init__(config or TransportConfig(host="fake.invalid", port=443, secure=True))
        self._lock = threading.Lock()
        self._answers: dict[str, list[Answer]] = {}
        self.calls: list[FakeCall] = []
        self.aio: AsyncTransport = _AsyncFake(self)

    # -- scripting --------------------------------------------------------------------------------------
    def respond(self, method: str, *answers: Answer) -> FakeTransport:
        """Queue answers for ``method`` (accessor path or ``pkg.Service/Method``); the last one repeats."""
        if not answers:
            raise ValueError("respond() needs at least one answer")
        name = _catalog.method(method).full_name
        with self._lock:
            self._answers.setdefault(name, []).extend(answers)
        return self

    @staticmethod
    def fail(code: grpc.StatusCode, message: str = "") -> InvoraError:
        """The SDK's exception for ``code``, to queue as an answer."""
        return error_class(code)(message or code.name.lower().replace("_", " "))

    def requests(self, method: str) -> list[Message]:
        """The requests ``method`` received, in order."""
        name = _catalog.method(method).full_name
        return [c.request for c in self.calls if c.method == name]

    # -- answering --------------------------------------------------------------------------------------
    def _next(self, info: MethodInfo, request: Message, timeout: float, metadata: Metadata) -> Any:
        """Record the call and resolve its next answer (raising a queued error)."""
        with self._lock:
            self.calls.append(FakeCall(info.full_name, request, dict(metadata), timeout))
            queue = self._answers.get(info.full_name)
            if not queue:
                raise Unimplemented(
                    f"FakeTransport has no answer for {info.full_name}", method=info.full_name
                )
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer) and not isinstance(answer, (Message, InvoraError)):
            answer = answer(request)
        if isinstance(answer, InvoraError):
            raise answer
        return answer

    def _answer(self, info: MethodInfo, request: Message, timeout: float, metadata: Metadata) -> Message:
        return _message(info, self._next(info, request, timeout, metadata))

    def _stream_answer(
        self, info: MethodInfo, request: Message, timeout: float, md: Metadata
    ) -> list[Message]:
        answer = self._next(info, request, timeout, md)
        return [_message(info, a) for a in (answer if isinstance(answer, (list, tuple)) else [answer])]

    def unary(self, method: MethodInfo) -> Callable[[Message, float, Metadata], Message]:
        def call(request: Message, timeout: float, metadata: Metadata) -> Message:
            return self._answer(method, request, timeout, metadata)

        return call

    def unary_raw(self, method: MethodInfo) -> Callable[[Message, float, Metadata], RawResponse]:
        def call(request: Message, timeout: float, metadata: Metadata) -> RawResponse:
            response = self._answer(method, request, timeout, metadata)
            return RawResponse(response, (), (), grpc.StatusCode.OK)

        return call

    def server_stream(self, method: MethodInfo) -> Callable[[Message, float, Metadata], StreamCall]:
        """A server stream answers with a list of messages (or dicts): one per streamed response."""

        def call(request: Message, timeout: float, metadata: Metadata) -> StreamCall:
            return _Stream(self._stream_answer(method, request, timeout, metadata))

        return call

    def stream_stream(self, method: MethodInfo) -> Callable[[Iterable[Message], float, Metadata], StreamCall]:
        def call(requests: Iterable[Message], timeout: float, metadata: Metadata) -> StreamCall:
            sent = list(requests) or [method.request_class()]
            return _Stream(self._stream_answer(method, sent[-1], timeout, metadata))

        return call

    @property
    def has_connections(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _message(info: MethodInfo, answer: Any) -> Message:
    cls = info.response_class
    if isinstance(answer, cls):
        return answer
    if isinstance(answer, dict):
        return json_format.ParseDict(answer, cls())
    raise TypeError(
        f"FakeTransport answer for {info.full_name} must be a {cls.DESCRIPTOR.full_name}, a dict of its "
        f"fields, an InvoraError or a callable; got {type(answer).__name__}"
    )


class _Stream:
    """A finished stream over canned messages."""

    def __init__(self, items: list[Message]) -> None:
        self._it = iter(items)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            raise StopAsyncIteration from None

    def cancel(self) -> bool:
        return False

    def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        return ()

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return ()


class _AsyncStream(_Stream):
    async def initial_metadata(self) -> tuple[tuple[str, Any], ...]:  # type: ignore[override]
        return ()

    async def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:  # type: ignore[override]
        return ()


class _AsyncFake(AsyncTransport):
    """The asyncio face of a :class:`FakeTransport`: same answers, same record."""

    name = "fake"

    def __init__(self, fake: FakeTransport) -> None:
        super().__init__(fake.config)
        self._fake = fake

    def unary(self, method: MethodInfo) -> Callable[[Message, float, Metadata], Awaitable[Message]]:
        sync = self._fake.unary(method)

        async def call(request: Message, timeout: float, metadata: Metadata) -> Message:
            return sync(request, timeout, metadata)

        return call

    def unary_raw(self, method: MethodInfo) -> Callable[[Message, float, Metadata], Awaitable[RawResponse]]:
        sync = self._fake.unary_raw(method)

        async def call(request: Message, timeout: float, metadata: Metadata) -> RawResponse:
            return sync(request, timeout, metadata)

        return call

    def server_stream(self, method: MethodInfo) -> Callable[[Message, float, Metadata], AsyncStreamCall]:
        def call(request: Message, timeout: float, metadata: Metadata) -> AsyncStreamCall:
            return _AsyncStream(self._fake._stream_answer(method, request, timeout, metadata))

        return call

    def stream_stream(self, method: MethodInfo) -> Callable[[Any, float, Metadata], AsyncStreamCall]:
        def call(requests: Any, timeout: float, metadata: Metadata) -> AsyncStreamCall:
            raise Unimplemented(f"FakeTransport.aio does not fake client streams ({method.full_name})")

        return call

    @property
    def has_connections(self) -> bool:
        return False

    async def close(self) -> None:
        pass
