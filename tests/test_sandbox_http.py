"""The sandbox's HTTP server at the socket level: keep-alive, bounds, raw paths, HEAD, non-blocking faults."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from invora.sandbox import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=1) as sandbox:
        yield sandbox


def _read_response(sock: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.decode().lower(): v.decode().strip() for k, _, v in (ln.partition(b":") for ln in lines)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return status, headers, rest[:length]


def _bearer(sb: Sandbox) -> str:
    return f"authorization: Bearer {sb.mint_token(sb.tenant)}\r\n"


def test_errors_keep_the_connection_alive(sb: Sandbox) -> None:
    with socket.create_connection((sb.host, sb.http_port), timeout=10) as s:
        for _ in range(3):
            s.sendall(b"GET /no/such/route HTTP/1.1\r\nhost: x\r\n\r\n")
            status, headers, body = _read_response(s)
            assert status.startswith(b"HTTP/1.1 404")
            assert headers["content-type"] == "application/json" and headers["server"] == "invora-sandbox"
            assert json.loads(body)["details"][0]["reason"] == "ROUTE_NOT_FOUND"


def test_an_oversized_body_is_refused_unread_and_the_connection_closed(sb: Sandbox) -> None:
    with socket.create_connection((sb.host, sb.http_port), timeout=10) as s:
        s.sendall(b"POST /api/v1/simple/invoices HTTP/1.1\r\nhost: x\r\ncontent-length: 999999999\r\n\r\n")
        status, headers, body = _read_response(s)
        assert status.startswith(b"HTTP/1.1 400") and headers["connection"] == "close"
        assert json.loads(body)["details"][0]["reason"] == "BODY_TOO_LARGE"
        assert s.recv(1) == b""  # closed: the unread body is never taken for a request


def test_path_bindings_are_percent_decoded_once(sb: Sandbox) -> None:
    """``a%2Fb`` is one segment whose value is ``a/b`` (the server must hand over the raw path)."""
    with socket.create_connection((sb.host, sb.http_port), timeout=10) as s:
        s.sendall(f"GET /api/v1/simple/invoices/a%2Fb HTTP/1.1\r\nhost: x\r\n{_bearer(sb)}\r\n".encode())
        status, _, body = _read_response(s)
    assert status.startswith(b"HTTP/1.1 404")
    error = json.loads(body)
    assert "a/b" in error["message"] and error["details"][0]["reason"] != "ROUTE_NOT_FOUND"


def test_head_answers_headers_only(sb: Sandbox) -> None:
    r = httpx.head(sb.rest_url + "/healthz")
    get = httpx.get(sb.rest_url + "/healthz")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(get.content)) and get.json() == {"status": "SERVING"}


def test_a_slow_token_request_does_not_hold_up_other_requests(sb: Sandbox) -> None:
    sb.inject_token_fault("slow")
    answered = threading.Event()
    form = {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}

    def slow() -> None:
        httpx.post(sb.token_url, data=form, timeout=60)
        answered.set()

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    for _ in range(1000):  # until the slow request has taken the fault (up to 10 s)
        if not sb._token_faults:
            break
        time.sleep(0.01)
    assert not sb._token_faults
    for _ in range(5):  # served while the slow request waits
        assert httpx.get(sb.rest_url + "/healthz").status_code == 200
        assert httpx.post(sb.token_url, data=form).json()["access_token"]
    assert not answered.is_set()
    sb.stop()  # stopping releases it
    t.join(10)
    assert answered.is_set()
