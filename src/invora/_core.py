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
import weakref
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf.message import Message

from invora._pbcompat import is_repeated
from invora._service import DEFAULT, RetryArg
from invora._target import check_metadata, check_org_id
from invora.errors import (
    ClientClosedError,
    ClientForkedError,
    ConfigurationError,
    InvoraError,
    Unauthenticated,
)
from invora.pagination import AsyncPager, Pager
from invora.retry import Retry, RetryState
from invora.transport import AsyncRequestFeed, RequestFeed

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
_FOREVER = 10 * 365 * 86400.0  # a timeout longer than this (or NaN/inf) is a mistake, not a deadline
_MAX_NESTING = 100  # the deepest request dict accepted when the message schema itself is recursive


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


_DEPTHS: dict[Any, int] = {}


def _schema_depth(desc: Any, path: frozenset[Any] = frozenset()) -> int:
    """How deep a request dict for ``desc`` may nest; ``_MAX_NESTING`` when the schema is recursive
    (a message that can contain itself, ``Struct``), since any depth is then valid. Memoised: a message
    that reaches a cycle is unbounded wherever it is met."""
    known = _DEPTHS.get(desc)
    if known is not None:
        return known
    if desc in path:
        return _MAX_NESTING
    inner = path | {desc}
    deepest = 0
    for fd in desc.fields:
        sub = fd.message_type
        if sub is None:
            deepest = max(deepest, 1 if is_repeated(fd) else 0)
        elif sub.GetOptions().map_entry:  # a map is one dict level; its value type may nest further
            deepest = max(deepest, _schema_depth(sub, inner))
        else:
            deepest = max(deepest, _schema_depth(sub, inner) + (2 if is_repeated(fd) else 1))
        if deepest >= _MAX_NESTING:
            break
    _DEPTHS[desc] = result = min(deepest, _MAX_NESTING)
    return result


def _check_nesting(cls: Any, fields: Mapping[str, Any]) -> None:
    """Refuse request dicts nested deeper than the schema allows (they would otherwise end in a
    RecursionError deep inside protobuf); iterative, so any input depth is measured safely."""
    if not any(isinstance(v, (Mapping, list, tuple)) for v in fields.values()):
        return  # flat keyword fields (the common call): nothing nested to measure
    desc = cls.DESCRIPTOR
    allowed = _schema_depth(desc)
    stack: list[tuple[Any, int]] = [(fields, 0)]
    while stack:
        value, level = stack.pop()
        if not isinstance(value, (Mapping, list, tuple)):
            continue
        if level > allowed:
            raise ConfigurationError(
                f"{desc.full_name}: the request is nested deeper ({level}+ levels) than its schema allows "
                f"({allowed}); check for a dict or list inside itself or a value under the wrong field"
            )
        if isinstance(value, Mapping):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, level + 1) for v in value)


def _decimal_hint(cls: Any, fields: Mapping[str, Any]) -> str:
    """A pointer to ``from_decimal`` when a Decimal or float was given for a DecimalValue field."""
    import decimal

    for key, value in fields.items():
        fd = cls.DESCRIPTOR.fields_by_name.get(key)
        if fd is None or fd.message_type is None:
            continue
        if isinstance(value, (decimal.Decimal, float)):
            if fd.message_type.full_name.endswith("DecimalValue"):
                return (
                    f"{cls.DESCRIPTOR.full_name}.{key} is a DecimalValue: pass "
                    f"invora.decimal.from_decimal({str(value)!r}) (money never goes through float)"
                )
            return f"{cls.DESCRIPTOR.full_name}.{key} is a {fd.message_type.full_name} message, not a number"
        if isinstance(value, Mapping):
            inner = _decimal_hint(_message_class(fd), value)
            if inner:
                return inner
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, Mapping):
                    inner = _decimal_hint(_message_class(fd), item)
                    if inner:
                        return inner
    return ""


def _message_class(fd: Any) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(fd.message_type)


def _from_fields(cls: Any, fields: Mapping[str, Any]) -> Any:
    _check_nesting(cls, fields)
    try:
        return _build(cls, fields)
    except TypeError:
        hint = _decimal_hint(cls, fields)
        if hint:
            raise TypeError(hint) from None
        raise


