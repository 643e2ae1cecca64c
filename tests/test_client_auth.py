"""Credentials against a real HTTP token endpoint: caching, single flight, expiry, failures, discovery."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import grpc
import pytest

import invora
from invora.auth import ClientCredentials, StaticToken

SECRET = "s3cr3t-Value-never-shown"


class TokenEndpoint:
    """A tiny OAuth token endpoint (plus OIDC discovery) on a real loopback port."""

    def __init__(self) -> None:
        self.requests: list[dict[str, list[str]]] = []
        self.mode = "ok"
        self.ttl = 3600
        self.delay = 0.0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth/v2/token"
                    self._send(200, json.dumps({"issuer": "x", "token_endpoint": url}).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                mode = endpoint.mode
                with endpoint.lock:
                    endpoint.requests.append(form)
                    n = len(endpoint.requests)
                if mode == "status500":
                    self._send(500, b"upstream exploded")
                elif mode == "garbage":
                    self._send(200, b"<html>definitely not json</html>", "text/html")
                elif mode == "no_access_token":
                    self._send(200, json.dumps({"token_type": "Bearer", "expires_in": 10}).encode())
                elif mode == "oauth_error":
                    self._send(
                        400,
                        json.dumps({"error": "invalid_client", "error_description": "bad secret"}).encode(),
                    )
                elif mode == "echo_secret":
                    self._send(
                        401, f"client_secret={form['client_secret'][0]} rejected".encode(), "text/plain"
                    )
                else:
                    token = f"tok-{n}"
                    self._send(200, json.dumps({"access_token": token, "token_type": "Bearer",
                                                "expires_in": endpoint.ttl}).encode())  # fmt: skip

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.token_url = self.url + "/oauth/v2/token"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def endpoint() -> Iterator[TokenEndpoint]:
    ep = TokenEndpoint()
    yield ep
    ep.close()


def creds_for(ep: TokenEndpoint, **kw: Any) -> ClientCredentials:
    return ClientCredentials("client-1", SECRET, ep.token_url, **kw)


def test_fetches_once_and_caches(endpoint: TokenEndpoint) -> None:
    creds = creds_for(endpoint, scopes=("openid", "Invora.*"))
    md = creds.metadata()
    assert md == (("authorization", "Bearer tok-1"),)
    assert creds.metadata() is md and creds.cached_metadata() is md
    assert len(endpoint.requests) == 1
    form = endpoint.requests[0]
    assert form["grant_type"] == ["client_credentials"] and form["client_id"] == ["client-1"]
    assert form["client_secret"] == [SECRET] and form["scope"] == ["openid Invora.*"]
    assert SECRET not in repr(creds) and "client-1" in repr(creds)


def test_64_threads_cause_exactly_one_token_request(endpoint: TokenEndpoint) -> None:
    endpoint.delay = 0.2  # callers pile up while the first fetch is in flight
    creds = creds_for(endpoint)
    barrier = threading.Barrier(64)

    def worker() -> Any:
        barrier.wait()
        return creds.metadata()

    with futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda _: worker(), range(64)))
    assert len(endpoint.requests) == 1
    assert {r for r in results} == {(("authorization", "Bearer tok-1"),)}


async def test_200_tasks_cause_exactly_one_token_request_without_blocking_the_loop(
    endpoint: TokenEndpoint,
) -> None:
    endpoint.delay = 0.3
    creds = creds_for(endpoint)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(creds.ametadata() for _ in range(200)))
    stop.set()
    await tick_task
    assert len(endpoint.requests) == 1
    assert set(results) == {(("authorization", "Bearer tok-1"),)}
    assert ticks >= 5  # the loop kept running while the token was fetched


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch(endpoint: TokenEndpoint) -> None:
    endpoint.delay = 0.2
    creds = creds_for(endpoint)
    first = asyncio.create_task(creds.ametadata())
    second = asyncio.create_task(creds.ametadata())
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second == (("authorization", "Bearer tok-1"),)
    assert len(endpoint.requests) == 1


def test_refreshes_ahead_of_expiry(endpoint: TokenEndpoint) -> None:
    endpoint.ttl = 1  # refresh at min(buffer, ttl/2) = 0.5 s before expiry
    creds = creds_for(endpoint, refresh_buffer=60)
    assert creds.metadata()[0][1] == "Bearer tok-1"
    time.sleep(0.6)
    assert creds.metadata()[0][1] == "Bearer tok-2"
    assert creds.token_requests == 2


def test_invalidate_forces_a_new_token_once(endpoint: TokenEndpoint) -> None:
    creds = creds_for(endpoint)
    old = creds.metadata()
    creds.invalidate(old)
    new = creds.metadata()
    assert new[0][1] == "Bearer tok-2"
    creds.invalidate(old)  # a stale invalidation (another caller's) must not drop the new token
    assert creds.metadata() is new
    assert len(endpoint.requests) == 2


def test_failed_early_refresh_keeps_a_still_valid_token(endpoint: TokenEndpoint) -> None:
    creds = creds_for(endpoint)
    md = creds.metadata()
    creds._refresh_at = 0.0  # as if the refresh window had started
    endpoint.mode = "status500"
    assert creds.metadata() == md  # still valid for an hour: keep serving it
    creds.invalidate(md)  # the API refused it: now the failure must surface
    with pytest.raises(invora.AuthenticationError):
        creds.metadata()


@pytest.mark.parametrize(
    ("mode", "status", "text"),
    [
        ("status500", 500, "returned HTTP 500: upstream exploded"),
        ("garbage", 200, "non-JSON body"),
        ("no_access_token", 200, "no access_token"),
        ("oauth_error", 400, "invalid_client bad secret"),
        ("echo_secret", 401, "client_secret=*** rejected"),
    ],
)
def test_token_endpoint_failures(endpoint: TokenEndpoint, mode: str, status: int, text: str) -> None:
    endpoint.mode = mode
    creds = creds_for(endpoint)
    with pytest.raises(invora.AuthenticationError) as info:
        creds.metadata()
    err = info.value
    assert err.http_status == status and text in str(err)
    assert endpoint.token_url in str(err)
    for shown in (str(err), repr(err), err.message, str(err.__cause__), str(err.__context__)):
        assert SECRET not in shown


def test_token_endpoint_timeout_and_unreachable(endpoint: TokenEndpoint) -> None:
    endpoint.delay = 2.0
    with pytest.raises(invora.AuthenticationError, match=r"did not answer within 0\.3s") as info:
        creds_for(endpoint, timeout=0.3).metadata()
    assert info.value.http_status == 0
    endpoint.delay = 0.0
    dead = ClientCredentials("c", SECRET, "http://127.0.0.1:1/oauth/v2/token", timeout=2)
    with pytest.raises(invora.AuthenticationError, match="unreachable") as info2:
        dead.metadata()
    assert SECRET not in str(info2.value)


async def test_async_failure_reaches_every_waiter_and_next_call_retries(endpoint: TokenEndpoint) -> None:
    endpoint.mode = "status500"
    endpoint.delay = 0.1
    creds = creds_for(endpoint)
    results = await asyncio.gather(*(creds.ametadata() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, invora.AuthenticationError) for r in results)
    assert len(endpoint.requests) == 1
    endpoint.mode = "ok"
    assert (await creds.ametadata())[0][1] == "Bearer tok-2"


def test_discovery_from_issuer(endpoint: TokenEndpoint) -> None:
    creds = ClientCredentials("client-1", SECRET, issuer=endpoint.url + "/")
    assert creds.metadata()[0][1] == "Bearer tok-1"
    assert creds.token_url == endpoint.token_url
    bad = ClientCredentials("client-1", SECRET, issuer=endpoint.url + "/nope")
    with pytest.raises(invora.AuthenticationError, match="no token_endpoint"):
        bad.metadata()


def test_bad_credential_inputs_fail_before_any_network() -> None:
    with pytest.raises(invora.ConfigurationError, match="plaintext HTTP"):
        ClientCredentials("c", SECRET, "http://auth.example.com/oauth/v2/token")
    with pytest.raises(invora.ConfigurationError):
        ClientCredentials("c", "", "https://auth.example.com/token")
    with pytest.raises(invora.ConfigurationError):
        ClientCredentials("c", SECRET, "ftp://auth.example.com/token")
    with pytest.raises(invora.ConfigurationError):
        StaticToken("two words")
    assert ClientCredentials("c", SECRET).token_url == "https://auth.invora.app/oauth/v2/token"


def test_static_token() -> None:
    tok = StaticToken("Bearer pat-123")
    assert tok.metadata() == (("authorization", "Bearer pat-123"),)
    assert "pat-123" not in repr(tok) and not tok.refreshable


def test_auth_metadata_plugin_on_a_user_built_channel() -> None:
    seen: list[str] = []

    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(dict(context.invocation_metadata()).get("authorization", ""))
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("t.S", {"M": grpc.unary_unary_rpc_method_handler(handle)}),)
    )
    port = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials())
    server.start()
    try:
        call_creds = grpc.metadata_call_credentials(invora.AuthMetadataPlugin(StaticToken("pat-xyz")))
        creds = grpc.composite_channel_credentials(grpc.local_channel_credentials(), call_creds)
        with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
            channel.unary_unary("/t.S/M")(b"", timeout=5)
    finally:
        server.stop(None)
    assert seen == ["Bearer pat-xyz"]
