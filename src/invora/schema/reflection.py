"""gRPC server reflection, client side: pull a server's descriptors, and compare them with ours.

The protocol is the one grpcurl and buf curl speak: one bidirectional stream on
``grpc.reflection.v1.ServerReflection/ServerReflectionInfo`` (``v1alpha`` when a server lacks v1; the
two carry the same messages, so grpcio-reflection's ``v1alpha`` classes encode both). We ask which
services exist, then for the file defining each service, then for any import not yet sent.

Calls carry the client's credentials and tenancy metadata and end by their deadline; what the server
sends is bounded (:data:`MAX_FILES`, :data:`MAX_BYTES`).
"""

from __future__ import annotations

import os
import pathlib
import queue
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2

from invora.schema.errors import ReflectionError, ReflectionUnavailable

if TYPE_CHECKING:
    from invora._client import AsyncClient, Client
    from invora.schema.compare import SchemaDiff

__all__ = ["MAX_BYTES", "MAX_FILES", "check", "compiled_set", "fetch", "load_set", "pull"]

PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
MAX_FILES = 20_000
MAX_BYTES = 64 * 1024 * 1024
_SKIP_SERVICES = ("grpc.reflection.", "grpc.health.")
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


def _pb() -> Any:
    from grpc_reflection.v1alpha import reflection_pb2

    return reflection_pb2


