"""The one exception sandbox handlers raise, carrying a ``google.rpc.Status`` with typed details.

Both transports render it: gRPC as the status code, message and ``grpc-status-details-bin`` trailer,
REST as the JSON form of ``google.rpc.Status`` with the HTTP status of the API's error table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "invora.app"


class Fault(Exception):
    """A call failed with ``code``; ``details`` are ``google.rpc`` (or Invora) messages."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        details: Iterable[Message] = (),
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: list[Message] = []
        if reason:
            self.details.append(
                error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata or {}))
            )
        self.details.extend(details)
        if retry_delay is not None:
            self.details.append(retry_info(retry_delay))

    def status(self, request_id: str | None = None) -> status_pb2.Status:
        """The ``google.rpc.Status``; with ``request_id``, a ``RequestInfo`` detail naming the call (the
        sandbox names a call by the client's ``x-request-id`` when it sends one, like a gateway)."""
        st = status_pb2.Status(code=self.code.value[0], message=self.message)
        details = list(self.details)
        if request_id:
            details.append(error_details_pb2.RequestInfo(request_id=request_id))
        for d in details:
            holder = any_pb2.Any()
            holder.Pack(d)
            st.details.append(holder)
        return st


def call_id(given: str | None) -> str:
    """The id the sandbox reports for a call: the client's ``x-request-id`` if it is a short printable
    token, else a fresh one."""
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    whole = int(seconds)
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))
    )


def bad_request(violations: Iterable[tuple[str, str]]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
        ]
    )


def invalid_argument(message: str, field: str | None = None, *, reason: str = "INVALID_ARGUMENT") -> Fault:
    details: list[Message] = [bad_request([(field, message)])] if field else []
    return Fault(grpc.StatusCode.INVALID_ARGUMENT, message, reason=reason, details=details)


def not_found(what: str, key: Any) -> Fault:
    # A caller's key is echoed only in part: a 1 MB key would not fit the status trailer (the client
    # would see RESOURCE_EXHAUSTED instead of NOT_FOUND).
    text = str(key)
    shown = repr(text) if len(text) <= 128 else f"{text[:128]!r}… ({len(text)} characters)"
    return Fault(
        grpc.StatusCode.NOT_FOUND,
        f"{what} {shown} not found",
        reason="NOT_FOUND",
        metadata={"key": text[:128]},
    )


def unimplemented(full_name: str, why: str) -> Fault:
    return Fault(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{full_name} is not implemented by the sandbox: {why}",
        reason="NOT_IMPLEMENTED_IN_SANDBOX",
        metadata={"method": full_name},
    )
