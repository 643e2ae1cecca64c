"""Webhook verification with real keys: HMAC, RS256 JWTs against a JWKS served over a real socket, the
sandbox as signer, and the example receiver run as a subprocess."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from invora import _jose, webhooks
from invora.webhooks import (
    JWKS,
    BadSignature,
    Deduplicator,
    Event,
    ExpiredSignature,
    JWKSUnavailable,
    MalformedSignature,
    MissingSignature,
    PayloadError,
    RemoteJWKS,
    SignatureError,
    UnknownKey,
    verify,
)

SECRET = "whsec_test_5b1f0c7e9a"
BODY = json.dumps(
    {
        "webhook_type": "invoice.created",
        "object_type": "invoice",
        "invoice": {"id": "inv_1", "created_at": "2026-11-28T10:00:00Z", "total": "862.50"},
    }
).encode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_A, KEY_B = rsa_key(), rsa_key()


def jwk_set(*pairs: tuple[rsa.RSAPrivateKey, str]) -> dict[str, Any]:
    return {"keys": [_jose.rsa_jwk(k.public_key(), kid) for k, kid in pairs]}


def jwt(
    key: rsa.RSAPrivateKey = KEY_A,
    kid: str | None = "a",
    body: bytes = BODY,
    alg: str = "RS256",
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": "https://issuer.test", "iat": now, "exp": now + 300}
    payload["body_sha256"] = hashlib.sha256(body).hexdigest()
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return _jose.sign_rs256(key, header, payload)


def raises(exc: type[Exception], *args: Any, **kwargs: Any) -> str:
    with pytest.raises(exc) as info:
        verify(*args, **kwargs)
    message = str(info.value)
    assert SECRET not in message
    return message


# -- HMAC ------------------------------------------------------------------------------------------------
def test_hmac_accepts_hex_prefixed_and_base64_forms() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    assert webhooks.sign(BODY, SECRET) == digest.hex()
    for form in (
        digest.hex(),
        digest.hex().upper(),
        "sha256=" + digest.hex(),
        base64.b64encode(digest).decode(),
    ):
        event = verify(BODY, form, secret=SECRET)
        assert event.dedup_key == "invoice.created:inv_1:2026-11-28T10:00:00Z"
    assert verify(bytearray(BODY), f"  {digest.hex()}  ", secret=SECRET.encode()).id == "inv_1"


def test_hmac_rotation_any_secret_and_any_listed_signature() -> None:
    old, new = "whsec_old_value_1", "whsec_new_value_2"
    assert verify(BODY, webhooks.sign(BODY, old), secret=[new, old]).id == "inv_1"
    header = f"{webhooks.sign(BODY, 'some_other')},{webhooks.sign(BODY, new)}"
    assert verify(BODY, header, secret=new).id == "inv_1"


def test_hmac_rejects_wrong_secret_and_modified_body() -> None:
    good = webhooks.sign(BODY, SECRET)
    msg = raises(BadSignature, BODY, webhooks.sign(BODY, "whsec_wrong"), secret=SECRET)
    assert "raw request bytes" in msg
    raises(BadSignature, BODY.replace(b"862.50", b"0.01"), good, secret=SECRET)
    raises(BadSignature, BODY, good, secret=[SECRET + "x"])


@pytest.mark.parametrize(
    "header", ["deadbeef", "z" * 64, "sha256=" + "0" * 63, "t=123,v1=abc", "a.b", "%%%", "=" * 44, ","]
)
def test_hmac_malformed_header(header: str) -> None:
    msg = raises(MalformedSignature, BODY, header, secret=SECRET)
    assert header not in msg or len(header) < 4


def test_missing_signature_and_misuse() -> None:
    for header in (None, "", "   "):
        assert "X-Invora-Signature" in raises(MissingSignature, BODY, header, secret=SECRET)
    with pytest.raises(TypeError, match=r"secret=.*jwks="):
        verify(BODY, "x")
    with pytest.raises(TypeError, match="bytes"):
        verify(BODY.decode(), webhooks.sign(BODY, SECRET), secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        verify(BODY, webhooks.sign(BODY, SECRET), secret="")
    # The scheme the header uses must be configured, and the error says how.
    assert "jwks=" in raises(MalformedSignature, BODY, jwt(), secret=SECRET)
    assert "secret=" in raises(
        MalformedSignature, BODY, webhooks.sign(BODY, SECRET), jwks=JWKS(jwk_set((KEY_A, "a")))
    )


def test_reachable_as_invora_webhooks_after_a_plain_import() -> None:
    code = (
        "import sys, invora\n"
        "assert 'invora.webhooks' not in sys.modules and 'cryptography' not in sys.modules\n"
        'body = b\'{"webhook_type": "a.b", "id": "1", "created_at": "t"}\'\n'
        "print(invora.webhooks.verify(body, invora.webhooks.sign(body, 's'), secret='s').dedup_key)\n"
        "assert 'cryptography' not in sys.modules  # HMAC needs no crypto library\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "a.b:1:t", r.stderr


def test_errors_are_value_errors_but_jwks_unavailable_is_not() -> None:
    assert issubclass(SignatureError, ValueError) and issubclass(PayloadError, ValueError)
    assert not issubclass(JWKSUnavailable, ValueError)  # a receiver-side outage, not a bad request


# -- JWT ---------------------------------------------------------------------------------------------------
KEYS = JWKS(jwk_set((KEY_A, "a"), (KEY_B, "b")))


def test_jwt_valid_with_either_key_and_either_body_binding() -> None:
    assert verify(BODY, jwt(), jwks=KEYS).id == "inv_1"
    assert verify(BODY, jwt(KEY_B, "b"), jwks=KEYS).id == "inv_1"
    # The body carried whole in `data` instead of its hash.
    assert verify(BODY, jwt(body_sha256=None, data=BODY.decode()), jwks=KEYS).id == "inv_1"
    # No exp: the age check (iat + tolerance) still bounds replays.
    assert verify(BODY, jwt(exp=None), jwks=KEYS).id == "inv_1"
    # A single-key set needs no kid.
    assert verify(BODY, jwt(kid=None), jwks=JWKS(jwk_set((KEY_A, "a")))).id == "inv_1"


def test_jwt_signature_and_binding_failures() -> None:
    raises(BadSignature, BODY, jwt(KEY_B, "a"), jwks=KEYS)  # signed with b, claims a
    other = b'{"webhook_type":"invoice.created","id":"x","created_at":"2026-01-01T00:00:00Z"}'
    assert "different body" in raises(BadSignature, other, jwt(), jwks=KEYS)
    raises(BadSignature, other, jwt(body_sha256=None, data=BODY.decode()), jwks=KEYS)
    raises(BadSignature, other, jwt(data=other.decode()), jwks=KEYS)  # both present: both must hold
    assert "bind" in raises(MalformedSignature, BODY, jwt(body_sha256=None), jwks=KEYS)
    # A payload swapped under a valid signature.
    h, _, s = jwt().split(".")
    forged = _jose.b64url(json.dumps({"body_sha256": hashlib.sha256(other).hexdigest()}).encode())
    raises(BadSignature, other, f"{h}.{forged}.{s}", jwks=KEYS)


def test_jwt_algorithm_confusion_is_refused() -> None:
    def unsigned(header: dict[str, Any], signature: bytes) -> str:
        claims = {"body_sha256": hashlib.sha256(BODY).hexdigest(), "iat": int(time.time())}
        h = _jose.b64url(json.dumps(header).encode())
        c = _jose.b64url(json.dumps(claims).encode())
        return f"{h}.{c}.{_jose.b64url(signature) or 'AA'}"

    assert "RS256" in raises(MalformedSignature, BODY, unsigned({"alg": "none", "kid": "a"}, b""), jwks=KEYS)
    # HS256 keyed with the public JWK's text: the classic confusion attack.
    token = unsigned({"alg": "HS256", "kid": "a"}, b"")
    h, c, _ = token.split(".")
    mac = hmac.new(json.dumps(jwk_set((KEY_A, "a"))).encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    raises(MalformedSignature, BODY, f"{h}.{c}.{_jose.b64url(mac)}", jwks=KEYS)


def test_jwt_time_window() -> None:
    now = time.time()
    assert "expired" in raises(ExpiredSignature, BODY, jwt(exp=int(now) - 120), jwks=KEYS)
    assert verify(BODY, jwt(exp=int(now) - 10), jwks=KEYS)  # inside the clock-skew leeway
    assert "tolerance" in raises(ExpiredSignature, BODY, jwt(iat=int(now) - 400, exp=None), jwks=KEYS)
    assert verify(BODY, jwt(iat=int(now) - 400, exp=None), jwks=KEYS, tolerance=600)
    assert "future" in raises(ExpiredSignature, BODY, jwt(iat=int(now) + 600), jwks=KEYS)
    assert "not valid" in raises(ExpiredSignature, BODY, jwt(nbf=int(now) + 600), jwks=KEYS)
    # `now` pins the clock for replaying recorded deliveries in tests.
    assert verify(BODY, jwt(iat=1_700_000_000, exp=1_700_000_300), jwks=KEYS, now=1_700_000_100)
    raises(MalformedSignature, BODY, jwt(exp="tomorrow"), jwks=KEYS)


@pytest.mark.parametrize("token", ["a.b.c", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.W10.AA", "x+y.e30.AA"])
def test_jwt_malformed(token: str) -> None:
    raises(MalformedSignature, BODY, token, jwks=KEYS)


def test_unknown_kid_and_ambiguous_key() -> None:
    msg = raises(UnknownKey, BODY, jwt(kid="zz"), jwks=KEYS)
    assert "'zz'" in msg and "a, b" in msg
    assert "no 'kid'" in raises(UnknownKey, BODY, jwt(kid=None), jwks=KEYS)


def test_jwks_documents_are_checked() -> None:
    assert repr(JWKS(json.dumps(jwk_set((KEY_A, "a"))))) == "JWKS(kids=['a'])"
    with pytest.raises(JWKSUnavailable, match="not JSON"):
        JWKS("<html>")
    with pytest.raises(JWKSUnavailable, match="keys"):
        JWKS({"kty": "RSA"})
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(JWKSUnavailable, match="2048"):
        JWKS(jwk_set((weak, "w")))
    enc = {**_jose.rsa_jwk(KEY_B.public_key(), "enc"), "use": "enc"}
    keys = JWKS({"keys": [enc, _jose.rsa_jwk(KEY_A.public_key(), "a"), {"kty": "EC", "kid": "ec"}]})
    assert repr(keys) == "JWKS(kids=['a'])"  # encryption and non-RSA keys are ignored, not fatal


# -- RemoteJWKS over a real socket ---------------------------------------------------------------------------
class JWKSServer:
    """Serves a JWK set it can change, counts requests, and can fail on demand."""

    def __init__(self) -> None:
        self.document: Any = jwk_set((KEY_A, "a"))
        self.status = 200
        self.hits = 0
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                time.sleep(outer.delay)
                doc = outer.document
                data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server.socket.fileno() != -1:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.close()


def test_remote_jwks_fetches_once_and_caches(jwks_server: JWKSServer) -> None:
    keys = RemoteJWKS(jwks_server.url)
    jwks_server.delay = 0.2  # so that the threads below overlap the first fetch
    results: list[Any] = []

    def work() -> None:
        results.append(verify(BODY, jwt(), jwks=keys).id)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["inv_1"] * 16
    for _ in range(50):
        verify(BODY, jwt(), jwks=keys)
    assert jwks_server.hits == 1 and keys.fetches == 1


def test_remote_jwks_follows_rotation_but_rate_limits_unknown_kids(jwks_server: JWKSServer) -> None:
    keys = RemoteJWKS(jwks_server.url, min_refresh_interval=1.0)
    forged = [jwt(kid=f"forged{i}") for i in range(20)]
    verify(BODY, jwt(), jwks=keys)
    jwks_server.document = jwk_set((KEY_A, "a"), (KEY_B, "b"))  # the signer rotates in key b
    time.sleep(1.1)
    assert verify(BODY, jwt(KEY_B, "b"), jwks=keys).id == "inv_1"  # unknown kid -> one refresh
    assert jwks_server.hits == 2
    # A stream of forged kids costs at most one fetch per interval.
    for token in forged:
        raises(UnknownKey, BODY, token, jwks=keys)
    assert jwks_server.hits == 2
    time.sleep(1.1)
    for token in forged:
        raises(UnknownKey, BODY, token, jwks=keys)
    assert jwks_server.hits == 3
    assert verify(BODY, jwt(), jwks=keys).id == "inv_1"  # known keys never wait for the limiter


def test_remote_jwks_outages(jwks_server: JWKSServer) -> None:
    jwks_server.status, jwks_server.document = 502, b"<html>Bad Gateway</html>"
    msg = raises(JWKSUnavailable, BODY, jwt(), jwks=RemoteJWKS(jwks_server.url))
    assert "HTTP 502" in msg and "Bad Gateway" in msg
    jwks_server.status, jwks_server.document = 200, b"not json"
    with pytest.raises(JWKSUnavailable, match="not JSON"):
        RemoteJWKS(jwks_server.url).refresh()
    # Once keys are known, a failing scheduled refresh keeps them in use.
    jwks_server.document = jwk_set((KEY_A, "a"))
    keys = RemoteJWKS(jwks_server.url, max_age=0.2, min_refresh_interval=0.1)
    keys.refresh()
    jwks_server.status = 500
    time.sleep(0.3)
    assert verify(BODY, jwt(), jwks=keys).id == "inv_1"
    assert jwks_server.hits == 4  # 502, not json, first refresh, failed scheduled refresh
    # Nothing listens: a clear error, quickly.
    jwks_server.close()
    with pytest.raises(JWKSUnavailable, match="ConnectError"):
        RemoteJWKS(jwks_server.url, timeout=2).refresh()


def test_remote_jwks_url_must_be_https_off_loopback() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        RemoteJWKS("http://keys.example.com/jwks")
    with pytest.raises(ValueError, match="http"):
        RemoteJWKS("ftp://keys.example.com/jwks")
    assert RemoteJWKS("https://keys.example.com/jwks").url.startswith("https://")


def test_the_sandbox_signs_webhooks_with_its_published_key(invora_sandbox: Any) -> None:
    keys = RemoteJWKS(invora_sandbox.jwks_url)
    assert verify(BODY, invora_sandbox.sign_webhook(BODY), jwks=keys).id == "inv_1"
    raises(BadSignature, BODY + b" ", invora_sandbox.sign_webhook(BODY), jwks=keys)
    assert keys.fetches == 1


# -- events and deduplication --------------------------------------------------------------------------------
def test_event_parsing() -> None:
    e = Event.parse(
        b'{"webhook_type":"usage.alert","id":42,"created_at":"2026-11-28T10:00:00+03:00","data":{"a":1}}'
    )
    assert (e.id, e.object_type, dict(e.data)) == ("42", None, {"a": 1})
    assert e.created.utcoffset() is not None and e.created.hour == 10
    assert "payload" not in repr(e)
    e = Event.parse(BODY)
    assert e.object_type == "invoice" and e.data["total"] == "862.50" and e.created.tzinfo is not None
    for body, fragment in [
        (b"[1]", "JSON object"),
        (b"{oops", "not JSON"),
        (b'{"id":"1","created_at":"t"}', "webhook_type"),
        (b'{"webhook_type":"a.b","created_at":"t"}', "'id'"),
        (
            b'{"webhook_type":"a.b","object_type":"plan","plan":{"id":"p"}}',
            "'created_at' string at the top level or in its 'plan'",
        ),
    ]:
        with pytest.raises(PayloadError, match=fragment):
            Event.parse(body)
    # Signed but not an event: a PayloadError, after the signature check passed.
    with pytest.raises(PayloadError):
        verify(b"{}", webhooks.sign(b"{}", SECRET), secret=SECRET)


def test_deduplicator() -> None:
    d = Deduplicator(max_entries=3)
    event = verify(BODY, webhooks.sign(BODY, SECRET), secret=SECRET)
    assert d.first(event) and not d.first(event) and not d.first(event.dedup_key)
    d.forget(event)
    assert d.first(event)
    for key in ("k1", "k2", "k3"):
        assert d.first(key)
    assert len(d) == 3 and d.first(event)  # the oldest was evicted
    short = Deduplicator(ttl=1.0)
    assert short.first("k") and not short.first("k")
    time.sleep(1.1)
    assert short.first("k")
    with pytest.raises(ValueError):
        Deduplicator(max_entries=0)


def test_deduplicator_is_thread_safe() -> None:
    d = Deduplicator()
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        wins.extend(d.first(f"key{i}") for i in range(500))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 500 and len(wins) == 4000


# -- the example receiver, end to end --------------------------------------------------------------------------
RECEIVER = Path(__file__).resolve().parent.parent / "examples" / "webhook_receiver.py"


class Receiver:
    def __init__(self, env: Mapping[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
        self.proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", "0"], env={**base, **env}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else ""
        self.url = json.loads(line)["url"]

    def post(self, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Invora-Signature"] = signature
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> tuple[str, str]:
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=10)
        return out, err


def test_example_receiver_end_to_end(invora_sandbox: Any) -> None:
    receiver = Receiver(
        {"INVORA_WEBHOOK_SECRET": f"whsec_old,{SECRET}", "INVORA_WEBHOOK_JWKS_URL": invora_sandbox.jwks_url}
    )
    try:
        assert receiver.post(BODY, webhooks.sign(BODY, SECRET)) == (200, {"duplicate": False})
        assert receiver.post(BODY, webhooks.sign(BODY, "whsec_old")) == (200, {"duplicate": True})
        assert receiver.post(BODY, invora_sandbox.sign_webhook(BODY)) == (200, {"duplicate": True})
        other = BODY.replace(b"inv_1", b"inv_2")
        assert receiver.post(other, invora_sandbox.sign_webhook(other)) == (200, {"duplicate": False})
        status, answer = receiver.post(BODY, None)
        assert (status, answer["error"]) == (401, "MissingSignature")
        status, answer = receiver.post(other, webhooks.sign(BODY, SECRET))
        assert (status, answer["error"]) == (401, "BadSignature")
        status, answer = receiver.post(other, invora_sandbox.sign_webhook(BODY))
        assert (status, answer["error"]) == (401, "BadSignature")
        status, answer = receiver.post(b"{}", webhooks.sign(b"{}", SECRET))
        assert (status, answer["error"]) == (400, "PayloadError")
    finally:
        out, err = receiver.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["dedup_key"] for line in lines] == [
        "invoice.created:inv_1:2026-11-28T10:00:00Z",
        "invoice.created:inv_2:2026-11-28T10:00:00Z",
    ]
    assert lines[0]["object"]["total"] == "862.50"
    assert SECRET not in out + err and "Traceback" not in err


def test_example_receiver_answers_503_when_keys_cannot_be_fetched() -> None:
    dead = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{dead.server_address[1]}/keys"
    dead.server_close()  # nothing listens there now
    receiver = Receiver({"INVORA_WEBHOOK_JWKS_URL": url})
    try:
        status, answer = receiver.post(BODY, jwt())
        assert (status, answer) == (503, {"error": "JWKSUnavailable"})
        status, answer = receiver.post(BODY, webhooks.sign(BODY, SECRET))
        assert (status, answer["error"]) == (401, "MalformedSignature")  # HMAC not configured here
    finally:
        _, err = receiver.stop()
    assert "cannot verify" in err and "Traceback" not in err