class _Session:
    """One reflection stream: each request is answered by one response, in order."""

    def __init__(self, channel: grpc.Channel, path: str, metadata: Sequence[tuple[str, str]], timeout: float):
        pb = _pb()
        self._pb = pb
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        method = channel.stream_stream(
            path,
            request_serializer=pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb.ServerReflectionResponse.FromString,
        )
        self._call: Any = method(self._requests(), timeout=timeout, metadata=tuple(metadata))
        self.files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._bytes = 0

    def _requests(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def ask(self, **kind: Any) -> Any:
        self._queue.put(self._pb.ServerReflectionRequest(**kind))
        return next(self._call)

    def take_files(self, response: Any) -> None:
        for raw in response.file_descriptor_response.file_descriptor_proto:
            self._bytes += len(raw)
            if self._bytes > MAX_BYTES or len(self.files) >= MAX_FILES:
                raise ReflectionError(f"the server's schema exceeds {MAX_FILES} files or {MAX_BYTES} bytes")
            f = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.files.setdefault(f.name, f)

    def close(self) -> None:
        self._queue.put(None)
        self._call.cancel()


def fetch(
    channel: grpc.Channel,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float = 30.0,
    services: Iterable[str] | None = None,
) -> descriptor_pb2.FileDescriptorSet:
    """Every file the server's services (or just ``services``) need, imports first.

    Raises :class:`ReflectionUnavailable` when the server offers no reflection, or the mapped
    :class:`invora.InvoraError` of the status the server ended the stream with.
    """
    from invora.errors import from_grpc_error

    wanted = list(services) if services is not None else None
    for path in PATHS:
        try:
            return _fetch(channel, path, metadata, timeout, wanted)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                continue
            raise from_grpc_error(exc, method=path[1:]) from None
    raise ReflectionUnavailable(
        "the server does not offer gRPC server reflection (grpc.reflection.v1 or v1alpha); "
        "compare with a descriptor set instead (invora schema check --image FILE)"
    )


def _fetch(
    channel: grpc.Channel,
    path: str,
    metadata: Sequence[tuple[str, str]],
    timeout: float,
    services: list[str] | None,
) -> descriptor_pb2.FileDescriptorSet:
    session = _Session(channel, path, metadata, timeout)
    try:
        if services is None:
            listed = session.ask(list_services="")
            services = [
                s.name for s in listed.list_services_response.service if not s.name.startswith(_SKIP_SERVICES)
            ]
        for name in services:
            response = session.ask(file_containing_symbol=name)
            if response.HasField("error_response"):
                if response.error_response.error_code == _NOT_FOUND:
                    continue  # the server does not serve it: it is "only in the SDK"
                raise ReflectionError(f"reflection refused {name}: code {response.error_response.error_code}")
            session.take_files(response)
        while True:
            missing = sorted({d for f in session.files.values() for d in f.dependency} - set(session.files))
            if not missing:
                break
            for name in missing:
                response = session.ask(file_by_filename=name)
                if response.HasField("error_response"):
                    raise ReflectionError(f"the server's reflection lacks {name}, an import of its own files")
                session.take_files(response)
        return _ordered(session.files)
    finally:
        session.close()


def _ordered(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> descriptor_pb2.FileDescriptorSet:
    """Imports before importers, as ``protoc --include_imports`` writes a set."""
    out = descriptor_pb2.FileDescriptorSet()
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name not in files:
            return
        done.add(name)
        for dep in files[name].dependency:
            visit(dep)
        out.file.append(files[name])

    for name in sorted(files):
        visit(name)
    return out


# -- with a client's settings ---------------------------------------------------------------------------
def _client_channel(client: Client | AsyncClient) -> tuple[grpc.Channel, bool]:
    """The client's own sync gRPC channel, or a new one with its settings (True: close it after)."""
    from invora.errors import ConfigurationError
    from invora.transport.grpc import GrpcTransport, _channel_credentials, channel_options

    if client._settings.transport_name != "grpc":
        raise ConfigurationError("server reflection is a gRPC service: use a client with transport='grpc'")
    transport = client._scope.core.transport
    if isinstance(transport, GrpcTransport):
        return transport.channel, False
    cfg = client._settings.config
    opts = channel_options(cfg)
    if cfg.secure:
        return grpc.secure_channel(cfg.address, _channel_credentials(cfg), opts), True
    return grpc.insecure_channel(cfg.address, opts), True


def client_metadata(client: Client | AsyncClient) -> tuple[tuple[str, str], ...]:
    """Credentials (fetched synchronously) then the client's tenancy and default metadata."""
    scope = client._scope
    creds = scope.core.credentials
    auth = tuple(creds.metadata()) if creds is not None else ()
    return auth + tuple(scope.org_md)


def pull(
    client: Client | AsyncClient, *, services: Iterable[str] | None = None, timeout: float | None = None
) -> descriptor_pb2.FileDescriptorSet:
    """The server's schema through reflection, over ``client``'s target, TLS, credentials and tenancy.

    Blocking, also for an :class:`~invora.AsyncClient` (run it in a thread from a coroutine).
    """
    channel, owned = _client_channel(client)
    try:
        return fetch(
            channel,
            metadata=client_metadata(client),
            timeout=client._settings.timeout if timeout is None else timeout,
            services=services,
        )
    finally:
        if owned:
            channel.close()


def load_set(
    source: str | pathlib.Path | bytes | descriptor_pb2.FileDescriptorSet,
) -> descriptor_pb2.FileDescriptorSet:
    """A ``FileDescriptorSet`` from a message, its bytes, or a file (``buf build -o``, ``schema pull``)."""
    from invora.errors import ConfigurationError

    if isinstance(source, descriptor_pb2.FileDescriptorSet):
        return source
    if isinstance(source, bytes):
        raw, where = source, "the given bytes"
    else:
        try:
            raw = pathlib.Path(source).read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the descriptor set {str(source)!r}: {exc.strerror}"
            ) from None
        where = str(source)
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except Exception:  # DecodeError: say what the file should be, not where protobuf's parser stopped
        fds = None
    if fds is None or (raw and not fds.file):
        raise ConfigurationError(
            f"{where} is not a FileDescriptorSet (make one with `invora schema pull -o FILE` or "
            "`buf build -o FILE.binpb`)"
        )
    return fds


def compiled_set(services: Iterable[str] | None = None) -> descriptor_pb2.FileDescriptorSet:
    """The schema compiled into this package (all services, or ``services``), imports first."""
    from google.protobuf import descriptor_pool

    from invora import _catalog

    pool = descriptor_pool.Default()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    wanted = set(services) if services is not None else None

    def add(fd: Any) -> None:
        if fd.name in files:
            return
        files[fd.name] = descriptor_pb2.FileDescriptorProto.FromString(fd.serialized_pb)
        for dep in fd.dependencies:
            add(dep)

    for svc in _catalog.services():
        if wanted is None or svc.full_name in wanted:
            svc.load()
            add(pool.FindFileByName(svc.file))
    return _ordered(files)


def check(
    source: Client | AsyncClient | str | pathlib.Path | bytes | descriptor_pb2.FileDescriptorSet,
    *,
    services: Iterable[str] | None = None,
    timeout: float | None = None,
) -> SchemaDiff:
    """Compare the compiled-in schema with a server's (a client: reflection) or a descriptor set's.

    Anything but a descriptor set (message, bytes or file) is taken for a client: the client imports this
    package (``schema_check``), so naming its classes here would tie the two in a loop."""
    from invora.schema.compare import diff_services

    names = list(services) if services is not None else None
    if isinstance(source, (descriptor_pb2.FileDescriptorSet, bytes, str, os.PathLike)):
        theirs = load_set(source)
    else:
        theirs = pull(source, services=names, timeout=timeout)
    return diff_services(compiled_set(names), theirs, names)
