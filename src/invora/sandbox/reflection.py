"""gRPC server reflection for the sandbox: grpcurl, buf curl, Postman and ``invora schema`` need no file.

grpcio-reflection implements ``grpc.reflection.v1alpha``; ``grpc.reflection.v1`` carries the same
messages under another package, so one servicer answers both paths (newer tools ask v1 first). It serves
the descriptors of the default pool, where every service the sandbox routes is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

__all__ = ["enable_reflection"]

_V1 = "grpc.reflection.v1.ServerReflection"


def enable_reflection(server: Any, services: Iterable[str]) -> None:
    """Serve reflection (v1 and v1alpha) on ``server`` (sync or asyncio) for ``services``."""
    from grpc_reflection.v1alpha import _async as _aio
    from grpc_reflection.v1alpha import reflection, reflection_pb2

    names = (*sorted(set(services)), _V1, reflection.SERVICE_NAME)
    is_aio = isinstance(server, grpc.aio.Server)
    servicer = _aio.ReflectionServicer(names) if is_aio else reflection.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in (_V1, reflection.SERVICE_NAME)
        ]
    )
