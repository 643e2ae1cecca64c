"""Error mapping: every status to its class, details unpacked from real gRPC trailers and REST bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import invora
from invora import errors

SERVICE = "invora.simple.invoices.v1.SimpleInvoiceService"

EXPECTED_HTTP = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
}


def _validation_error_any() -> any_pb2.Any:
    from invora._proto.invora.documents.v2 import models_pb2

    packed = any_pb2.Any()
    packed.Pack(models_pb2.ValidationError(field="lines[0].tax", code="TAX_MISSING", message="tax required"))
    return packed


def _rich_status(code: int, message: str) -> status_pb2.Status:
    st = status_pb2.Status(code=code, message=message)
    info = error_details_pb2.ErrorInfo(
        reason="INVOICE_FROZEN", domain="invora.app", metadata={"key": "INV-1"}
    )
    bad = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field="key", description="must be set")]
    )
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000))
    for d in (info, bad, retry):
        a = st.details.add()
        a.Pack(d)
    st.details.append(_validation_error_any())
    unknown = st.details.add()
    unknown.type_url = "type.googleapis.com/acme.Unknown"
    unknown.value = b"\x08\x01"
    return st


class _Behaviour:
    """What the tiny server does for each RPC name (set per test)."""

    def __init__(self) -> None:
        self.plan: dict[str, Any] = {}


def _handler(behaviour: _Behaviour, rpc: str) -> grpc.RpcMethodHandler:
    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        action = behaviour.plan.get(rpc)
        if action is None:
            return b""
        kind, arg = action
        if kind == "status":
            context.abort_with_status(rpc_status.to_status(arg))
        if kind == "garbage":
            code, message = arg
            context.set_trailing_metadata((("grpc-status-details-bin", b"\xff\x00not-a-status"),))
            context.abort(code, message)
        if kind == "code":
            context.abort(arg, f"plain {arg.name.lower()}")
        return b""

    return grpc.unary_unary_rpc_method_handler(handle)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Behaviour]]:
    behaviour = _Behaviour()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {n: _handler(behaviour, n) for n in ("Get", "Update")}
            ),
        )
    )
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", behaviour
    srv.stop(None)


@pytest.fixture()
def client(server: tuple[str, _Behaviour]) -> Iterator[invora.Client]:
    with invora.Client(server[0], retry=None, timeout=5) as c:
        yield c


def test_one_registry_covers_every_status() -> None:
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        cls = errors.error_class(code)
        assert cls.code is code
        assert issubclass(cls, invora.RpcError) and issubclass(cls, invora.InvoraError)
        assert cls.__name__ in invora.__all__, cls.__name__
        assert cls("x").http_status == EXPECTED_HTTP[code.name], code
    assert errors.error_class(grpc.StatusCode.OK) is invora.Unknown
    assert len({errors.error_class(c) for c in grpc.StatusCode if c is not grpc.StatusCode.OK}) == 16


@pytest.mark.parametrize(
    "code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name
)
def test_every_code_from_a_real_server(
    client: invora.Client, server: tuple[str, _Behaviour], code: grpc.StatusCode
) -> None:
    server[1].plan["Get"] = ("code", code)
    with pytest.raises(invora.InvoraError) as info:
        client.simple.invoices.get(key="INV-1")
    err = info.value
    assert type(err) is errors.error_class(code)
    assert err.code is code and err.message == f"plain {code.name.lower()}"
    assert err.__cause__ is None and err.__suppress_context__  # grpc's exception would print unscrubbed
    assert err.method == f"{SERVICE}/Get"
    assert err.details == [] and err.retry_delay is None


def test_rich_details_are_unpacked(client: invora.Client, server: tuple[str, _Behaviour]) -> None:
    server[1].plan["Get"] = ("status", _rich_status(code_pb2.FAILED_PRECONDITION, "invoice is frozen"))
    with pytest.raises(invora.FailedPrecondition) as info:
        client.simple.invoices.get(key="INV-1")
    err = info.value
    assert err.http_status == 400
    assert err.error_info is not None and err.error_info.reason == "INVOICE_FROZEN"
    assert err.reason == "INVOICE_FROZEN" and err.error_info.metadata["key"] == "INV-1"
    assert [(v.field, v.description) for v in err.field_violations] == [("key", "must be set")]
    assert [(v.field, v.code) for v in err.validation_errors] == [("lines[0].tax", "TAX_MISSING")]
    assert type(err.validation_errors[0]).DESCRIPTOR.full_name == "invora.documents.v2.ValidationError"
    assert err.retry_delay == pytest.approx(1.5)
    assert isinstance(err.details[-1], any_pb2.Any)  # unknown type kept as Any
    assert any(k == "grpc-status-details-bin" for k, _ in err.trailing_metadata)
    text = str(err)
    assert "FAILED_PRECONDITION: invoice is frozen" in text and "key: must be set" in text


def test_malformed_details_never_mask_the_error(
    client: invora.Client, server: tuple[str, _Behaviour]
) -> None:
    server[1].plan["Get"] = ("garbage", (grpc.StatusCode.NOT_FOUND, "no such invoice"))
    with pytest.raises(invora.NotFound) as info:
        client.simple.invoices.get(key="INV-404")
    err = info.value
    assert err.message == "no such invoice"
    assert err.details == [] and err.details_error
    assert err.error_info is None and err.field_violations == [] and err.retry_delay is None


def test_raw_gives_metadata_and_code_and_errors_carry_trailers(
    client: invora.Client, server: tuple[str, _Behaviour]
) -> None:
    server[1].plan.pop("Get", None)
    raw = client.raw("simple.invoices.get", {"key": "INV-1"})
    assert raw.code is grpc.StatusCode.OK
    assert isinstance(raw.initial_metadata, tuple) and isinstance(raw.trailing_metadata, tuple)
    server[1].plan["Get"] = ("status", _rich_status(code_pb2.NOT_FOUND, "gone"))
    with pytest.raises(invora.NotFound) as info:
        client.raw(f"{SERVICE}/Get", {"key": "INV-1"})
    assert info.value.error_info is not None


async def test_async_client_maps_errors_the_same(server: tuple[str, _Behaviour]) -> None:
    server[1].plan["Get"] = ("status", _rich_status(code_pb2.ALREADY_EXISTS, "dup"))
    async with invora.AsyncClient(server[0], retry=None, timeout=5) as ac:
        with pytest.raises(invora.AlreadyExists) as info:
            await ac.simple.invoices.get(key="INV-1")
    assert info.value.error_info is not None and info.value.http_status == 409
    assert info.value.__cause__ is None and info.value.__suppress_context__


# -- REST bodies ------------------------------------------------------------------------------------------
def test_from_http_json_status_with_typed_details() -> None:
    body = {
        "code": 3,
        "message": "document validation failed",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "buyer.name", "description": "required"}]},
            {"@type": "type.googleapis.com/invora.documents.v2.ValidationError",
             "field": "lines", "code": "EMPTY", "message": "at least one line"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"},
        ],
    }  # fmt: skip
    err = errors.from_http(400, json.dumps(body).encode())
    assert isinstance(err, invora.InvalidArgument) and err.http_status == 400
    assert err.message == "document validation failed"
    assert [v.field for v in err.field_violations] == ["buyer.name"]
    assert [v.code for v in err.validation_errors] == ["EMPTY"]
    assert err.retry_delay == 2.0 and err.details_error is None


def test_from_http_envelope_status_names_and_bad_details() -> None:
    body = {"error": {"code": 409, "status": "ABORTED", "message": "stale stamp",
                      "details": [{"@type": "type.googleapis.com/nope.Missing", "x": 1}, "junk"]}}  # fmt: skip
    err = errors.from_http(409, json.dumps(body))
    assert isinstance(err, invora.Aborted) and err.message == "stale stamp"
    assert err.details_error  # both bad details reported, error intact


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, invora.NotFound), (429, invora.ResourceExhausted), (503, invora.Unavailable), (502, invora.Unavailable),
     (500, invora.Internal), (418, invora.Unknown), (401, invora.Unauthenticated), (504, invora.DeadlineExceeded)],
)  # fmt: skip
def test_from_http_non_json_bodies_map_by_status(status: int, cls: type[invora.InvoraError]) -> None:
    html = b"<html><body><h1>Bad Gateway</h1> upstream said no</body></html>" + b"x" * 500
    err = errors.from_http(status, html, {"Retry-After": "3"})
    assert type(err) is cls and err.http_status == status
    assert err.message.startswith(f"HTTP {status}: <html><body><h1>Bad Gateway")
    assert len(err.message) < 240
    assert err.retry_delay == 3.0
    assert errors.from_http(status, b"").message == f"HTTP {status}: (empty body)"


def test_messages_never_carry_tokens_or_secrets() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2lnbmF0dXJl"
    err = invora.Unauthenticated(f"bad token Bearer {jwt} / raw {jwt} client_secret=s3cr3t&x=1")
    text = f"{err} {err!r} {err.message}"
    assert "eyJ" not in text and "s3cr3t" not in text
    assert "Bearer ***" in text and "client_secret=***" in text
    rest = errors.from_http(401, json.dumps({"code": 16, "message": f"Bearer {jwt} expired"}))
    assert jwt not in str(rest) and isinstance(rest, invora.Unauthenticated)


def test_local_errors_are_invora_errors() -> None:
    assert issubclass(invora.ConfigurationError, ValueError)
    assert issubclass(invora.AuthenticationError, invora.InvoraError)
    assert not issubclass(invora.AuthenticationError, invora.Unauthenticated)
    assert issubclass(invora.ClientForkedError, RuntimeError)
    err = invora.AuthenticationError("boom", http_status=502)
    assert err.http_status == 502 == err.status and err.details == []
