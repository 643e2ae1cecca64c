"""Hostile input over real sockets: nested JSON at every parse site, echoed secrets, proxies, trickled
and oversized REST responses, and the smaller configuration traps (issue 12, items 5–9)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from _hardening import (
    GrpcStub,
    HttpStub,
    Reply,
    TokenEndpoint,
    chunks,
    ends,
    json_reply,
    nested,
    nested_object,
    record,
)
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import invora
import invora.decimal
from invora import _jose, webhooks
from invora.auth import ClientCredentials
from invora.sandbox import Sandbox

DEEP = 50_000  # far past the interpreter's recursion limit


@pytest.fixture()
def stub() -> Iterator[GrpcStub]:
    s = GrpcStub()
    yield s
    s.stop()


def _no_recursion(exc: BaseException | None) -> None:
    """Neither the error nor anything chained to it is a RecursionError."""
    seen = 0
    while exc is not None:
        assert not isinstance(exc, RecursionError), traceback.format_exception(exc)
        exc = exc.__cause__ or exc.__context__
        seen += 1
        assert seen < 20


# -- 5. nested JSON at every parse site ---------------------------------------------------------------------
RECURSION_ERRORS: list[str] = []


def _site(name: str, fn: Any, expected: type[BaseException]) -> None:
    _, error, _ = ends(fn, within=60)
    if isinstance(error, RecursionError):
        RECURSION_ERRORS.append(name)
    _no_recursion(error)
    assert isinstance(error, expected), f"{name}: {error!r}"


@pytest.mark.parametrize("body", [nested(DEEP), nested_object(DEEP)], ids=["arrays", "objects"])
def test_rest_response_and_error_bodies(body: str) -> None:
    replies = {"ok": Reply(200, body.encode()), "error": Reply(400, body.encode())}
    mode = {"now": "ok"}
    http = HttpStub(lambda *_: replies[mode["now"]])
    try:
        with invora.Client(http.url, transport="rest", retry=None) as client:
            _site("REST 200 body", lambda: client.simple.invoices.get(key="k"), invora.Internal)
            mode["now"] = "error"
            _site("REST error body", lambda: client.simple.invoices.get(key="k"), invora.InvalidArgument)
    finally:
        http.close()


@pytest.mark.parametrize("mode", ["nested", "nested_error"])
def test_token_endpoint_bodies(mode: str) -> None:
    ep = TokenEndpoint()
    ep.mode = mode
    try:
        creds = ClientCredentials("c", "secret-nested-test", ep.token_url, timeout=5)
        _site(f"token endpoint ({mode})", creds.metadata, invora.AuthenticationError)
    finally:
        ep.close()


def _b64json(text: str) -> str:
    return _jose.b64url(text.encode())


def test_webhook_jwt_header_and_payload_before_the_signature_check() -> None:
    keys = webhooks.JWKS(_jwks())
    body = b'{"webhook_type":"t","id":"1","created_at":"2026-01-01T00:00:00Z"}'
    for part in ("header", "payload"):
        header = nested_object(DEEP) if part == "header" else '{"alg":"RS256"}'
        payload = nested_object(DEEP) if part == "payload" else "{}"
        token = f"{_b64json(header)}.{_b64json(payload)}.c2ln"
        _site(
            f"webhook JWT {part}",
            lambda t=token: webhooks.verify(body, t, jwks=keys),
            webhooks.SignatureError,
        )


def test_hmac_valid_webhook_body_and_jwks_documents() -> None:
    body = nested_object(DEEP).encode()
    sig = hmac.new(b"whsec", body, hashlib.sha256).hexdigest()
    _site(
        "HMAC-valid webhook body", lambda: webhooks.verify(body, sig, secret="whsec"), webhooks.PayloadError
    )
    _site("JWKS document", lambda: webhooks.JWKS(nested_object(DEEP)), webhooks.JWKSUnavailable)


def _jwks() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"keys": [_jose.rsa_jwk(key.public_key(), "k1")]}


def test_sandbox_gateway_refuses_nested_bodies_and_tokens_with_client_errors(
    invora_sandbox: Sandbox,
) -> None:
    # REST body, unauthenticated: a 4xx, not INTERNAL.
    resp = httpx.post(
        invora_sandbox.rest_url + "/api/v1/simple/invoices",
        content=nested_object(DEEP).encode(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert 400 <= resp.status_code < 500, resp.text[:200]
    # A bearer JWT whose header is nested past the recursion limit (and fits a 16 KB metadata value):
    # UNAUTHENTICATED, not INTERNAL.
    token = f"{_b64json(nested(1200))}.{_b64json('{}')}.c2ln"
    with invora.Client(invora_sandbox.grpc_target, credentials=token, retry=None) as client:
        _site("sandbox bearer JWT", lambda: client.simple.invoices.get(key="k"), invora.Unauthenticated)


def test_request_dicts_nested_deeper_than_the_schema() -> None:
    deep: dict[str, Any] = {"key": "k"}
    for _ in range(DEEP):
        deep = {"changes": deep}
    listy: Any = []
    for _ in range(DEEP):
        listy = [listy]
    with invora.Client("127.0.0.1:1", retry=None) as client:
        _site("request dict", lambda: client.simple.invoices.create(deep), invora.ConfigurationError)
        _site(
            "request list",
            lambda: client.simple.invoices.create(changes={"lines": listy}),
            invora.ConfigurationError,
        )


def test_no_recursion_error_anywhere() -> None:
    # Runs after the parse-site tests above (file order): the figure the issue asks for.
    record("RecursionError at any parse site", len(RECURSION_ERRORS))
    assert RECURSION_ERRORS == []


# -- 6. secrets in tracebacks -------------------------------------------------------------------------------
def _formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def _echo(request: Any, context: grpc.ServicerContext) -> Any:
    auth = dict(context.invocation_metadata()).get("authorization", "")
    token = auth.partition(" ")[2]
    st = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=f"token {token} refused")
    bad = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field="auth", description=token)]
    )
    st.details.add().Pack(bad)
    context.abort_with_status(rpc_status.to_status(st))


def test_an_echoed_token_never_reaches_a_formatted_traceback(stub: GrpcStub) -> None:
    ep = TokenEndpoint()
    secret = "cs-" + "Q" * 30
    stub.handlers["Get"] = _echo
    leaks = 0
    try:
        creds = ClientCredentials("client", secret, ep.token_url)
        for credentials in (creds, "opaque-static-token-12345"):
            for client_cls in ("sync", "async"):
                error = _call_echo(stub, credentials, client_cls)
                text = _formatted(error)
                tokens = [*ep.issued, "opaque-static-token-12345"]
                leaks += sum(t in text for t in tokens) + (secret in text)
                assert isinstance(error, invora.InvalidArgument)
                assert "token *** refused" in str(error)
        ep.mode = "echo_secret"
        creds2 = ClientCredentials("client", secret + "2", ep.token_url)
        _, error, _ = ends(creds2.metadata)
        assert isinstance(error, invora.AuthenticationError)
        leaks += (secret + "2") in _formatted(error)
    finally:
        ep.close()
    record("token or secret in a formatted traceback", leaks)
    assert leaks == 0


def _call_echo(stub: GrpcStub, credentials: Any, kind: str) -> BaseException:
    import asyncio

    if kind == "sync":
        with invora.Client(stub.target, credentials=credentials, retry=None) as client:
            _, error, _ = ends(lambda: client.simple.invoices.get(key="k"))
    else:

        async def main() -> None:
            async with invora.AsyncClient(stub.target, credentials=credentials, retry=None) as client:
                await client.simple.invoices.get(key="k")

        _, error, _ = ends(lambda: asyncio.run(main()))
    assert error is not None
    return error


def test_rest_echo_and_logs_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    token = "rest-opaque-token-abcdef"

    def echo(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        return json_reply({"code": 3, "message": "got " + headers.get("authorization", "")[7:]}, 400)

    http = HttpStub(echo)
    try:
        with invora.Client(http.url, transport="rest", credentials=token, retry=None) as client:
            _, error, _ = ends(lambda: client.simple.invoices.get(key="k"))
    finally:
        http.close()
    assert isinstance(error, invora.InvalidArgument) and token not in _formatted(error)
    import logging

    with caplog.at_level(logging.ERROR, logger="invora"):
        try:
            raise RuntimeError(f"observer saw {token}")
        except RuntimeError:
            logging.getLogger("invora").exception("observer failed with %s", token)
    assert token not in caplog.text and "observer failed with ***" in caplog.text


def test_harmless_text_is_not_garbled() -> None:
    assert str(invora.Unauthenticated("missing bearer token")) == "UNAUTHENTICATED: missing bearer token"
    with pytest.raises(invora.ConfigurationError) as info:
        invora.Client("10.1.2.3:50051", tls=False, credentials="t0k3n-value")
    assert "refusing to send a bearer token over a plaintext channel" in str(info.value)


# -- 7. plaintext bearer and proxies ------------------------------------------------------------------------
class Proxy:
    """A listening socket standing in for an HTTP proxy: records whoever connects, answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture()
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    p = Proxy()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "grpc_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, p.url)
    for name in ("NO_PROXY", "no_proxy", "no_grpc_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield p
    p.close()


def test_plaintext_loopback_traffic_never_goes_through_a_proxy(proxy: Proxy, invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    creds = ClientCredentials(sb.client_id, sb.client_secret, sb.token_url)
    with invora.Client(sb.grpc_target, credentials=creds, retry=None) as client:
        list(client.simple.invoices.list(page_size=1, max_items=1))
    with invora.Client(sb.rest_url, transport="rest", credentials=creds, retry=None) as client:
        list(client.simple.invoices.list(page_size=1, max_items=1))
    assert proxy.connections == 0


def test_loopback_means_loopback_and_metadata_cannot_carry_a_bearer(stub: GrpcStub) -> None:
    with pytest.raises(invora.ConfigurationError, match="plaintext"):
        invora.Client("evil.localhost:50051", tls=False, credentials="t0k3n-value")
    with invora.Client("evil.localhost:50051", credentials="t0k3n-value") as remote:
        assert remote._settings.config.secure  # TLS by default: only real loopback is plaintext
    with pytest.raises(invora.ConfigurationError, match="credentials="):
        invora.Client("10.0.0.1:50051", tls=False, metadata={"authorization": "Bearer x"})
    with (
        invora.Client(stub.target, retry=None) as client,
        pytest.raises(invora.ConfigurationError, match="credentials="),
    ):
        client.simple.invoices.get(key="k", metadata=[("Authorization", "Bearer x")])
    assert stub.received == []


# -- 8. REST: total timeout, size cap, null body -------------------------------------------------------------
def test_a_trickled_rest_response_ends_at_the_call_timeout() -> None:
    def trickle(*_: Any) -> Reply:
        return Reply(200, chunks([b"{"] + [b" "] * 200 + [b"}"], 0.1), length=203)

    http = HttpStub(trickle)
    try:
        with invora.Client(http.url, transport="rest", retry=None) as client:
            _, error, seconds = ends(lambda: client.simple.invoices.get(key="k", timeout=1.0), within=30)
    finally:
        http.close()
    record("REST trickle, timeout=1s: seconds to end", round(seconds, 3))
    assert isinstance(error, invora.DeadlineExceeded)


async def test_async_trickle_ends_at_the_call_timeout() -> None:
    http = HttpStub(lambda *_: Reply(200, chunks([b"{"] + [b" "] * 200 + [b"}"], 0.1), length=203))
    try:
        async with invora.AsyncClient(http.url, transport="rest", retry=None) as client:
            with pytest.raises(invora.DeadlineExceeded):
                await client.simple.invoices.get(key="k", timeout=1.0)
    finally:
        http.close()


def test_oversized_and_null_rest_bodies() -> None:
    limit = 64 * 1024 * 1024  # gRPC's receive limit in this SDK; REST has the same
    replies = {
        "declared": Reply(200, b"{}", length=limit + 1),
        "streamed": Reply(200, chunks([b" " * (1 << 20)] * 65 + [b"{}"], 0.0)),
        "null": Reply(200, b"null"),
    }
    mode = {"now": "declared"}
    http = HttpStub(lambda *_: replies[mode["now"]])
    try:
        with invora.Client(http.url, transport="rest", retry=None) as client:
            for name in ("declared", "streamed"):
                mode["now"] = name
                _, error, _ = ends(lambda: client.simple.invoices.get(key="k"))
                assert isinstance(error, invora.ResourceExhausted), (name, error)
            mode["now"] = "null"
            with pytest.raises(invora.Internal, match="JSON object"):
                client.simple.invoices.get(key="k")
    finally:
        http.close()


# -- 9. smaller traps ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ttl", ['"NaN"', '"inf"', "NaN", "1e999"])
def test_a_nonsense_expires_in_never_turns_into_a_fetch_per_call(ttl: str) -> None:
    ep = TokenEndpoint(ttl=ttl)  # type: ignore[arg-type]
    try:
        creds = ClientCredentials("c", "secret-ttl-test", ep.token_url)
        outcomes = [ends(creds.metadata)[1] for _ in range(5)]
    finally:
        ep.close()
    if ttl == "NaN":  # not JSON at all: refused as such, once per call
        assert all(isinstance(e, invora.AuthenticationError) for e in outcomes)
    else:  # a string or an overflowing number: a sane lifetime, one fetch for every call
        assert outcomes == [None] * 5 and ep.posts == 1


def test_bad_metadata_and_arguments_fail_before_the_network(stub: GrpcStub) -> None:
    with invora.Client(stub.target, retry=None) as client:
        for md in (
            [("bad key", "v")],
            [("k", "line\nbreak")],
            [("k", 5)],
            [("x-bin", "text")],
            [("grpc-x", "v")],
        ):
            with pytest.raises(invora.ConfigurationError):
                client.simple.invoices.get(key="k", metadata=md)
        for method in ("no.such.method", None, 42):
            with pytest.raises(invora.ConfigurationError):
                client.invoke(method, {})  # type: ignore[arg-type]
        for timeout in ("5", math.nan, math.inf, True, -1):
            with pytest.raises(invora.ConfigurationError, match="timeout"):
                client.simple.invoices.get(key="k", timeout=timeout)  # type: ignore[arg-type]
    assert stub.received == []
    with pytest.raises(invora.ConfigurationError):
        invora.Client(stub.target, metadata={"bad key": "v"})
    for bad in ({"attempts": 2.5}, {"initial": math.nan}, {"maximum": math.inf}, {"deadline": math.nan},
                {"max_retry_delay": math.nan}, {"attempts": True}):  # fmt: skip
        with pytest.raises(invora.ConfigurationError):
            invora.Retry(**bad)
    for header in ("authorization", "Authorization", "content-type", "grpc-timeout", "x-org-bin"):
        with pytest.raises(invora.ConfigurationError):
            invora.Client(stub.target, org_header=header)


def test_the_sandbox_echoes_a_huge_key_only_in_part(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    creds = ClientCredentials(sb.client_id, sb.client_secret, sb.token_url)
    with (
        invora.Client(sb.grpc_target, credentials=creds, retry=None) as client,
        pytest.raises(invora.NotFound) as info,
    ):
        client.simple.invoices.get(key="K" * 1_000_000)
    assert len(str(info.value)) < 1000


def test_the_sandbox_enforces_nbf(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    ring = sb._keyring()
    good = sb.mint_token(sb.tenant)
    claims = json.loads(_jose.b64url_decode(good.split(".")[1]))
    claims["nbf"] = time.time() + 3600
    claims["jti"] = "nbf-test"
    early = _jose.sign_rs256(ring._key, {"alg": "RS256", "typ": "JWT", "kid": ring.kid}, claims)
    with (
        invora.Client(sb.grpc_target, credentials=early, retry=None) as client,
        pytest.raises(invora.Unauthenticated, match="nbf"),
    ):
        client.simple.invoices.get(key="k")


def _signed_webhook(claims: dict[str, Any], kid: str = "k1") -> tuple[bytes, str, webhooks.JWKS]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = b'{"webhook_type":"t","id":"1","created_at":"2026-01-01T00:00:00Z"}'
    full = {"body_sha256": hashlib.sha256(body).hexdigest(), **claims}
    token = _jose.sign_rs256(key, {"alg": "RS256", "kid": "k1"}, full)
    if kid != "k1":
        header = _jose.b64url(json.dumps({"alg": "RS256", "kid": kid}).encode())
        token = header + token[token.index(".") :]
    return body, token, webhooks.JWKS({"keys": [_jose.rsa_jwk(key.public_key(), "k1")]})


def test_webhook_jwts_without_a_usable_age_and_huge_kids() -> None:
    now = time.time()
    for claims in ({}, {"exp": now + 60}, {"iat": now, "exp": math.nan}, {"iat": now, "exp": math.inf}):
        body, token, keys = _signed_webhook(claims)
        with pytest.raises(webhooks.MalformedSignature):
            webhooks.verify(body, token, jwks=keys)
    body, token, keys = _signed_webhook({"iat": now}, kid="K" * 40_000)
    with pytest.raises(webhooks.UnknownKey) as info:
        webhooks.verify(body, token, jwks=keys)
    assert len(str(info.value)) < 500
