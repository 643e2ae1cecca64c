"""The transports a client can name (``transport="grpc"``), or an instance it is given.

Apart from the transport package so that the package (base classes) never imports its implementations,
which import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from invora.errors import ConfigurationError
from invora.transport import AsyncTransport, Transport, TransportConfig

__all__ = ["TRANSPORTS", "transport_classes"]

# name -> (module, sync class, async class)
TRANSPORTS: dict[str, tuple[str, str, str]] = {
    "grpc": ("invora.transport.grpc", "GrpcTransport", "AsyncGrpcTransport"),
    "rest": ("invora.transport.rest", "RestTransport", "AsyncRestTransport"),
}


TransportFactory = Callable[[TransportConfig], Transport]
AsyncTransportFactory = Callable[[TransportConfig], AsyncTransport]


def transport_classes(
    name: str | Transport | AsyncTransport,
) -> tuple[TransportFactory, AsyncTransportFactory]:
    """The (sync, async) transport factories registered under ``name``, or for a transport instance.

    An instance (a custom transport, or :class:`invora.testing.FakeTransport`) is used as it is; the
    client's target settings do not reach it.
    """
    if isinstance(name, (Transport, AsyncTransport)):
        return _instance_factories(name)
    entry = TRANSPORTS.get(name) if isinstance(name, str) else None
    if entry is None:
        known = ", ".join(repr(k) for k in TRANSPORTS)
        raise ConfigurationError(f"unknown transport {name!r}; expected one of {known}")
    module_name, sync_name, async_name = entry
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigurationError(f"transport {name!r} is not available in this build of invora") from None
    return getattr(module, sync_name), getattr(module, async_name)


def _instance_factories(
    instance: Transport | AsyncTransport,
) -> tuple[TransportFactory, AsyncTransportFactory]:
    def sync(config: TransportConfig) -> Transport:
        if not isinstance(instance, Transport):
            raise ConfigurationError(
                f"invora.Client needs a blocking Transport, got the asyncio {instance!r}"
            )
        return instance

    def asynchronous(config: TransportConfig) -> AsyncTransport:
        if not isinstance(instance, AsyncTransport):
            twin = " (for invora.testing.FakeTransport pass fake.aio)" if hasattr(instance, "aio") else ""
            raise ConfigurationError(f"invora.AsyncClient needs an AsyncTransport{twin}")
        return instance

    return sync, asynchronous
