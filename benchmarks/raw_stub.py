"""What a generated ``*_pb2_grpc`` stub holds, built from the catalog: one grpcio multicallable per method.

The package generates no stub modules; the raw baselines of the benchmarks use this instead, which is the
same grpcio call path a generated stub takes.
"""

from __future__ import annotations

from typing import Any

from invora._attempts import REQUEST_ID_KEY, new_request_id
from invora._catalog import ServiceInfo


def with_request_id(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus a fresh ``x-request-id``, made by the SDK's own generator, so that both sides of a
    comparison put the same headers on the wire and pay the same for the id."""
    return (*metadata, (REQUEST_ID_KEY, new_request_id()))


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
