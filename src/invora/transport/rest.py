"""REST/JSON transport (httpx, sync and asyncio): the same RPCs through their ``google.api.http`` rules.

Everything above the transport — credentials, tenancy, ``request_id``, retries, pagination, the observer —
is shared with gRPC, so switching is one argument: ``Client(target="https://host", transport="rest")``.
Per method, the HTTP rule is resolved once; per call, :func:`invora.transcoding.expand` turns the request
into verb, path, query and JSON body, and the response JSON is parsed with unknown fields tolerated.
Errors come back as the JSON form of ``google.rpc.Status`` and map to the same exception classes as gRPC;
anything else (a proxy's HTML page, an empty 503) maps by HTTP status.

Streaming RPCs have no HTTP rule: calling one raises :class:`invora.errors.Unimplemented` before any
network, naming ``transport="grpc"`` as the alternative.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import httpx

from invora import transcoding
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

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=60.0)


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
        "trust_env": True,  # HTTP(S)_PROXY / NO_PROXY / SSL_CERT_FILE, as users expect
        "http2": bool(config.extra.get("http2", False)),
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

    def response(self, response: httpx.Response) -> Message:
        status = response.status_code
        if status >= 300:
            raise from_http(status, response.content, response.headers, self.name)
        try:
            data = response.json() if response.content else {}
            message: Message = transcoding.decode_response(self.rule, data, self.method.response_class)
        except (ValueError, transcoding.TranscodingError) as exc:
            snippet = " ".join(response.text[:200].split())
            raise error_class(grpc.StatusCode.INTERNAL)(
                f"HTTP {status} with a body that is not the expected JSON ({exc}): {snippet}",
                method=self.name,
            ) from None
        return message

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


def _raw(message: Message, response: httpx.Response) -> RawResponse:
    return RawResponse(message, tuple(response.headers.items()), (), grpc.StatusCode.OK)


class RestTransport(Transport):
    name = "rest"

    def __init__(self, config: TransportConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

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
    def has_connections(self) -> bool:
        return self._http is not None

    def _send(self, codec: _Codec, request: Message, timeout: float, metadata: Metadata) -> httpx.Response:
        verb, path, query, content, headers = codec.request(request, metadata)
        try:
            return self.http.request(
                verb, path, params=query, content=content, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise codec.transport_error(exc) from exc

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

    def server_stream(self, method: MethodInfo) -> Callable[..., Any]:
        _unsupported(method)

    def stream_stream(self, method: MethodInfo) -> Callable[..., Any]:
        _unsupported(method)

    def close(self) -> None:
        with self._lock:
            client, self._http = self._http, None
        if client is not None:
            client.close()


class AsyncRestTransport(AsyncTransport):
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

    async def _send(
        self, codec: _Codec, request: Message, timeout: float, metadata: Metadata
    ) -> httpx.Response:
        verb, path, query, content, headers = codec.request(request, metadata)
        try:
            return await self.http.request(
                verb, path, params=query, content=content, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise codec.transport_error(exc) from exc

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

    def server_stream(self, method: MethodInfo) -> Callable[..., Any]:
        _unsupported(method)

    def stream_stream(self, method: MethodInfo) -> Callable[..., Any]:
        _unsupported(method)

    async def close(self) -> None:
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()
