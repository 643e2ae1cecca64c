"""OpenTelemetry tracing for a client: one CLIENT span per call attempt, trace context sent along.

    import invora, invora.otel
    client = invora.Client(...)
    invora.otel.instrument(client)          # global tracer provider and propagator by default

Every unary call — each attempt of a retried call, each page of a paginated list — becomes a span named
``package.Service/Method`` with the RPC semantic attributes (``rpc.system``, ``rpc.service``,
``rpc.method``, ``rpc.grpc.status_code``, ``server.address``, ``server.port``) plus ``invora.transport``
(``grpc`` or ``rest``; REST calls keep the gRPC status codes, so ``rpc.system`` stays ``grpc``). Failed
calls set the span status to ERROR and ``error.type`` to the status name. The span is the child of
whatever span is current where the call is made, and the configured propagator (W3C ``traceparent`` by
default) writes its context into the call's metadata — HTTP headers on REST — so the server continues
the trace. Streams are not traced yet.

Spans are started without being made current, so the hook is safe with threads and asyncio alike; an
uninstrumented client pays one attribute check per call. Needs the ``otel`` extra
(``pip install 'invora[otel]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "invora.otel needs OpenTelemetry: pip install 'invora[otel]' (opentelemetry-api)"
    ) from exc

import grpc

from invora import __version__

if TYPE_CHECKING:
    from invora import AsyncClient, Client

__all__ = ["instrument", "uninstrument"]

C = TypeVar("C", "Client", "AsyncClient")


class _Span:
    __slots__ = ("_rest", "_span", "metadata")

    def __init__(self, span: Any, metadata: tuple[tuple[str, str], ...], rest: bool) -> None:
        self._span = span
        self.metadata = metadata
        self._rest = rest

    def end(self, error: BaseException | None) -> None:
        span = self._span
        if error is None:
            span.set_attribute("rpc.grpc.status_code", 0)
        else:
            code = getattr(error, "code", None)
            if isinstance(code, grpc.StatusCode):
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                span.set_attribute("error.type", code.name)
            else:
                span.set_attribute("error.type", type(error).__name__)
            http_status = getattr(error, "http_status", None)
            if self._rest and isinstance(http_status, int) and http_status:  # 0: no response came
                span.set_attribute("http.response.status_code", http_status)
            span.record_exception(error)
            span.set_status(
                Status(StatusCode.ERROR, f"{getattr(code, 'name', type(error).__name__)}: {error}")
            )
        span.end()


class _Tracer:
    """Builds spans for one client's calls (target and transport are fixed per client)."""

    def __init__(self, tracer: Any, host: str, port: int, transport: str) -> None:
        self._tracer = tracer
        self._rest = transport == "rest"
        self._base = {
            "rpc.system": "grpc",
            "server.address": host,
            "server.port": port,
            "invora.transport": transport,
        }

    def start(self, method: str) -> _Span:
        service, _, name = method.partition("/")
        span = self._tracer.start_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={**self._base, "rpc.service": service, "rpc.method": name},
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return _Span(span, tuple((k.lower(), v) for k, v in carrier.items()), self._rest)


def instrument(client: C, *, tracer_provider: Any = None) -> C:
    """Trace every call of ``client`` (and of its ``with_org`` views, which share its channels).

    ``tracer_provider`` defaults to the global one. Calling it again replaces the previous tracer.
    """
    settings = client._settings
    tracer = trace.get_tracer("invora", __version__, tracer_provider=tracer_provider)
    core = client._scope.core
    core.tracer = _Tracer(tracer, settings.config.host, settings.config.port, settings.transport_name)
    return client


def uninstrument(client: Client | AsyncClient) -> None:
    """Stop tracing ``client``'s calls."""
    client._scope.core.tracer = None
