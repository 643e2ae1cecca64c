"""The per-call pipeline shared by every service: request building, metadata, retries, pagination,
streams and the observer hook — transport-agnostic (see :mod:`invora.transport`).

Hot-path notes: a :class:`Binding` per method (request class, flags and the transport callable) is built
once per client; a call then builds or checks the request, concatenates three metadata tuples
(credentials, tenancy, user) and calls the transport. Nothing is imported, looked up by name or copied
per call, except the request copy needed to fill an empty ``request_id`` on a caller's message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf.message import Message

from invora._service import DEFAULT, RetryArg
from invora._target import check_org_id
from invora.errors import ClientClosedError, ClientForkedError, InvoraError, Unauthenticated
from invora.pagination import AsyncPager, Pager
from invora.retry import Retry

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.auth import AuthMetadata, Credentials
    from invora.transport import AsyncTransport, Metadata, Transport

__all__ = ["AsyncCore", "Binding", "Core", "Scope"]

log = logging.getLogger("invora")

_OK = grpc.StatusCode.OK
_monotonic = time.monotonic
_perf = time.perf_counter
_getpid = os.getpid

OnCall = Callable[[str, float, grpc.StatusCode, int, int], None]


class CallSpan(Protocol):
    """One traced attempt: metadata to send with it, then exactly one ``end``."""

    metadata: tuple[tuple[str, str], ...]

    def end(self, error: BaseException | None) -> None: ...


class CallTracer(Protocol):
    """Starts a :class:`CallSpan` per attempt of a unary call or page (see :mod:`invora.otel`)."""

    def start(self, method: str) -> CallSpan: ...


class Binding:
    """Everything needed to call one method, prepared once per client."""

    __slots__ = (
        "_raw",
        "call",
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

    # -- requests ---------------------------------------------------------------------------------------
    def build(self, request: Any, fields: Mapping[str, Any] | None) -> Any:
        """The request message from a message, a mapping and/or keyword fields (dicts allowed)."""
        cls = self.request_class
        if request is None:
            req = _from_fields(cls, fields) if fields else cls()
        elif type(request) is cls:
            if fields:
                given = [k for k, v in fields.items() if v is not None]
                if given:
                    raise TypeError(
                        f"{self.full_name}: pass either a request message or keyword fields, not both "
                        f"(got a {cls.__name__} and {', '.join(given)})"
                    )
            req = request
        elif isinstance(request, Mapping):
            merged = dict(request)
            if fields:
                merged.update((k, v) for k, v in fields.items() if v is not None)
            req = _from_fields(cls, merged)
        else:
            raise TypeError(
                f"{self.full_name} takes a {cls.DESCRIPTOR.full_name} (or a dict), got {type(request).__name__}"
            )
        if self.fill_request_id and not req.request_id:
            if req is request:  # never mutate the caller's message: it may be a reused template
                req = cls()
                req.CopyFrom(request)
            req.request_id = str(uuid.uuid4())
        return req

    def coerce(self, item: Any) -> Any:
        """A streamed request item: a message of the right class, or a mapping of its fields."""
        if type(item) is self.request_class:
            return item
        if isinstance(item, Mapping):
            return _from_fields(self.request_class, item)
        raise TypeError(
            f"{self.full_name} streams {self.request_class.__name__} items, got {type(item).__name__}"
        )


def _from_fields(cls: Any, fields: Mapping[str, Any]) -> Any:
    kw = {k: v for k, v in fields.items() if v is not None}
    try:
        return cls(**kw)
    except (TypeError, ValueError, AttributeError):
        pass
    # Field by field, falling back to the proto3 JSON form (wrappers as scalars, enums by name,
    # timestamps as RFC 3339 strings, field masks as "a,b") where the native constructor refuses.
    from google.protobuf import json_format

    msg = cls()
    for key, value in kw.items():
        try:
            part = cls(**{key: value})
        except (TypeError, ValueError, AttributeError) as exc:
            if key not in cls.DESCRIPTOR.fields_by_name:
                raise TypeError(f"{cls.DESCRIPTOR.full_name} has no field {key!r}") from None
            part = cls()
            try:
                json_format.ParseDict({key: _jsonable(value)}, part)
            except (json_format.ParseError, TypeError, ValueError) as json_exc:
                raise TypeError(f"{cls.DESCRIPTOR.full_name}.{key}: {exc} ({json_exc})") from exc
        msg.MergeFrom(part)
    return msg


def _jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        from google.protobuf import json_format

        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _size(obj: Any) -> int:
    if isinstance(obj, Message):
        return obj.ByteSize()
    response = getattr(obj, "response", None)  # RawResponse
    if isinstance(response, Message):
        return response.ByteSize()
    if isinstance(response, list):
        return sum(m.ByteSize() for m in response)
    return 0


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
        on_call: OnCall | None,
        org_header: str,
        prefetch: bool,
    ) -> None:
        self.transport = transport
        self.credentials = credentials
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry
        self.on_call = on_call
        #: Per-attempt tracing hook (:mod:`invora.otel` installs one); None costs one attribute check.
        self.tracer: CallTracer | None = None
        self.org_header = org_header
        self.prefetch = prefetch
        self.pid = _getpid()
        self.closed = False
        self._bindings: dict[MethodInfo, Binding] = {}  # by identity: a runtime RPC may share a path
        self._lock = threading.Lock()
        #: ``invora.schema.guard.SchemaState`` when the client has a runtime schema or a schema check.
        self.schema: Any = None

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

    def notify(self, method: str, started: float, code: grpc.StatusCode, request: Any, response: Any) -> None:
        on_call = self.on_call
        if on_call is None:
            return
        try:
            on_call(method, _perf() - started, code, request.ByteSize(), _size(response))
        except Exception:
            log.exception("invora: on_call observer raised (ignored)")

    def check_usable(self) -> None:
        """Slow path of the per-call check: closed client or another process."""
        if self.closed:
            raise ClientClosedError("this invora client is closed; create a new one")
        self.check_process()


class Core(_CoreBase):
    """Blocking pipeline."""

    transport: Transport

    def unary(
        self, b: Binding, req: Any, timeout: float | None, retry: RetryArg, md: Metadata, call: Any = None
    ) -> Any:
        if call is None:
            call = b.call
        if timeout is None:
            timeout = self.timeout
        policy = self.retry if retry is DEFAULT else retry
        creds = self.credentials
        observed = self.on_call is not None
        auth_retry = creds is not None and creds.refreshable
        started = _monotonic() if policy is not None else 0.0
        state = None
        amd: AuthMetadata = ()
        while True:
            if creds is not None:
                amd = creds.metadata()
                full = amd + md if md else amd
            else:
                full = md
            t0 = _perf() if observed else 0.0
            span = self.tracer.start(b.full_name) if self.tracer is not None else None
            if span is not None:
                full = full + span.metadata
            try:
                response = call(req, timeout, full)
                if span is not None:
                    span.end(None)
                if observed:
                    self.notify(b.full_name, t0, _OK, req, response)
                return response
            except Unauthenticated as exc:
                if span is not None:
                    span.end(exc)
                if observed:
                    self.notify(b.full_name, t0, exc.code, req, None)
                if not auth_retry:
                    raise
                auth_retry = False
                creds.invalidate(amd)  # type: ignore[union-attr]
                continue
            except InvoraError as exc:
                if span is not None:
                    span.end(exc)
                if observed:
                    self.notify(b.full_name, t0, exc.code, req, None)
                if policy is None or not isinstance(policy, Retry):
                    raise
                if state is None:
                    state = policy.start(b.idempotent, started)
                delay = state.next_delay(exc)
                exc.attempts = state.attempt
                if delay is None:
                    raise
            except BaseException as exc:  # a local failure (bad request type, cancellation): close the span
                if span is not None:
                    span.end(exc)
                raise
            time.sleep(delay)
            timeout = state.attempt_timeout(timeout)

    def server_stream(self, b: Binding, req: Any, timeout: float | None, md: Metadata) -> _Stream:
        return _Stream(self, b, req, self.stream_timeout if timeout is None else timeout, md, False)

    def stream_stream(
        self, b: Binding, requests: Iterable[Any], timeout: float | None, md: Metadata
    ) -> _Stream:
        if isinstance(requests, (Message, Mapping)) or not isinstance(requests, Iterable):
            raise TypeError(f"{b.full_name} is client-streaming: pass an iterable of requests")
        items = (b.coerce(r) for r in requests)
        return _Stream(self, b, items, self.stream_timeout if timeout is None else timeout, md, True)

    def close(self) -> None:
        self.closed = True
        self.transport.close()


class _Stream:
    """A server or bidi stream: iterate responses; one transparent token refresh before the first one."""

    def __init__(
        self, core: Core, b: Binding, req: Any, timeout: float, md: Metadata, client_streaming: bool
    ):
        self._core = core
        self._b = b
        self._req = req
        self._timeout = timeout
        self._md = md
        self._call: Any = None
        self._amd: AuthMetadata = ()
        self._received = False
        creds = core.credentials
        # A bidi request iterator cannot be replayed, so only server streams get the refresh-and-retry.
        self._auth_retry = creds is not None and creds.refreshable and not client_streaming

    def _start(self) -> None:
        creds = self._core.credentials
        md = self._md
        if creds is not None:
            self._amd = creds.metadata()
            md = self._amd + md
        self._call = self._b.call(self._req, self._timeout, md)

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        if self._call is None:
            self._start()
        try:
            item = next(self._call)
        except Unauthenticated:
            if self._received or not self._auth_retry:
                raise
            self._auth_retry = False
            self._core.credentials.invalidate(self._amd)  # type: ignore[union-attr]
            self._start()
            item = next(self._call)
        self._received = True
        return item

    def cancel(self) -> bool:
        return bool(self._call.cancel()) if self._call is not None else False

    def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        if self._call is None:
            self._start()
        return self._call.initial_metadata()  # type: ignore[no-any-return]

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._call.trailing_metadata() if self._call is not None else ()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class AsyncCore(_CoreBase):
    """asyncio pipeline (same decisions as :class:`Core`; only waiting differs)."""

    transport: AsyncTransport

    async def unary(
        self, b: Binding, req: Any, timeout: float | None, retry: RetryArg, md: Metadata, call: Any = None
    ) -> Any:
        if call is None:
            call = b.call
        if timeout is None:
            timeout = self.timeout
        policy = self.retry if retry is DEFAULT else retry
        creds = self.credentials
        observed = self.on_call is not None
        auth_retry = creds is not None and creds.refreshable
        started = _monotonic() if policy is not None else 0.0
        state = None
        amd: AuthMetadata | None = ()
        while True:
            if creds is not None:
                amd = creds.cached_metadata()
                if amd is None:
                    amd = await creds.ametadata()
                full = amd + md if md else amd
            else:
                full = md
            t0 = _perf() if observed else 0.0
            span = self.tracer.start(b.full_name) if self.tracer is not None else None
            if span is not None:
                full = full + span.metadata
            try:
                response = await call(req, timeout, full)
                if span is not None:
                    span.end(None)
                if observed:
                    self.notify(b.full_name, t0, _OK, req, response)
                return response
            except Unauthenticated as exc:
                if span is not None:
                    span.end(exc)
                if observed:
                    self.notify(b.full_name, t0, exc.code, req, None)
                if not auth_retry:
                    raise
                auth_retry = False
                creds.invalidate(amd)  # type: ignore[union-attr,arg-type]
                continue
            except InvoraError as exc:
                if span is not None:
                    span.end(exc)
                if observed:
                    self.notify(b.full_name, t0, exc.code, req, None)
                if policy is None or not isinstance(policy, Retry):
                    raise
                if state is None:
                    state = policy.start(b.idempotent, started)
                delay = state.next_delay(exc)
                exc.attempts = state.attempt
                if delay is None:
                    raise
            except BaseException as exc:  # a local failure (bad request type, cancellation): close the span
                if span is not None:
                    span.end(exc)
                raise
            await asyncio.sleep(delay)
            timeout = state.attempt_timeout(timeout)

    def server_stream(self, b: Binding, req: Any, timeout: float | None, md: Metadata) -> _AsyncStream:
        return _AsyncStream(self, b, req, self.stream_timeout if timeout is None else timeout, md, False)

    def stream_stream(self, b: Binding, requests: Any, timeout: float | None, md: Metadata) -> _AsyncStream:
        if isinstance(requests, (Message, Mapping)) or not isinstance(requests, (Iterable, AsyncIterable)):
            raise TypeError(
                f"{b.full_name} is client-streaming: pass an iterable or async iterable of requests"
            )
        items: Any
        if isinstance(requests, AsyncIterable):

            async def coerce_async(source: AsyncIterable[Any]) -> AsyncIterator[Any]:
                async for r in source:
                    yield b.coerce(r)

            items = coerce_async(requests)
        else:
            items = (b.coerce(r) for r in requests)
        return _AsyncStream(self, b, items, self.stream_timeout if timeout is None else timeout, md, True)

    async def close(self) -> None:
        self.closed = True
        await self.transport.close()


class _AsyncStream:
    """Async twin of :class:`_Stream`; the call starts on the first ``__anext__`` (inside the loop)."""

    def __init__(
        self, core: AsyncCore, b: Binding, req: Any, timeout: float, md: Metadata, client_streaming: bool
    ):
        self._core = core
        self._b = b
        self._req = req
        self._timeout = timeout
        self._md = md
        self._call: Any = None
        self._amd: AuthMetadata = ()
        self._received = False
        creds = core.credentials
        self._auth_retry = creds is not None and creds.refreshable and not client_streaming

    async def _start(self) -> None:
        creds = self._core.credentials
        md = self._md
        if creds is not None:
            self._amd = await creds.ametadata()
            md = self._amd + md
        self._call = self._b.call(self._req, self._timeout, md)

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._call is None:
            await self._start()
        try:
            item = await self._call.__anext__()
        except Unauthenticated:
            if self._received or not self._auth_retry:
                raise
            self._auth_retry = False
            self._core.credentials.invalidate(self._amd)  # type: ignore[union-attr]
            await self._start()
            item = await self._call.__anext__()
        self._received = True
        return item

    def cancel(self) -> bool:
        return bool(self._call.cancel()) if self._call is not None else False

    async def initial_metadata(self) -> tuple[tuple[str, Any], ...]:
        if self._call is None:
            await self._start()
        return await self._call.initial_metadata()  # type: ignore[no-any-return]

    async def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return await self._call.trailing_metadata() if self._call is not None else ()


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
    ) -> Metadata:
        md = self.org_md if org_id is None else ((self.core.org_header, check_org_id(org_id)), *self.extra_md)
        if metadata:
            pairs = metadata.items() if isinstance(metadata, Mapping) else metadata
            md = md + tuple((k, v) for k, v in pairs)
        return md

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
        if core.pid != _getpid() or core.closed:
            core.check_usable()
        md = self.org_md if org_id is None and not metadata else self.call_metadata(org_id, metadata)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        kind = b.kind
        if kind == "unary_unary":
            req = b.build(request, fields)
            if b.page is not None:
                return self._pager(b, req, timeout, retry, md, page_size, max_items)
            if page_size is not None or max_items is not None:
                raise TypeError(f"{b.full_name} is not paginated: page_size/max_items do not apply")
            return core.unary(b, req, timeout, retry, md)
        if kind == "unary_stream":
            return core.server_stream(b, b.build(request, fields), timeout, md)
        if request is None:
            raise TypeError(f"{b.full_name} is client-streaming: pass an iterable of requests")
        return core.stream_stream(b, request, timeout, md)

    def _pager(
        self,
        b: Binding,
        req: Any,
        timeout: float | None,
        retry: RetryArg,
        md: Metadata,
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
            return unary(b, r, timeout, retry, md)

        cls = AsyncPager if isinstance(core, AsyncCore) else Pager
        return cls(
            fetch,
            owned,
            items_field=b.items_field,
            max_items=max_items,
            prefetch=core.prefetch,
            method=b.full_name,
        )