def _build(cls: Any, fields: Mapping[str, Any]) -> Any:
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
        self._copies: weakref.WeakSet[_CoreBase] = weakref.WeakSet()

    def adopt(self, copy: _CoreBase) -> None:
        """``copy`` (a ``with_options`` client's core) runs over this core's transport: it keeps the
        tracer and is closed with this core."""
        copy.tracer = self.tracer
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


class _Attempts:
    """The decisions of one unary call, attempt by attempt, with no I/O (the sync and async loops only
    fetch credentials, call and wait): metadata and span of each attempt, the observer, one token refresh
    on UNAUTHENTICATED, and the retry decision and delay."""

    __slots__ = (
        "amd",
        "auth_retry",
        "b",
        "call",
        "core",
        "delay",
        "md",
        "policy",
        "rebudget",
        "req",
        "span",
        "started",
        "state",
        "t0",
        "timeout",
    )

    def __init__(
        self,
        core: _CoreBase,
        b: Binding,
        req: Any,
        timeout: float | None,
        retry: RetryArg,
        md: Metadata,
        call: Any,
    ) -> None:
        self.core = core
        self.call = b.call if call is None else call  # the transport's callable, or a raw one
        self.timeout = core.timeout if timeout is None else timeout
        self.delay = 0.0
        self.b = b
        self.req = req
        self.md = md
        policy = core.retry if retry is DEFAULT else retry
        self.policy = policy if isinstance(policy, Retry) else None
        creds = core.credentials
        self.auth_retry = creds is not None and creds.refreshable
        self.started = _monotonic() if policy is not None else 0.0
        self.state: RetryState | None = None
        self.amd: AuthMetadata = ()
        self.span: CallSpan | None = None
        self.t0 = 0.0
        self.rebudget = False

    def begin(self, amd: AuthMetadata) -> Metadata:
        """The metadata of the next attempt (credentials ``amd`` first); starts its clock and span. After
        a retry's wait, the attempt's deadline is bounded by the retry budget left."""
        if self.rebudget:
            self.rebudget = False
            self.timeout = self.state.attempt_timeout(self.timeout)  # type: ignore[union-attr]
        self.amd = amd
        md = self.md
        full = amd + md if md else amd
        core = self.core
        if core.on_call is not None:
            self.t0 = _perf()
        tracer = core.tracer
        if tracer is not None:
            span = self.span = tracer.start(self.b.full_name)
            full = full + span.metadata
        return full

    def succeeded(self, response: Any) -> Any:
        if self.span is not None:
            self.span.end(None)
        if self.core.on_call is not None:
            self.core.notify(self.b.full_name, self.t0, _OK, self.req, response)
        return response

    def failed(self, exc: BaseException) -> bool:
        """Ends the attempt with ``exc``: whether to try again (after ``delay``) rather than raise."""
        if self.span is not None:
            self.span.end(exc)
        if not isinstance(exc, InvoraError):
            return False  # a local failure (bad request type, cancellation)
        core = self.core
        if core.on_call is not None:
            core.notify(self.b.full_name, self.t0, exc.code, self.req, None)
        if isinstance(exc, Unauthenticated):
            if not self.auth_retry:
                return False
            self.auth_retry = False
            core.credentials.invalidate(self.amd)  # type: ignore[union-attr]
            self.delay = 0.0  # at once, with the same deadline
            return True
        policy = self.policy
        if policy is None:
            return False
        state = self.state
        if state is None:
            state = self.state = policy.start(self.b.idempotent, self.started)
        delay = state.next_delay(exc)
        exc.attempts = state.attempt
        if delay is None:
            return False
        self.delay = delay
        self.rebudget = True
        return True


