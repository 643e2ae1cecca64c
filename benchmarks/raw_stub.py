"""What a generated ``*_pb2_grpc`` stub holds, built from the catalog: one grpcio multicallable per method.

The package generates no stub modules; the raw baselines of the benchmarks use this instead, which is the
same grpcio call path a generated stub takes.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from invora._catalog import ServiceInfo

_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def with_request_id(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus a fresh ``x-request-id``, as the SDK sends on every call, so that both sides of a
    comparison put the same headers on the wire. Made the cheapest way an application would (a random
    prefix and a counter, no system call), thread-safe under the GIL like the SDK's."""
    return (*metadata, ("x-request-id", f"{_PREFIX}{next(_COUNTER):016x}"))


def stub_class(svc: ServiceInfo) -> Any:
    class Stub:
        def __init__(self, channel: Any) -> None:
            for m in svc.methods.values():
                mc = getattr(channel, m.kind)(
                    m.path,
                    request_serializer=m.request_class.SerializeToString,
                    response_deserializer=m.response_class.FromString,
                    _registered_method=True,  # what grpcio-tools' generated stubs pass
                )
                setattr(self, m.name, mc)

    Stub.__name__ = f"{svc.name}Stub"
    return Stub
