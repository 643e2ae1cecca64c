"""The HTTP side: OIDC discovery, the token endpoint, JWKS, and REST/JSON transcoding of every RPC.

An ASGI application served by uvicorn (httptools, the C HTTP/1.1 parser) on its own event loop in a
background thread: a production-grade server, so that load tests over REST measure the client rather
than the sandbox. TLS when the sandbox has a certificate. Errors are the JSON
form of ``google.rpc.Status`` with the HTTP status of the API's table; token endpoint errors are OAuth JSON
(``{error, error_description}``).

Calls run on the event loop (the pipeline is short and never waits) unless the sandbox has a latency
knob set, when they run in a pool of worker threads (as many as the gRPC side has) so one slow call does
not hold up the others.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

from invora import transcoding
from invora.errors import http_status_for
from invora.sandbox.auth import OAuthError
from invora.sandbox.faults import Fault, bad_request, call_id

if TYPE_CHECKING:
    from invora.sandbox.app import Sandbox

_log = logging.getLogger("invora.sandbox")
MAX_BODY = 32 * 1024 * 1024
POOL_THREADS = 32  # calls slowed by the latency knob, at once (as on the gRPC side)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_SERVER = (b"server", b"invora-sandbox")
_JSON = b"application/json"


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class _Response:
    """A finished response: status, body, content type, extra headers."""

    __slots__ = ("body", "ctype", "headers", "status")

    def __init__(
        self, status: int, body: bytes, ctype: bytes = _JSON, headers: Headers | None = None
    ) -> None:
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or []


def _json(status: int, data: Any, headers: Headers | None = None) -> _Response:
    return _Response(status, _dumps(data), headers=headers)


def _fault_response(fault: Fault, request_id: str | None = None) -> _Response:
    data = json_format.MessageToDict(fault.status(call_id(request_id)))
    data.setdefault("code", fault.code.value[0])
    data.setdefault("message", fault.message)
    headers: Headers = []
    for d in fault.details:
        if d.DESCRIPTOR.full_name == "google.rpc.RetryInfo":
            delay = d.retry_delay.seconds + d.retry_delay.nanos / 1e9  # type: ignore[attr-defined]
            headers.append((b"retry-after", str(max(1, int(delay + 0.999))).encode()))
    return _json(http_status_for(fault.code), data, headers)


def _oauth_error(status: int, error: str, description: str) -> _Response:
    headers: Headers = [(b"cache-control", b"no-store")]
    if status == 401:
        headers.append((b"www-authenticate", b'Basic realm="invora-sandbox"'))
    return _json(status, {"error": error, "error_description": description}, headers)


class _Request:
    __slots__ = ("body", "headers", "path", "query", "verb")

    def __init__(self, verb: str, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        self.verb, self.path, self.query, self.headers, self.body = verb, path, query, headers, body


class App:
    """The ASGI application; one per sandbox."""

    def __init__(self, sandbox: Sandbox, pool: futures.Executor) -> None:
        self.sandbox = sandbox
        self.pool = pool  # for calls the latency knob slows down
        self.closing: asyncio.Event | None = None  # created on the server's loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websocket support needed
        verb: str = scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        close = False
        try:
            body = await _read_body(headers, receive)
        except Fault as f:  # the rest of an unread body would be taken for the next request: close
            body, close, response = b"", True, _fault_response(f)
        if body is None:
            return  # the client went away: nobody to answer
        if not close:
            # The raw path: bindings are percent-decoded by the transcoder, not by the server.
            raw = scope.get("raw_path") or scope["path"].encode()
            request = _Request(
                verb, raw.decode("latin-1"), scope["query_string"].decode("latin-1"), headers, body
            )
            try:
                if self._blocks(request):
                    loop = asyncio.get_running_loop()
                    response = await loop.run_in_executor(self.pool, self._handle, request)
                else:
                    response = await self._handle_async(request)
            except Exception as exc:
                _log.exception("sandbox HTTP handler failed")
                response = _fault_response(
                    Fault(grpc.StatusCode.INTERNAL, f"sandbox bug: {type(exc).__name__}: {exc}")
                )
        out: Headers = [
            _SERVER,
            (b"content-type", response.ctype),
            (b"content-length", str(len(response.body)).encode()),
            *response.headers,
        ]
        if close:
            out.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if verb == "HEAD" else response.body})

    def _blocks(self, request: _Request) -> bool:
        """Whether this call may sleep (latency knob): such calls run in a worker thread."""
        return self.sandbox.blocking and request.path != "/oauth/v2/token"

    async def _handle_async(self, request: _Request) -> _Response:
        if request.path == "/oauth/v2/token":
            return await self._token(request)
        return self._handle(request)

    def _handle(self, request: _Request) -> _Response:
        try:
            path, verb = request.path, request.verb
            if path == "/.well-known/openid-configuration" and verb == "GET":
                return self._discovery()
            if path == "/oauth/v2/keys" and verb == "GET":
                return _json(200, self.sandbox._keyring().jwks())
            if path == "/healthz":
                return _json(200, {"status": "SERVING"})
            return self._rest(request)
        except Fault as f:
            return _fault_response(f, request.headers.get("x-request-id"))

    # -- OIDC -------------------------------------------------------------------------------------------
    def _discovery(self) -> _Response:
        base = self.sandbox.issuer
        return _json(
            200,
            {
                "issuer": base,
                "token_endpoint": base + "/oauth/v2/token",
                "jwks_uri": base + "/oauth/v2/keys",
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["token"],
                "scopes_supported": ["openid", "Invora.*"],
            },
        )

    async def _token(self, request: _Request) -> _Response:
        sb = self.sandbox
        if request.verb != "POST":
            return _oauth_error(405, "invalid_request", "the token endpoint accepts POST only")
        fault = sb.next_token_fault()
        if fault == "status500":
            return _json(
                500, {"error": "server_error", "error_description": "injected token endpoint failure"}
            )
        if fault == "garbage":
            return _Response(200, b"<html><body>upstream proxy error</body></html>", b"text/html")
        if fault == "slow" and self.closing is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closing.wait(), 30.0)
        ctype = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in ctype:
            return _oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth_header = request.headers.get("authorization", "")
        if auth_header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth_header[6:].strip()).decode("utf-8")
                cid, _, sec = raw.partition(":")
                client_id, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)
            except (ValueError, UnicodeDecodeError):
                return _oauth_error(401, "invalid_client", "malformed Basic credentials")
        grant = form.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", f"grant_type {grant!r} is not supported by the sandbox"
            )
        if not client_id or not secret:
            return _oauth_error(401, "invalid_client", "client_id and client_secret are required")
        try:
            token, expires_in = sb.issue_token(client_id, secret)
        except OAuthError as exc:
            return _oauth_error(exc.status, exc.error, exc.description)
        data: dict[str, Any] = {"token_type": "Bearer", "expires_in": expires_in}
        if fault != "no_access_token":
            data["access_token"] = token
        return _json(200, data, [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")])

    # -- REST -------------------------------------------------------------------------------------------
    def _rest(self, request: _Request) -> _Response:
        sb = self.sandbox
        verb, path = request.verb, request.path
        router = transcoding.router()
        found = router.match(verb, path)
        if found is None:
            allowed = router.allowed_verbs(path)
            if allowed:
                raise Fault(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{verb} is not served on {path} (allowed: {', '.join(allowed)})",
                    reason="METHOD_NOT_ALLOWED",
                )
            raise Fault(
                grpc.StatusCode.NOT_FOUND, f"no RPC is mapped to {verb} {path}", reason="ROUTE_NOT_FOUND"
            )
        route, bindings = found
        entry = sb.methods[route.method.full_name]
        query = urllib.parse.parse_qsl(request.query, keep_blank_values=True) if request.query else []
        md = request.headers
        try:
            message = transcoding.decode(route.rule, bindings, query, request.body, entry.info.request_class)
        except transcoding.TranscodingError as exc:
            fault = Fault(
                grpc.StatusCode.INVALID_ARGUMENT,
                str(exc),
                reason="INVALID_REQUEST",
                details=[bad_request([(exc.field, str(exc))])] if exc.field else [],
            )
            sb.record(entry.full, None, md, fault.code, "rest")
            raise fault from None
        response = sb.dispatch(entry, message, md, "rest")
        return _json(200, transcoding.encode_response(route.rule, response))


async def _read_body(headers: dict[str, str], receive: Receive) -> bytes | None:
    """The whole request body (None: the client disconnected), refusing more than :data:`MAX_BODY`
    bytes before reading them."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise Fault(
                grpc.StatusCode.INVALID_ARGUMENT, "bad Content-Length", reason="BAD_REQUEST"
            ) from None
        if length > MAX_BODY:
            raise Fault(grpc.StatusCode.INVALID_ARGUMENT, "request body too large", reason="BODY_TOO_LARGE")
        if length == 0:
            return b""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Fault(grpc.StatusCode.INVALID_ARGUMENT, "request body too large", reason="BODY_TOO_LARGE")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (not on Windows): less CPU per request than asyncio's own loop. A loop of
    our own either way; the process-wide event loop policy is left alone."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class HttpServer:
    """uvicorn on a private event loop in a daemon thread, bound at construction (port 0 allowed)."""

    def __init__(self, sandbox: Sandbox, host: str, port: int, tls: tuple[bytes, bytes] | None) -> None:
        import uvicorn

        self.host = host
        self.tls = tls is not None
        self._pool = futures.ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="sandbox-http")
        self.app = App(sandbox, self._pool)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
        # (otherwise headers and body, two writes, wait out a delayed ACK: ~40 ms per call).
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(2048)
        except OSError:
            self._sock.close()
            raise
        self.port = int(self._sock.getsockname()[1])
        certfile = None
        if tls is not None:
            # uvicorn loads certificates from files: write the PEMs to a private temporary file, load, remove.
            fd, certfile = tempfile.mkstemp(suffix=".pem")
            with os.fdopen(fd, "wb") as f:
                cert, key = tls
                f.write(cert.rstrip(b"\n") + b"\n" + key)
        try:
            config = uvicorn.Config(
                self.app,
                http="httptools",
                loop="asyncio",
                lifespan="off",
                log_level="warning",
                access_log=False,
                proxy_headers=False,  # a local gateway: no proxy in front whose headers to trust
                server_header=False,
                date_header=False,
                # Longer than the SDK's keep-alive expiry (60 s): the client, not the server, ends idle
                # connections, so no request races a server-side close.
                timeout_keep_alive=75,
                timeout_graceful_shutdown=2,
                ssl_certfile=certfile,
            )
            config.load()
        except BaseException:
            self._sock.close()
            raise
        finally:
            if certfile is not None:
                os.unlink(certfile)
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        self.app.closing = asyncio.Event()
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        finally:
            loop.close()

    def start(self) -> None:
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name="sandbox-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)

    def stop(self) -> None:
        loop, closing = self._loop, self.app.closing
        if loop is not None and closing is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # RuntimeError: the loop closed meanwhile
                loop.call_soon_threadsafe(closing.set)  # releases "slow" token requests
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self._sock.close()
        self._pool.shutdown(wait=False)
