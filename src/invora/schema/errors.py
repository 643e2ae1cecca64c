"""The two ways knowing the server's schema can fail, as typed errors."""

from __future__ import annotations

from typing import Any

import grpc

from invora.errors import InvoraError

__all__ = ["ReflectionError", "ReflectionUnavailable", "SchemaMismatch"]


class ReflectionError(InvoraError):
    """The server's reflection answered something unusable (too large, or missing its own imports)."""

    code = grpc.StatusCode.INTERNAL


class ReflectionUnavailable(ReflectionError):
    """The server does not offer gRPC server reflection (neither ``grpc.reflection.v1`` nor ``v1alpha``)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class SchemaMismatch(InvoraError):
    """The server's wire facts for a service differ from the SDK's; raised before any request is sent.

    ``differences`` lists ``where: what differs`` lines ("expected" is the SDK's, "got" the server's).
    """

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str = "", *, service: str = "", differences: tuple[str, ...] = (), **kw: Any):
        super().__init__(message, request_not_sent=True, **kw)
        self.service = service
        self.differences = differences
