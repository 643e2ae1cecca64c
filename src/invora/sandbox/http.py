"""The HTTP side: OIDC discovery, the token endpoint, JWKS, and REST/JSON transcoding of every RPC.

Standard-library ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive; TLS when the sandbox has a
certificate. Errors are the JSON form of ``google.rpc.Status`` with the HTTP status of the API's table;
token endpoint errors are OAuth JSON (``{error, error_description}``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format

from invora import transcoding
from invora.errors import http_status_for
from invora.sandbox.app import OAuthError
from invora.sandbox.faults import Fault

if TYPE_CHECKING:
    from invora.sandbox.app import Sandbox

_log = logging.getLogger("invora.sandbox")
MAX_BODY = 32 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sandbox: Sandbox
    closing: threading.Event


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in one segment; no delayed-ACK stalls
    server: _Server
    server_version = "invora-sandbox"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default; never logs headers
        _log.debug("%s " + format, self.address_string(), *args)

    # -- plumbing ---------------------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, ctype: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # One write for status line, headers and body (end_headers() would flush the headers alone).
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if self.command != "HEAD":
            self._headers_buffer.append(body)  # type: ignore[attr-defined]
        self.flush_headers()

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(), headers=headers)

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise Fault(
                grpc.StatusCode.INVALID_ARGUMENT, "bad Content-Length", reason="BAD_REQUEST"
            ) from None
        if length > MAX_BODY:
            self.close_connection = True
            raise Fault(grpc.StatusCode.INVALID_ARGUMENT, "request body too large", reason="BODY_TOO_LARGE")
        return self.rfile.read(length) if length > 0 else b""

    def _fault(self, fault: Fault) -> None:
        data = json_format.MessageToDict(fault.status())
        data.setdefault("code", fault.code.value[0])
        data.setdefault("message", fault.message)
        headers = {}
        for d in fault.details:
            if d.DESCRIPTOR.full_name == "google.rpc.RetryInfo":
                delay = d.retry_delay.seconds + d.retry_delay.nanos / 1e9  # type: ignore[attr-defined]
                headers["Retry-After"] = str(max(1, int(delay + 0.999)))
        self._json(http_status_for(fault.code), data, headers)

    # -- verbs ------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, verb: str) -> None:
        self._payload = b""
        try:
            # Always consume the body first: an unread body would corrupt the next request on this
            # keep-alive connection.
            self._payload = self._body()
            path = self.path.split("?", 1)[0]
            if path == "/.well-known/openid-configuration" and verb == "GET":
                self._discovery()
            elif path == "/oauth/v2/token":
                self._token(verb)
            elif path == "/oauth/v2/keys" and verb == "GET":
                self._json(200, self.server.sandbox._keyring().jwks())
            elif path == "/healthz":
                self._json(200, {"status": "SERVING"})
            else:
                self._rest(verb)
        except Fault as f:
            self._fault(f)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            _log.exception("sandbox HTTP handler failed")
            self._fault(Fault(grpc.StatusCode.INTERNAL, f"sandbox bug: {type(exc).__name__}: {exc}"))

    # -- OIDC -------------------------------------------------------------------------------------------
    def _discovery(self) -> None:
        sb = self.server.sandbox
        base = sb.issuer
        self._json(
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

    def _oauth_error(self, status: int, error: str, description: str) -> None:
        headers = {"Cache-Control": "no-store"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="invora-sandbox"'
        self._json(status, {"error": error, "error_description": description}, headers)

    def _token(self, verb: str) -> None:
        sb = self.server.sandbox
        body = self._payload
        if verb != "POST":
            self._oauth_error(405, "invalid_request", "the token endpoint accepts POST only")
            return
        fault = sb.next_token_fault()
        if fault == "status500":
            self._json(500, {"error": "server_error", "error_description": "injected token endpoint failure"})
            return
        if fault == "garbage":
            self._send(200, b"<html><body>upstream proxy error</body></html>", "text/html")
            return
        if fault == "slow":
            self.server.closing.wait(30.0)
        ctype = self.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" not in ctype:
            self._oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
            return
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth_header = self.headers.get("Authorization", "")
        if auth_header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth_header[6:].strip()).decode("utf-8")
                cid, _, sec = raw.partition(":")
                client_id, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)
            except (ValueError, UnicodeDecodeError):
                self._oauth_error(401, "invalid_client", "malformed Basic credentials")
                return
        grant = form.get("grant_type")
        if not grant:
            self._oauth_error(400, "invalid_request", "grant_type is required")
            return
        if grant != "client_credentials":
            self._oauth_error(
                400, "unsupported_grant_type", f"grant_type {grant!r} is not supported by the sandbox"
            )
            return
        if not client_id or not secret:
            self._oauth_error(401, "invalid_client", "client_id and client_secret are required")
            return
        try:
            token, expires_in = sb.issue_token(client_id, secret)
        except OAuthError as exc:
            self._oauth_error(exc.status, exc.error, exc.description)
            return
        data: dict[str, Any] = {"token_type": "Bearer", "expires_in": expires_in}
        if fault != "no_access_token":
            data["access_token"] = token
        self._json(200, data, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # -- REST -------------------------------------------------------------------------------------------
    def _rest(self, verb: str) -> None:
        sb = self.server.sandbox
        body = self._payload
        router = transcoding.router()
        found = router.match(verb, self.path.split("?", 1)[0])
        if found is None:
            allowed = router.allowed_verbs(self.path.split("?", 1)[0])
            if allowed:
                raise Fault(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{verb} is not served on {self.path.split('?', 1)[0]} (allowed: {', '.join(allowed)})",
                    reason="METHOD_NOT_ALLOWED",
                )
            raise Fault(
                grpc.StatusCode.NOT_FOUND,
                f"no RPC is mapped to {verb} {self.path.split('?', 1)[0]}",
                reason="ROUTE_NOT_FOUND",
            )
        route, bindings = found
        entry = sb.methods[route.method.full_name]
        query = urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
        md = {k.lower(): v for k, v in self.headers.items()}
        try:
            request = transcoding.decode(route.rule, bindings, query, body, entry.info.request_class)
        except transcoding.TranscodingError as exc:
            fault = Fault(
                grpc.StatusCode.INVALID_ARGUMENT,
                str(exc),
                reason="INVALID_REQUEST",
                details=[_violation(exc.field, str(exc))] if exc.field else [],
            )
            sb.record(entry.full, None, md, fault.code, "rest")
            raise fault from None
        response = sb.dispatch(entry, request, md, "rest")
        self._json(200, transcoding.encode_response(route.rule, response))


def _violation(field: str, message: str) -> Any:
    from invora.sandbox.faults import bad_request

    return bad_request([(field, message)])


class HttpServer:
    def __init__(self, sandbox: Sandbox, host: str, port: int, tls: tuple[bytes, bytes] | None) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.sandbox = sandbox
        self._server.closing = threading.Event()
        self.tls = tls is not None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert, key = tls
            # load_cert_chain reads files only: write the PEMs to a private temporary file, then remove it.
            fd, name = tempfile.mkstemp(suffix=".pem")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(cert.rstrip(b"\n") + b"\n" + key)
                ctx.load_cert_chain(name)
            finally:
                os.unlink(name)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="sandbox-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.closing.set()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
