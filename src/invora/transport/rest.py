"""REST/JSON transport (httpx, sync and asyncio): the same RPCs through their ``google.api.http`` rules.

Everything above the transport — credentials, tenancy, ``request_id``, retries, pagination, the observer —
is shared with gRPC, so switching is one argument: ``Client(target="https://host", transport="rest")``.
Per method, the HTTP rule is resolved once; per call, :func:`invora.transcoding.expand` turns the request
into verb, path, query and JSON body, and the response JSON is parsed with unknown fields tolerated.
Errors come back as the JSON form of ``google.rpc.Status`` and map to the same exception classes as gRPC;
anything else (a proxy's HTML page, an empty 503) maps by HTTP status.

HTTP/2 is used when the ``http2`` extra (``h2``) is installed and a TLS server offers it (ALPN); plaintext
stays HTTP/1.1, which every server speaks.

Streaming RPCs have no HTTP rule: calling one raises :class:`invora.errors.Unimplemented` before any
network, naming ``transport="grpc"`` as the alternative.

Like gRPC's, a call's ``timeout`` bounds the whole exchange (httpx's own timeouts are per read, which a
trickling server can stretch without end), and a response body is capped at 64 MiB, gRPC's receive
limit. Blocking calls therefore run the exchange on a small per-transport thread pool and wait for it
with the deadline; asyncio calls wrap it in ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import httpx

from invora import _json, transcoding
from invora.errors import RpcError, error_class, from_http
from invora.transport import (
    AsyncRawCallable,
    AsyncTransport,
    AsyncUnaryCallable,
    Metadata,
    RawCallable,
    RawResponse,
    Transport,
    TransportConfig,
    UnaryCallable,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from invora._catalog import MethodInfo

__all__ = ["AsyncRestTransport", "RestTransport"]

_HTTP2 = importlib.util.find_spec("h2") is not None  # the `http2` extra
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=60.0)
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # gRPC's grpc.max_receive_message_length in this SDK


class _Reply:
    """What came back: status, headers and the whole (capped) body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


class _TooLarge(Exception):
    pass


class _Expired(Exception):
    pass


# What an exchange may end in besides a reply (the sync and asyncio transports map them alike).
_FAILURES = (_Expired, _TooLarge, httpx.HTTPError)


def _verify(config: TransportConfig) -> ssl.SSLContext | bool:
    if not config.secure:
        return False
    ctx = ssl.create_default_context()
    if config.root_certificates:
        ctx = ssl.create_default_context(cadata=config.root_certificates.decode("ascii"))
    return ctx


def _client_kwargs(config: TransportConfig) -> dict[str, Any]:
    if config.private_key or config.certificate_chain:
        raise error_class(grpc.StatusCode.UNIMPLEMENTED)(
            "mutual TLS client certificates are supported on transport='grpc' only", request_not_sent=True
        )
    return {
        "base_url": config.base_url,
        "verify": _verify(config),
        "headers": {"user-agent": config.user_agent, "accept": "application/json"},
        "limits": _LIMITS,
        # HTTP(S)_PROXY / NO_PROXY / SSL_CERT_FILE, as users expect, except for plaintext (loopback)
        # targets: a proxy there would receive the bearer token in clear.
        "trust_env": config.secure,
        "http2": bool(config.extra.get("http2", _HTTP2)),
    }


def _unsupported(method: MethodInfo) -> NoReturn:
    why = "is a streaming RPC" if method.is_streaming else "has no HTTP rule"
    raise error_class(grpc.StatusCode.UNIMPLEMENTED)(
        f"{method.full_name} {why} and cannot be called over REST; use transport='grpc'",
        request_not_sent=True,
        method=method.full_name,
    )


class _Codec:
    """Per-method request encoding and response decoding, shared by the sync and async transports."""

    __slots__ = ("method", "name", "rule")

    def __init__(self, method: MethodInfo) -> None:
        if method.http is None or method.is_streaming:
            _unsupported(method)
        self.method = method
        self.rule = method.http
        self.name = method.full_name

    def request(
        self, request: Message, metadata: Metadata
    ) -> tuple[str, str, Any, bytes | None, dict[str, str]]:
        try:
            verb, path, query, body = transcoding.expand(self.rule, request)
        except transcoding.TranscodingError as exc:
            raise error_class(grpc.StatusCode.INVALID_ARGUMENT)(
                f"cannot encode the request for REST: {exc}", request_not_sent=True, method=self.name
            ) from None
        headers = {k: v for k, v in metadata if not k.endswith("-bin")}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["content-type"] = "application/json"
        return verb, path, query, content, headers

    def response(self, response: _Reply) -> Message:
        status = response.status_code
        if status >= 300:
            raise from_http(status, response.content, response.headers, self.name)
        try:
            data = (
                _json.loads(response.content, max_bytes=MAX_RESPONSE_BYTES, what="the response body")
                if response.content
                else {}
            )
            if not self.rule.response_body and not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            message: Message = transcoding.decode_response(self.rule, data, self.method.response_class)
        except (ValueError, transcoding.TranscodingError) as exc:
            snippet = " ".join(response.content[:200].decode("utf-8", "replace").split())
            raise error_class(grpc.StatusCode.INTERNAL)(
                f"HTTP {status} with a body that is not the expected JSON ({exc}): {snippet}",
                method=self.name,
            ) from None
        return message

    def expired(self, timeout: float) -> RpcError:
        return error_class(grpc.StatusCode.DEADLINE_EXCEEDED)(
            f"the REST call did not complete within {timeout:g}s", method=self.name
        )

    def too_large(self) -> RpcError:
        return error_class(grpc.StatusCode.RESOURCE_EXHAUSTED)(
            f"the response is larger than {MAX_RESPONSE_BYTES} bytes", method=self.name
        )

    def failure(self, exc: BaseException, timeout: float) -> RpcError:
        """The error of an exchange that ended in one of :data:`_FAILURES` or a timeout."""
        if isinstance(exc, _TooLarge):
            return self.too_large()
        if isinstance(exc, httpx.HTTPError):
            return self.transport_error(exc)
        return self.expired(timeout)

    def transport_error(self, exc: httpx.HTTPError) -> RpcError:
        """Connection failures map to UNAVAILABLE (retryable) and timeouts to DEADLINE_EXCEEDED; a failed
        connect means the request never left, which lets the retry policy retry even unsafe writes."""
        not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            code = grpc.StatusCode.UNAVAILABLE
        return error_class(code)(
            f"{type(exc).__name__} talking to the REST endpoint: {exc}",
            http_status=0,  # no HTTP response came
            request_not_sent=not_sent,
            method=self.name,
        )


