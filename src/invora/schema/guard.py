"""The client's schema guard and its runtime-schema lookups (``Client(schema_check=..., schema=...)``).

**Guard.** Some wire facts are ours, not the vendor's (the Simple module, UBL aggregate components): if
the server numbers a field differently, it silently decodes a different field. With
``schema_check="warn"`` or ``"strict"``, the first gRPC call of a service that reaches reconstructed
types first pulls that service's descriptors through reflection — once per channel — and compares them
(:func:`invora.schema.compare.diff_services`). A mismatch logs one warning naming the fields (warn) or
raises :class:`~invora.schema.SchemaMismatch` before any request of that service is sent (strict). A
server without reflection is noted once at debug level. The check wraps the binding's callable and then
puts the plain one back, so later calls cost nothing.

**Runtime schema.** ``client.invoke("pkg.Service/Method")`` for an RPC missing from the compiled
catalog resolves it in ``Client(schema=...)`` or, failing that, in the service's descriptors pulled by
reflection (cached per channel).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from invora.errors import ConfigurationError

if TYPE_CHECKING:
    import pathlib

    from google.protobuf import descriptor_pb2

    from invora._catalog import MethodInfo
    from invora._client import AsyncClient, Client
    from invora._core import Binding
    from invora.schema.runtime import RuntimeSchema

__all__ = ["MODES", "SchemaGuard", "SchemaState", "install", "runtime_method"]

log = logging.getLogger("invora")

MODES = ("off", "warn", "strict")
_MAX_LISTED = 20  # differences named in one warning or error


class SchemaGuard:
    """Per-channel record of which services were checked, and what was found."""

    def __init__(self, client: Client | AsyncClient, mode: str) -> None:
        self._client = client
        self.mode = mode
        self._results: dict[str, Exception | None] = {}
        self._lock = threading.Lock()
        self._no_reflection = False

    @staticmethod
    def needs(info: MethodInfo) -> bool:
        return bool(info.service.reconstructed)

    def attach(self, b: Binding) -> None:
        """Wrap ``b``'s callables so the first call checks its service, then unwrap them."""
        if not self.needs(b.info) or self._client._settings.transport_name != "grpc":
            return
        service = b.info.service.full_name
        from invora._core import AsyncCore

        is_async = isinstance(self._client._scope.core, AsyncCore)
        real_call, real_raw = b.call, b.raw
        if is_async and not b.info.is_streaming:

            async def first_async(*args: Any) -> Any:
                await asyncio.to_thread(self.verify, service)
                b.call = real_call
                return await real_call(*args)

            async def first_raw_async(*args: Any) -> Any:
                await asyncio.to_thread(self.verify, service)
                b._raw = real_raw
                return await real_raw(*args)

            b.call, b._raw = first_async, first_raw_async
            return

        def first(*args: Any) -> Any:
            self.verify(service)  # async streams start synchronously: their one check blocks briefly
            b.call = real_call
            return real_call(*args)

        def first_raw(*args: Any) -> Any:
            self.verify(service)
            b._raw = real_raw
            return real_raw(*args)

        b.call, b._raw = first, first_raw

    def verify(self, service: str) -> None:
        """Check ``service`` once; raise its :class:`SchemaMismatch` (strict) on this and every later call."""
        with self._lock:
            if service not in self._results:
                self._results[service] = self._check(service)
            found = self._results[service]
        if found is not None and self.mode == "strict":
            raise found

    def _check(self, service: str) -> Exception | None:
        from invora.errors import InvoraError
        from invora.schema.compare import diff_services
        from invora.schema.errors import ReflectionUnavailable, SchemaMismatch
        from invora.schema.reflection import compiled_set, pull

        if self._no_reflection:
            return None
        try:
            theirs = pull(self._client, services=[service])
        except ReflectionUnavailable:
            self._no_reflection = True
            log.debug("invora: %s offers no server reflection; schema_check skipped", self._client.target)
            return None
        except InvoraError as exc:  # the call itself will meet the same problem and report it
            log.debug("invora: schema check of %s failed (%s); not checked", service, exc.code.name)
            return None
        diff = diff_services(compiled_set([service]), theirs, [service]).differences.get(service)
        if not diff:
            return None
        shown = "; ".join(diff[:_MAX_LISTED]) + (
            f"; … {len(diff) - _MAX_LISTED} more" if len(diff) > _MAX_LISTED else ""
        )
        text = (
            f"the server's schema for {service} differs from the SDK's on wire facts (expected = SDK, got = "
            f"server): {shown}"
        )
        if self.mode == "warn":
            log.warning("invora: %s", text)
            return None
        return SchemaMismatch(text, service=service, differences=tuple(diff), method=service)


class SchemaState:
    """What a client knows about the server's schema: ``Client(schema=...)``, pulled services, the guard."""

    def __init__(self, given: RuntimeSchema | None, guard: SchemaGuard | None) -> None:
        self.given = given
        self.guard = guard
        self.pulled: dict[str, RuntimeSchema] = {}

    def attach(self, b: Binding) -> None:
        if self.guard is not None:
            self.guard.attach(b)


def install(
    client: Client | AsyncClient,
    schema_check: str,
    schema: str | pathlib.Path | bytes | descriptor_pb2.FileDescriptorSet | None,
) -> None:
    """Validate ``schema_check``/``schema`` and attach them to the client's core (shared by views)."""
    if schema_check not in MODES:
        raise ConfigurationError(f"schema_check must be one of {', '.join(MODES)}, got {schema_check!r}")
    if schema is None and schema_check == "off":
        return  # the core keeps schema=None: bindings are created exactly as without this feature
    given = None
    if schema is not None:
        from invora.schema.runtime import RuntimeSchema

        given = RuntimeSchema(schema)
    guard = SchemaGuard(client, schema_check) if schema_check != "off" else None
    client._scope.core.schema = SchemaState(given, guard)


def runtime_method(client: Client | AsyncClient, spec: str) -> MethodInfo:
    """``pkg.Service/Method`` from ``Client(schema=...)``, else from the service pulled by reflection."""
    from invora.schema.errors import ReflectionUnavailable
    from invora.schema.reflection import pull
    from invora.schema.runtime import RuntimeSchema

    core = client._scope.core
    state: SchemaState | None = core.schema
    if state is None:
        state = core.schema = SchemaState(None, None)
    if state.given is not None:
        try:
            return state.given.method(spec)
        except LookupError:
            pass
    service = spec.strip().lstrip("/").partition("/")[0]
    if client._settings.transport_name != "grpc":
        raise LookupError(
            f"{spec!r} is not in the SDK's schema: over REST, pass Client(schema=FILE) that has it"
        )
    found = state.pulled.get(service)
    if found is None:
        try:
            fds = pull(client, services=[service])
        except ReflectionUnavailable:
            raise LookupError(
                f"{spec!r} is not in the SDK's schema and the server offers no reflection: pass "
                "Client(schema=FILE) with a descriptor set that has it"
            ) from None
        found = state.pulled[service] = RuntimeSchema(fds)
    if service not in found.services:
        raise LookupError(f"{client.target} does not serve {service} either (reflection)")
    return found.method(spec)
