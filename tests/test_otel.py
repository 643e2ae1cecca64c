"""OpenTelemetry instrumentation: spans exported in memory, trace context checked on the sandbox's side."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import invora
import invora.otel
from invora.sandbox import Sandbox, Tenant

GET = "invora.simple.invoices.v1.SimpleInvoiceService/Get"
LIST = "invora.simple.invoices.v1.SimpleInvoiceService/List"
CREATE = "invora.simple.invoices.v1.SimpleInvoiceService/Create"
FAST = invora.Retry(attempts=3, initial=0.01, maximum=0.02)
LINE = {"description": "x", "quantity": {"units": 1}, "unit_price": {"units": 10}}
DRAFT = {"buyer": {"name": "Najd Foods"}, "lines": [LINE]}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


@pytest.fixture
def tenant(invora_sandbox: Sandbox) -> Tenant:
    return invora_sandbox.create_tenant()


def _client(sb: Sandbox, tenant: Tenant, transport: str = "grpc", cls: type = invora.Client) -> invora.Client:
    target = sb.rest_url if transport == "rest" else sb.grpc_target
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    client: invora.Client = cls(target, credentials=creds, transport=transport, retry=FAST)
    return client


@pytest.fixture
def client(invora_sandbox: Sandbox, tenant: Tenant, provider: TracerProvider) -> Iterator[invora.Client]:
    with _client(invora_sandbox, tenant) as c:
        yield invora.otel.instrument(c, tracer_provider=provider)


def _traceparent(sb: Sandbox, tenant: Tenant, method: str) -> list[str]:
    return [
        c.metadata.get("traceparent", "")
        for c in sb.calls
        if c.method == method and c.org_id == tenant.org_id
    ]


def _parsed(traceparent: str) -> tuple[str, str, bool]:
    """W3C ``version-traceid-spanid-flags`` → (trace id, parent span id, sampled)."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id, bool(int(flags, 16) & 1)


def _ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def test_span_per_call_with_rpc_attributes_and_propagated_context(
    invora_sandbox: Sandbox, tenant: Tenant, client: invora.Client, provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:  # fmt: skip
    with provider.get_tracer("test").start_as_current_span("checkout") as parent:
        inv = client.simple.invoices.create(changes=DRAFT)
    (span,) = [s for s in exporter.get_finished_spans() if s.name == CREATE]
    assert span.kind is SpanKind.CLIENT and span.status.status_code is StatusCode.UNSET
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    attrs = dict(span.attributes or {})
    host, port = invora_sandbox.grpc_target.rsplit(":", 1)
    assert attrs == {
        "rpc.system": "grpc",
        "rpc.service": "invora.simple.invoices.v1.SimpleInvoiceService",
        "rpc.method": "Create",
        "rpc.grpc.status_code": 0,
        "server.address": host,
        "server.port": int(port),
        "invora.transport": "grpc",
    }
    trace_id, span_id = _ids(span)
    (sent,) = _traceparent(invora_sandbox, tenant, CREATE)
    assert _parsed(sent) == (trace_id, span_id, True)  # the server sees the client span as its parent
    assert inv.ByteSize() > 0


def test_failed_call_marks_the_span(
    invora_sandbox: Sandbox, client: invora.Client, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(invora.NotFound):
        client.simple.invoices.get(key="missing")
    (span,) = exporter.get_finished_spans()
    assert span.name == GET and span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None and span.status.description.startswith("NOT_FOUND: ")
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert span.attributes["error.type"] == "NOT_FOUND"
    assert [e.name for e in span.events] == ["exception"]


def test_each_retry_attempt_is_a_span(
    invora_sandbox: Sandbox, client: invora.Client, exporter: InMemorySpanExporter
) -> None:
    invora_sandbox.inject_error(LIST, grpc.StatusCode.UNAVAILABLE, times=1)
    client.simple.invoices.list(page_size=5).pages.__next__()
    spans = exporter.get_finished_spans()
    assert [s.attributes["rpc.grpc.status_code"] for s in spans if s.attributes] == [14, 0]
    assert len({_ids(s)[1] for s in spans}) == 2 and len({_ids(s)[0] for s in spans}) == 2


def test_each_page_is_a_span(
    invora_sandbox: Sandbox, tenant: Tenant, client: invora.Client, exporter: InMemorySpanExporter
) -> None:
    for _ in range(5):
        client.simple.invoices.create(changes=DRAFT)
    exporter.clear()
    assert len(list(client.simple.invoices.list(page_size=2))) == 5
    assert [s.name for s in exporter.get_finished_spans()] == [LIST] * 3
    assert all(_traceparent(invora_sandbox, tenant, LIST))


def test_uninstrument_stops_spans_and_propagation(
    invora_sandbox: Sandbox, tenant: Tenant, client: invora.Client, exporter: InMemorySpanExporter
) -> None:
    invora.otel.uninstrument(client)
    with pytest.raises(invora.NotFound):
        client.simple.invoices.get(key="missing")
    assert exporter.get_finished_spans() == ()
    assert _traceparent(invora_sandbox, tenant, GET) == [""]


def test_views_share_the_instrumentation(
    invora_sandbox: Sandbox, tenant: Tenant, client: invora.Client, exporter: InMemorySpanExporter
) -> None:
    client.with_org(tenant.org_id).simple.invoices.list(page_size=1).pages.__next__()
    assert [s.name for s in exporter.get_finished_spans()] == [LIST]


async def test_async_client_over_rest(
    invora_sandbox: Sandbox, tenant: Tenant, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    ac = _client(invora_sandbox, tenant, "rest", invora.AsyncClient)
    async with invora.otel.instrument(ac, tracer_provider=provider) as client:  # type: ignore[attr-defined]
        with provider.get_tracer("test").start_as_current_span("job"):
            await client.simple.invoices.create(changes=DRAFT)
            with pytest.raises(invora.NotFound):
                await client.simple.invoices.get(key="missing")
    create, get = (s for s in exporter.get_finished_spans() if s.name != "job")
    assert create.attributes is not None and get.attributes is not None
    assert create.attributes["invora.transport"] == "rest" and create.attributes["rpc.grpc.status_code"] == 0
    assert get.attributes["http.response.status_code"] == 404 and get.attributes["error.type"] == "NOT_FOUND"
    trace_id, span_id = _ids(create)
    assert [_parsed(t) for t in _traceparent(invora_sandbox, tenant, CREATE)] == [(trace_id, span_id, True)]
    assert create.parent is not None and get.parent is not None and create.parent == get.parent