class _Body:
    """A response body read chunk by chunk, never past MAX_RESPONSE_BYTES (declared or received); the
    blocking and asyncio exchanges differ only in how they get the chunks."""

    __slots__ = ("chunks", "response", "size")

    def __init__(self, response: httpx.Response) -> None:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
            raise _TooLarge
        self.response = response
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        self.chunks.append(chunk)

    def reply(self) -> _Reply:
        return _Reply(self.response.status_code, self.response.headers, b"".join(self.chunks))


def _raw(message: Message, response: _Reply) -> RawResponse:
    return RawResponse(message, tuple(response.headers.items()), (), grpc.StatusCode.OK)


class _UnaryOnly:
    """Both REST transports: the HTTP rules carry unary RPCs only."""

    def server_stream(self, method: MethodInfo) -> Callable[..., Any]:
        _unsupported(method)

    def stream_stream(self, method: MethodInfo) -> Callable[..., Any]:
        _unsupported(method)


class RestTransport(_UnaryOnly, Transport):
    name = "rest"

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def http(self) -> httpx.Client:
        client = self._http
        if client is None:
            with self._lock:
                client = self._http
                if client is None:
                    client = self._http = httpx.Client(**_client_kwargs(self.config))
        return client

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = concurrent.futures.ThreadPoolExecutor(
                        _LIMITS.max_connections, thread_name_prefix="invora-rest"
                    )
        return pool

    @property
    def has_connections(self) -> bool:
        return self._http is not None

    def _exchange(self, args: tuple[Any, ...], timeout: float, deadline: float) -> _Reply:
        verb, path, query, content, headers = args
        with self.http.stream(
            verb, path, params=query, content=content, headers=headers, timeout=timeout
        ) as response:
            body = _Body(response)
            for chunk in response.iter_bytes():
                if time.monotonic() > deadline:
                    raise _Expired  # the caller has already given up: stop reading a trickle
                body.add(chunk)
            return body.reply()

    def _send(self, codec: _Codec, request: Message, timeout: float, metadata: Metadata) -> _Reply:
        args = codec.request(request, metadata)
        deadline = time.monotonic() + timeout
        future = self.pool.submit(self._exchange, args, timeout, deadline)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise codec.expired(timeout) from None
        except _FAILURES as exc:
            raise codec.failure(exc, timeout) from None

    def unary(self, method: MethodInfo) -> UnaryCallable:
        codec = _Codec(method)

        def call(request: Message, timeout: float, metadata: Metadata) -> Message:
            return codec.response(self._send(codec, request, timeout, metadata))

        return call

    def unary_raw(self, method: MethodInfo) -> RawCallable:
        codec = _Codec(method)

        def call(request: Message, timeout: float, metadata: Metadata) -> RawResponse:
            response = self._send(codec, request, timeout, metadata)
            return _raw(codec.response(response), response)

        return call

    def close(self) -> None:
        with self._lock:
            client, self._http = self._http, None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if client is not None:
            client.close()


class AsyncRestTransport(_UnaryOnly, AsyncTransport):
    """httpx.AsyncClient owned by the loop that created it (reopened when used from another loop)."""

    name = "rest"

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(**_client_kwargs(self.config))
            self._loop = loop
        return self._http

    @property
    def has_connections(self) -> bool:
        return self._http is not None

    async def _exchange(self, args: tuple[Any, ...], timeout: float) -> _Reply:
        verb, path, query, content, headers = args
        async with self.http.stream(
            verb, path, params=query, content=content, headers=headers, timeout=timeout
        ) as response:
            body = _Body(response)
            async for chunk in response.aiter_bytes():
                body.add(chunk)  # asyncio.wait_for in _send ends a trickle at the deadline
            return body.reply()

    async def _send(self, codec: _Codec, request: Message, timeout: float, metadata: Metadata) -> _Reply:
        args = codec.request(request, metadata)
        try:
            return await asyncio.wait_for(self._exchange(args, timeout), timeout)
        except (asyncio.TimeoutError, *_FAILURES) as exc:
            raise codec.failure(exc, timeout) from None

    def unary(self, method: MethodInfo) -> AsyncUnaryCallable:
        codec = _Codec(method)

        async def call(request: Message, timeout: float, metadata: Metadata) -> Message:
            return codec.response(await self._send(codec, request, timeout, metadata))

        return call

    def unary_raw(self, method: MethodInfo) -> AsyncRawCallable:
        codec = _Codec(method)

        async def call(request: Message, timeout: float, metadata: Metadata) -> RawResponse:
            response = await self._send(codec, request, timeout, metadata)
            return _raw(codec.response(response), response)

        return call

    async def close(self) -> None:
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()
