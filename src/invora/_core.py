"""The per-call pipeline shared by every service: bindings, the blocking and asyncio call loops, and the
per-view dispatch (tenancy, pagination) — transport-agnostic (see :mod:`invora.transport`).

Concerns live apart: building requests in :mod:`invora._request`, the per-attempt decisions (hooks, logging,
token refresh, retries) in :mod:`invora._attempts`, streams in :mod:`invora._streams`.

Hot-path notes: a :class:`Binding` per method (request class, flags and the transport callable) is built
once per client; a call then builds or checks the request, concatenates the metadata tuples (credentials,
tenancy, user, request id) and calls the transport. With no hook and no DEBUG logging the first attempt
runs inline; the per-attempt bookkeeping (:class:`~invora._attempts.Attempts`) is built only if it fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from invora._attempts import REQUEST_ID_KEY, Attempts, new_request_id
from invora._request import build_request, coerce_item
from invora._streams import AsyncStream, Stream
from invora._target import check_metadata, check_org_id
from invora.errors import ClientClosedError, ClientForkedError, ConfigurationError, InvoraError
from invora.pagination import AsyncPager, Pager
from invora.retry import RetryArg
from invora.transport import AsyncRequestFeed, RequestFeed

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.auth import Credentials
    from invora.hooks import Hook
    from invora.retry import Retry
    from invora.transport import AsyncTransport, Metadata, Transport

__all__ = ["AsyncCore", "Binding", "Core", "Scope"]

log = logging.getLogger("invora")

_monotonic = time.monotonic
_debug = partial(logging.getLogger("invora.calls").isEnabledFor, logging.DEBUG)
_getpid = os.getpid
_pid = _getpid()  # this process's id, kept current by a fork hook: a per-call getpid() is a system call


def _forked() -> None:
    global _pid
    _pid = _getpid()


os.register_at_fork(after_in_child=_forked)
_FOREVER = 10 * 365 * 86400.0  # a timeout longer than this (or NaN/inf) is a mistake, not a deadline


class Binding:
    """Everything needed to call one method, prepared once per client."""

    __slots__ = (
        "_raw",
        "build",
        "call",
        "coerce",
        "fill_request_id",
        "full_name",
        "idempotent",
        "info",
        "items_field",
        "kind",
        "page",
        "request_class",
        "transport",
    )

    def __init__(self, info: MethodInfo, transport: Transport | AsyncTransport) -> None:
        self.info = info
        self.full_name = info.full_name
        self.request_class: Any = info.request_class
        self.idempotent = info.read or info.idempotency_key is not None
        self.fill_request_id = info.has_request_id
        self.page = info.page
        self.items_field = info.page.items if info.page else ""
        self.kind = info.kind
        self.transport = transport
        #: ``build(request, fields)``: the request message (see :func:`invora._request.build_request`).
        self.build = partial(build_request, self.request_class, self.full_name, self.fill_request_id)
        #: ``coerce(item)``: one item of a client stream as a message.
        self.coerce = partial(coerce_item, self.request_class, self.full_name)
        if info.client_streaming:
            self.call: Any = transport.stream_stream(info)
        elif info.server_streaming:
            self.call = transport.server_stream(info)
        else:
            self.call = transport.unary(info)
        self._raw: Any = None

    @property
    def raw(self) -> Any:
        if self._raw is None:
            self._raw = self.transport.unary_raw(self.info)
        return self._raw

    def with_call(self, call: Any) -> Binding:
        """A copy calling ``call`` instead (``Client.raw``: the transport's raw callable)."""
        copy: Binding = object.__new__(Binding)
        for name in Binding.__slots__:
            setattr(copy, name, getattr(self, name))
        copy.call = call
        return copy


# -- shared state -------------------------------------------------------------------------------------------
class _CoreBase:
    def __init__(
        self,
        transport: Any,
        credentials: Credentials | None,
        *,
        timeout: float,
        stream_timeout: float,
        retry: Retry | None,
        hooks: tuple[Hook, ...],
        org_header: str,
        prefetch: bool,
        target: str,
        transport_name: str,
    ) -> None:
        self.transport = transport
        self.credentials = credentials
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry
        #: Observers of each attempt (:mod:`invora.hooks`); ``invora.otel.instrument`` adds one.
        self.hooks = hooks
        self.org_header = org_header
        self.prefetch = prefetch
        self.target = target
        self.transport_name = transport_name
        self.pid = _getpid()
        self.closed = False
        self._bindings: dict[MethodInfo, Binding] = {}  # by identity: a runtime RPC may share a path
        self._lock = threading.Lock()
        #: ``invora.schema.guard.SchemaState`` when the client has a runtime schema or a schema check.
        self.schema: Any = None
        self._copies: weakref.WeakSet[_CoreBase] = weakref.WeakSet()

    def adopt(self, copy: _CoreBase) -> None:
        """``copy`` (a ``with_options`` client's core) runs over this core's transport and is closed with it."""
        copy.closed = self.closed
        self._copies.add(copy)

    def mark_closed(self) -> None:
        self.closed = True
        for copy in list(self._copies):
            copy.mark_closed()

    def binding(self, info: MethodInfo) -> Binding:
        binding = self._bindings.get(info)
        if binding is None:
            self.check_usable()
            with self._lock:
                binding = self._bindings.get(info)
                if binding is None:
                    binding = Binding(info, self.transport)
                    if self.schema is not None:
                        self.schema.attach(binding)  # schema_check: the first call checks the service
                    self._bindings[info] = binding
        return binding

    def check_process(self) -> None:
        if self.pid == _getpid():
            return
        if not self.transport.has_connections:
            self.pid = _getpid()  # nothing was opened before fork: adopt the client in this process
            return
        raise ClientForkedError(
            f"this invora client was created in process {self.pid} and used after fork() in process "
            f"{_getpid()}; gRPC channels cannot cross fork(): create clients after forking "
            "(e.g. in the worker initializer)"
        )

    def watch(
        self, b: Binding, req: Any, timeout: float | None, retry: RetryArg, md: Metadata, rid: str
    ) -> tuple[Attempts | None, str]:
        """The call's id, and its :class:`Attempts` from the start when hooks or the DEBUG log watch it."""
        if not rid:
            rid = req.request_id if b.fill_request_id else new_request_id()
        if self.hooks or _debug():
            return Attempts(self, b, req, timeout, retry, md, rid), rid
        return None, rid

    def check_usable(self) -> None:
        """Slow path of the per-call check: closed client or another process."""
        if self.closed:
            raise ClientClosedError("this invora client is closed; create a new one")
        self.check_process()


class Core(_CoreBase):
    """Blocking pipeline: the decisions are :class:`~invora._attempts.Attempts`'; this loop calls and sleeps."""

    transport: Transport

    def unary(
        self, b: Binding, req: Any, timeout: float | None, retry: RetryArg, md: Metadata, rid: str = ""
    ) -> Any:
        creds = self.credentials
        a, rid = self.watch(b, req, timeout, retry, md, rid)
        if a is None:  # nobody watching: the first attempt inline, the bookkeeping only if it fails
            started = _monotonic()
            amd = creds.metadata() if creds is not None else ()
            try:
                return b.call(req, timeout or self.timeout, (*amd, *md, (REQUEST_ID_KEY, rid)))
            except InvoraError as exc:
                a = Attempts.after(exc, amd, started, self, b, req, timeout, retry, md, rid)
        while True:
            if a.delay:
                time.sleep(a.delay)
            full = a.begin(creds.metadata() if creds is not None else ())
            try:
                return a.succeeded(b.call(req, a.timeout, full))
            except BaseException as exc:
                if not a.failed(exc):
                    raise

    def server_stream(
        self, b: Binding, req: Any, timeout: float | None, md: Metadata, rid: str = ""
    ) -> Stream:
        return Stream(self, b, req, self.stream_timeout if timeout is None else timeout, md, False, rid)

    def stream_stream(
        self, b: Binding, requests: Iterable[Any], timeout: float | None, md: Metadata, rid: str = ""
    ) -> Stream:
        if isinstance(requests, (Message, Mapping)) or not isinstance(requests, Iterable):
            raise TypeError(f"{b.full_name} is client-streaming: pass an iterable of requests")
        items = RequestFeed(requests, b.coerce)
        return Stream(self, b, items, self.stream_timeout if timeout is None else timeout, md, True, rid)

    def close(self) -> None:
        self.mark_closed()
        self.transport.close()


class AsyncCore(_CoreBase):
    """asyncio pipeline (same decisions as :class:`Core`; only waiting differs)."""

    transport: AsyncTransport

    async def unary(
        self, b: Binding, req: Any, timeout: float | None, retry: RetryArg, md: Metadata, rid: str = ""
    ) -> Any:
        a, rid = self.watch(b, req, timeout, retry, md, rid)
        creds = self.credentials
        if a is None:
            started = _monotonic()
            amd = (creds.cached_metadata() or await creds.ametadata()) if creds is not None else ()
            try:
                return await b.call(req, timeout or self.timeout, (*amd, *md, (REQUEST_ID_KEY, rid)))
            except InvoraError as exc:
                a = Attempts.after(exc, amd, started, self, b, req, timeout, retry, md, rid)
        while True:
            if a.delay:
                await asyncio.sleep(a.delay)
            full = a.begin((creds.cached_metadata() or await creds.ametadata()) if creds is not None else ())
            try:
                return a.succeeded(await b.call(req, a.timeout, full))
            except BaseException as exc:
                if not a.failed(exc):
                    raise

    def server_stream(
        self, b: Binding, req: Any, timeout: float | None, md: Metadata, rid: str = ""
    ) -> AsyncStream:
        return AsyncStream(self, b, req, self.stream_timeout if timeout is None else timeout, md, False, rid)

    def stream_stream(
        self, b: Binding, requests: Any, timeout: float | None, md: Metadata, rid: str = ""
    ) -> AsyncStream:
        if isinstance(requests, (Message, Mapping)) or not isinstance(requests, (Iterable, AsyncIterable)):
            raise TypeError(
                f"{b.full_name} is client-streaming: pass an iterable or async iterable of requests"
            )
        items = AsyncRequestFeed(requests, b.coerce)
        return AsyncStream(self, b, items, self.stream_timeout if timeout is None else timeout, md, True, rid)

    async def close(self) -> None:
        self.mark_closed()
        await self.transport.close()


# -- scopes: one per client view (tenancy) ------------------------------------------------------------------
class Scope:
    """Per-view settings (tenancy, default metadata) over a shared core."""

    __slots__ = ("core", "extra_md", "org_id", "org_md")

    def __init__(self, core: Core | AsyncCore, org_id: str | None, extra_md: Metadata = ()) -> None:
        self.core = core
        self.org_id = check_org_id(org_id) if org_id is not None else None
        self.extra_md = extra_md
        self.org_md: Metadata = (((core.org_header, self.org_id),) if self.org_id else ()) + extra_md

    def __repr__(self) -> str:
        return f"org_id={self.org_id!r}" if self.org_id else "home org"

    def call_metadata(
        self, org_id: str | None, metadata: Sequence[tuple[str, str]] | Mapping[str, str] | None
    ) -> tuple[Metadata, str]:
        """The call's metadata, and the caller's own ``x-request-id`` if the caller gave one (it then
        names the call instead of a generated id)."""
        md = self.org_md if org_id is None else ((self.core.org_header, check_org_id(org_id)), *self.extra_md)
        rid = ""
        if metadata:
            given = check_metadata(metadata)
            for key, value in given:
                if key == REQUEST_ID_KEY:
                    rid = str(value)
            if rid:
                given = tuple(p for p in given if p[0] != REQUEST_ID_KEY)
            md = md + given  # type: ignore[operator]
        return md, rid

    def dispatch(
        self,
        b: Binding,
        request: Any,
        fields: Mapping[str, Any] | None,
        timeout: float | None,
        retry: RetryArg,
        metadata: Sequence[tuple[str, str]] | None,
        org_id: str | None,
        page_size: int | None,
        max_items: int | None,
    ) -> Any:
        core = self.core
        if core.pid != _pid or core.closed:
            core.check_usable()
        if org_id is None and not metadata:
            md, rid = self.org_md, ""
        else:
            md, rid = self.call_metadata(org_id, metadata)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < _FOREVER
        ):
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        kind = b.kind
        if kind == "unary_unary":
            req = b.build(request, fields)
            if b.page is not None:
                return self._pager(b, req, timeout, retry, md, rid, page_size, max_items)
            if page_size is not None or max_items is not None:
                raise TypeError(f"{b.full_name} is not paginated: page_size/max_items do not apply")
            return core.unary(b, req, timeout, retry, md, rid)
        if kind == "unary_stream":
            return core.server_stream(b, b.build(request, fields), timeout, md, rid)
        if request is None:
            raise TypeError(f"{b.full_name} is client-streaming: pass an iterable of requests")
        return core.stream_stream(b, request, timeout, md, rid)

    def _pager(
        self,
        b: Binding,
        req: Any,
        timeout: float | None,
        retry: RetryArg,
        md: Metadata,
        rid: str,
        page_size: int | None,
        max_items: int | None,
    ) -> Any:
        core = self.core
        owned = b.request_class()
        owned.CopyFrom(req)
        if page_size is not None:
            if page_size <= 0:
                raise ValueError("page_size must be positive")
            owned.pagination.limit.value = page_size
        cursor = owned.pagination.cursor
        if cursor and (not cursor.isprintable() or len(cursor) > 8192):
            raise ValueError("pagination.cursor must be the printable string a previous page returned")
        unary = core.unary

        def fetch(r: Any) -> Any:
            return unary(b, r, timeout, retry, md, rid)

        cls = AsyncPager if isinstance(core, AsyncCore) else Pager
        return cls(
            fetch,
            owned,
            items_field=b.items_field,
            max_items=max_items,
            prefetch=core.prefetch,
            method=b.full_name,
        )
