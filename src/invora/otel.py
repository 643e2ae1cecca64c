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

It is a hook (:mod:`invora.hooks`): ``Client(hooks=[invora.otel.hook()])`` traces from the start, and
``instrument(client)`` adds it to an existing client. Spans are started without being made current, so
the hook is safe with threads and asyncio alike. Needs the ``otel`` extra
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

from invora import __version__

if TYPE_CHECKING:
    from invora import AsyncClient, Client
    from invora.hooks import CallEvent, Hook

__all__ = ["hook", "instrument", "uninstrument"]

C = TypeVar("C", "Client", "AsyncClient")


class _Tracing:
    """The hook: a CLIENT span per attempt, its context injected into the attempt's metadata."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("invora", __version__, tracer_provider=tracer_provider)

    def __call__(self, event: CallEvent) -> Any:
        service, _, name = event.method.partition("/")
        host, _, port = event.target.rpartition(":")
        span = self._tracer.start_span(
            event.method,
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": name,
                "server.address": host.strip("[]"),
                "server.port": int(port) if port.isdigit() else 0,
                "invora.transport": event.transport,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        event.metadata.extend((k.lower(), v) for k, v in carrier.items())
        return lambda done: _end(span, done)

    def __repr__(self) -> str:
        return "invora.otel.hook()"


def _end(span: Any, event: CallEvent) -> None:
    error = event.error
    if error is None:
        span.set_attribute("rpc.grpc.status_code", 0)
    else:
        code = event.code
        if code is not None:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            span.set_attribute("error.type", code.name)
        else:
            span.set_attribute("error.type", type(error).__name__)
        http_status = getattr(error, "http_status", None)
        if event.transport == "rest" and isinstance(http_status, int) and http_status:  # 0: no response
            span.set_attribute("http.response.status_code", http_status)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{getattr(code, 'name', type(error).__name__)}: {error}"))
    span.end()


def hook(*, tracer_provider: Any = None) -> Hook:
    """The tracing hook, for ``Client(hooks=[invora.otel.hook()])``; ``tracer_provider`` defaults to the
    global one."""
    return _Tracing(tracer_provider)


def instrument(client: C, *, tracer_provider: Any = None) -> C:
    """Trace every call of an existing ``client`` (and of its ``with_org`` views, which share its core).

    Adds :func:`hook` to the client's hooks; calling it again replaces the previous tracing hook.
    """
    core: Any = client._scope.core
    core.hooks = (*_others(core.hooks), hook(tracer_provider=tracer_provider))
    return client


def uninstrument(client: Client | AsyncClient) -> None:
    """Stop tracing ``client``'s calls."""
    core: Any = client._scope.core
    core.hooks = _others(core.hooks)


def _others(hooks: tuple[Hook, ...]) -> tuple[Hook, ...]:
    return tuple(h for h in hooks if not isinstance(h, _Tracing))