class Core(_CoreBase):
    """Blocking pipeline: the decisions are :class:`_Attempts`'; this loop only calls and sleeps."""

    transport: Transport

    def unary(
        self, b: Binding, req: Any, timeout: float | None, retry: RetryArg, md: Metadata, call: Any = None
    ) -> Any:
        a = _Attempts(self, b, req, timeout, retry, md, call)
        creds = self.credentials
        while True:
            full = a.begin(creds.metadata() if creds is not None else ())
            try:
                return a.succeeded(a.call(req, a.timeout, full))
            except BaseException as exc:
                if not a.failed(exc):
                    raise
            if a.delay:
                time.sleep(a.delay)

    def server_stream(self, b: Binding, req: Any, timeout: float | None, md: Metadata) -> _Stream:
        return _Stream(self, b, req, self.stream_timeout if timeout is None else timeout, md, False)

    def stream_stream(
        self, b: Binding, requests: Iterable[Any], timeout: float | None, md: Metadata
    ) -> _Stream:
        if isinstance(requests, (Message, Mapping)) or not isinstance(requests, Iterable):
            raise TypeError(f"{b.full_name} is client-streaming: pass an iterable of requests")
        items = RequestFeed(requests, b.coerce)
        return _Stream(self, b, items, self.stream_timeout if timeout is None else timeout, md, True)

    def close(self) -> None:
        self.mark_closed()
        self.transport.close()


class _StreamBase:
    """What a sync and an async stream share: the opening call, and the one transparent token refresh
    when the first response fails with UNAUTHENTICATED (a bidi request iterator cannot be replayed, so
    only server streams get it)."""

    def __init__(
        self, core: _CoreBase, b: Binding, req: Any, timeout: float, md: Metadata, client_streaming: bool
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

    def _open(self, amd: AuthMetadata | None) -> None:
        md = self._md
        if amd is not None:
            self._amd = amd
            md = amd + md
        self._call = self._b.call(self._req, self._timeout, md)

    def _refresh(self) -> bool:
        """After UNAUTHENTICATED: whether to reopen (the token was invalidated) or raise."""
        if self._received or not self._auth_retry:
            return False
        self._auth_retry = False
        self._core.credentials.invalidate(self._amd)  # type: ignore[union-attr]
        return True

    def cancel(self) -> bool:
        return bool(self._call.cancel()) if self._call is not None else False


class _Stream(_StreamBase):
    """A server or bidi stream: iterate responses."""

    def _start(self) -> None:
        creds = self._core.credentials
        self._open(creds.metadata() if creds is not None else None)

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        if self._call is None:
            self._start()
        try:
            item = next(self._call)
        except Unauthenticated:
            if not self._refresh():
                raise
            self._start()
            item = next(self._call)
        self._received = True
        return item

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
        a = _Attempts(self, b, req, timeout, retry, md, call)
        while True:
            creds = self.credentials
            if creds is None:
                full = a.begin(())
            else:
                amd = creds.cached_metadata()
                full = a.begin(await creds.ametadata() if amd is None else amd)
            try:
                return a.succeeded(await a.call(req, a.timeout, full))
            except BaseException as exc:
                if not a.failed(exc):
                    raise
            if a.delay:
                await asyncio.sleep(a.delay)

    def server_stream(self, b: Binding, req: Any, timeout: float | None, md: Metadata) -> _AsyncStream:
        return _AsyncStream(self, b, req, self.stream_timeout if timeout is None else timeout, md, False)

    def stream_stream(self, b: Binding, requests: Any, timeout: float | None, md: Metadata) -> _AsyncStream:
        if isinstance(requests, (Message, Mapping)) or not isinstance(requests, (Iterable, AsyncIterable)):
            raise TypeError(
                f"{b.full_name} is client-streaming: pass an iterable or async iterable of requests"
            )
        items = AsyncRequestFeed(requests, b.coerce)
        return _AsyncStream(self, b, items, self.stream_timeout if timeout is None else timeout, md, True)

    async def close(self) -> None:
        self.mark_closed()
        await self.transport.close()


class _AsyncStream(_StreamBase):
    """The async stream; the call starts on the first ``__anext__`` (inside the loop)."""

    async def _start(self) -> None:
        creds = self._core.credentials
        self._open(await creds.ametadata() if creds is not None else None)

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._call is None:
            await self._start()
        try:
            item = await self._call.__anext__()
        except Unauthenticated:
            if not self._refresh():
                raise
            await self._start()
            item = await self._call.__anext__()
        self._received = True
        return item

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
            md = md + check_metadata(metadata)  # type: ignore[operator]
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
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < _FOREVER
        ):
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
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
