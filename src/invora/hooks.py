"""Watching calls: ``Client(hooks=[...])``, the one observer API (tracing, metrics, load tests, logs).

A hook is a callable that receives a :class:`CallEvent` as each attempt of a unary call — or each page of
a list — starts. It may add metadata to that attempt (``event.metadata.append(("traceparent", ...))``) and
may return a callable, which is called once with the same event when the attempt ends, ``code``,
``duration``, ``response`` and ``error`` filled in::

    def timing(event: invora.CallEvent):
        def done(event: invora.CallEvent) -> None:
            stats.observe(event.method, event.code, event.duration)
        return done

    client = invora.Client(target, hooks=[timing])

:mod:`invora.otel` and the Locust integration are hooks. A hook that raises is logged and ignored: watching
a call never changes it. With no hook (and the ``invora`` logger not at DEBUG) a call pays nothing for
this. Streams are not reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message

__all__ = ["CallEvent", "Hook"]


class CallEvent:
    """One attempt of a call, as hooks see it. Attributes set when the attempt ends are None until then."""

    __slots__ = (
        "attempt",
        "code",
        "duration",
        "error",
        "metadata",
        "method",
        "request",
        "request_id",
        "response",
        "target",
        "transport",
    )

    def __init__(
        self, method: str, target: str, transport: str, attempt: int, request_id: str, request: Message
    ) -> None:
        #: ``package.Service/Method``.
        self.method = method
        #: ``host:port`` of the server.
        self.target = target
        #: ``"grpc"``, ``"rest"`` or the name of a custom transport.
        self.transport = transport
        #: 1 for the first attempt; retries count up.
        self.attempt = attempt
        #: The id the SDK generated for the call (sent as ``x-request-id``; the same for every attempt).
        self.request_id = request_id
        #: The request message.
        self.request = request
        #: Extra metadata a hook wants sent with this attempt (appended to, never read back).
        self.metadata: list[tuple[str, str]] = []
        #: The status: ``grpc.StatusCode.OK``, an error's code, or None for a local failure (bad request
        #: type, cancellation) where no status came back.
        self.code: grpc.StatusCode | None = None
        #: Seconds from the start of the attempt to its end.
        self.duration = 0.0
        #: The response (or the raw response of ``Client.raw``) when the attempt succeeded.
        self.response: Any = None
        #: The exception the attempt ended with, if any (an :class:`invora.InvoraError` unless local).
        self.error: BaseException | None = None

    @property
    def request_bytes(self) -> int:
        """Serialized size of the request."""
        return self.request.ByteSize()

    @property
    def response_bytes(self) -> int:
        """Serialized size of the response (0 when there is none)."""
        return _size(self.response)

    def __repr__(self) -> str:
        status = self.code.name if self.code is not None else ("local error" if self.error else "running")
        return f"<CallEvent {self.method} attempt={self.attempt} {status} request_id={self.request_id}>"


#: ``hook(event)`` at the start of an attempt; returns None or ``done(event)`` for its end.
Hook = Callable[[CallEvent], "Callable[[CallEvent], None] | None"]


def _size(obj: Any) -> int:
    if obj is None:
        return 0
    size = getattr(obj, "ByteSize", None)
    if size is not None:
        return int(size())
    response = getattr(obj, "response", None)  # a RawResponse
    if isinstance(response, list):
        return sum(m.ByteSize() for m in response)
    return _size(response) if response is not None else 0
