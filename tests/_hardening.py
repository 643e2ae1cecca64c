"""Real servers on loopback ports for the hostile-input and fault suite (tests/test_hardening_*.py).

Each stub is scriptable per test: a gRPC server for the simple invoices service that records what it
received and answers with whatever the test says, an HTTP server whose handler is a plain function (it
may trickle or hang), and an OAuth token endpoint that can hang, echo or send junk. Measurements the
issue asks for are appended as JSON lines to ``$INVORA_HARDENING_FIGURES`` when that is set; tests
never assert wall-clock times — a call that does not end is caught by :func:`ends`, which fails the
test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import grpc
import pytest

from invora import _catalog

SERVICE = "invora.simple.invoices.v1.SimpleInvoiceService"


def record(name: str, value: Any) -> None:
    """Append one figure to ``$INVORA_HARDENING_FIGURES`` (a JSON-lines file), if set."""
    path = os.environ.get("INVORA_HARDENING_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"figure": name, "value": value}) + "\n")


def ends(fn: Callable[[], Any], within: float = 60.0) -> tuple[Any, BaseException | None, float]:
    """Run ``fn`` in a thread: (result, exception, seconds). A call still running after ``within``
    seconds fails the test as a hang (a generous guard, not a timing assertion)."""
    box: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc
        box["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    if thread.is_alive():
        pytest.fail(f"the call did not end within {within:g}s: it hangs")
    return box.get("result"), box.get("error"), box["seconds"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- gRPC ---------------------------------------------------------------------------------------------------
Handler = Callable[[Any, grpc.ServicerContext], Any]


class GrpcStub:
    """The simple invoices service on a loopback port; ``handlers[rpc]`` decides each answer (default:
    an empty response) and every request is kept in ``received`` before the handler runs."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[str, Any, dict[str, str]]] = []
        self.handlers: dict[str, Handler] = {}
        self.lock = threading.Lock()
        self.port = port
        self.server: grpc.Server | None = None
        self.start()

    def start(self) -> None:
        svc = _catalog.service("simple.invoices")
        stub = self

        def make(rpc: str) -> grpc.RpcMethodHandler:
            m = svc.method(rpc)
            resp_cls = m.response_class

            def handle(request: Any, context: grpc.ServicerContext) -> Any:
                with stub.lock:
                    stub.received.append((rpc, request, dict(context.invocation_metadata())))
                handler = stub.handlers.get(rpc)
                return handler(request, context) if handler is not None else resp_cls()

            return grpc.unary_unary_rpc_method_handler(
                handle,
                request_deserializer=m.request_class.FromString,
                response_serializer=resp_cls.SerializeToString,
            )

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {n: make(n) for n in svc.methods}),)
        )
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(None).wait()
            self.server = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, rpc: str) -> int:
        with self.lock:
            return sum(1 for name, _, _ in self.received if name == rpc)


# -- HTTP ---------------------------------------------------------------------------------------------------
class Reply:
    """What :class:`HttpStub` sends: a status, headers and a body (bytes, or chunks sent one by one)."""

    def __init__(
        self,
        status: int = 200,
        body: bytes | Iterable[bytes] = b"",
        headers: dict[str, str] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.length = length  # a Content-Length to announce (default: the body's, when it is bytes)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is part of the tests, not news


class HttpStub:
    """A threaded HTTP server; ``handler(method, path, headers, body) -> Reply`` answers every request."""

    def __init__(self, handler: Callable[[str, str, dict[str, str], bytes], Reply]) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = threading.Event()  # set at close: handlers waiting on it give up
        stub = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.requests.append((self.command, self.path, headers, body))
                reply = stub.handler(self.command, self.path, headers, body)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if isinstance(reply.body, bytes):
                        self.send_header("Content-Length", str(reply.length or len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                    else:
                        if reply.length is not None:
                            self.send_header("Content-Length", str(reply.length))
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for chunk in reply.body:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                    self.close_connection = reply.length is not None or not isinstance(reply.body, bytes)
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = _QuietServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode())


def nested(depth: int, leaf: str = "1") -> str:
    """JSON nested ``depth`` arrays deep (what made json.loads raise RecursionError)."""
    return "[" * depth + leaf + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


class TokenEndpoint:
    """An OAuth client-credentials endpoint; ``mode`` picks the next answers ("ok", "hang", ...)."""

    def __init__(self, ttl: float = 3600) -> None:
        self.ttl: Any = ttl
        self.mode = "ok"
        self.issued: list[str] = []
        self.posts = 0
        self.lock = threading.Lock()

        def handle(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
            form = parse_qs(body.decode())
            with self.lock:
                self.posts += 1
                n = self.posts
            mode = self.mode
            if mode == "hang":
                self.http.release.wait()
                return Reply(503, b"")
            if mode == "nested":
                return Reply(200, nested_object(50_000).encode())
            if mode == "nested_error":
                return Reply(400, ('{"error":' + nested(50_000) + "}").encode())
            if mode == "echo_secret":
                secret = form.get("client_secret", [""])[0]
                return Reply(
                    401, json.dumps({"error": "invalid_client", "error_description": secret}).encode()
                )
            token = f"opaque-token-{n}-{os.urandom(8).hex()}"
            with self.lock:
                self.issued.append(token)
            ttl = self.ttl
            expires = ttl if isinstance(ttl, str) else json.dumps(ttl)  # a str is raw JSON text
            text = f'{{"access_token": "{token}", "token_type": "Bearer", "expires_in": {expires}}}'
            return Reply(200, text.encode())

        self.http = HttpStub(handle)
        self.token_url = self.http.url + "/oauth/v2/token"

    def close(self) -> None:
        self.http.close()


def chunks(parts: Iterable[bytes], pause: float) -> Iterator[bytes]:
    for part in parts:
        yield part
        time.sleep(pause)
