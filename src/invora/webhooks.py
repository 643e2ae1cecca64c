"""Verify and deduplicate Invora webhooks.

Invora signs every delivery in the ``X-Invora-Signature`` header in one of two ways:

* **HMAC** — HMAC-SHA256 of the raw body keyed with the endpoint's secret;
* **JWT** — an RS256 JWT signed with a key from Invora's JWKS and bound to the body.

:func:`verify` checks either (the header's shape says which) against the *raw* request body — parse the
JSON only afterwards, since re-serialising changes the bytes — and returns the parsed :class:`Event`.
Deliveries are at least once and unordered: keep :attr:`Event.dedup_key` (``{webhook_type}:{id}:
{created_at}``) to drop repeats (:class:`Deduplicator` does it in memory) and order by ``created_at``.

    event = invora.webhooks.verify(body, headers.get("X-Invora-Signature"), secret=endpoint_secret)

Failures are typed: :class:`SignatureError` (reject: 401), :class:`PayloadError` (signed but not an
event: 400), :class:`JWKSUnavailable` (the keys could not be fetched: answer 5xx so Invora redelivers).
No message ever contains the secret or the signature.

The JWT scheme needs the ``webhooks`` extra (``cryptography``); the HMAC scheme needs nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from invora import _jose, _json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "JWKS",
    "SIGNATURE_HEADER",
    "BadSignature",
    "Deduplicator",
    "Event",
    "ExpiredSignature",
    "JWKSUnavailable",
    "KeySet",
    "MalformedSignature",
    "MissingSignature",
    "PayloadError",
    "RemoteJWKS",
    "SignatureError",
    "UnknownKey",
    "WebhookError",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Invora-Signature"
#: Largest webhook body or JWKS document parsed (Invora's events are a few KB).
MAX_BODY = 16 * 1024 * 1024
#: Clock skew allowed on the JWT's ``exp``/``nbf``/``iat`` (seconds).
LEEWAY = 30.0


# -- errors ------------------------------------------------------------------------------------------------
class WebhookError(Exception):
    """Base of every webhook failure."""


class SignatureError(WebhookError, ValueError):
    """The delivery is not proven to come from Invora: reject it (HTTP 401)."""


class MissingSignature(SignatureError):
    """No ``X-Invora-Signature`` header."""


class MalformedSignature(SignatureError):
    """The header is neither an HMAC digest nor a JWT, or uses a scheme this receiver is not set up for."""


class BadSignature(SignatureError):
    """Well-formed, but does not match the body (wrong secret or key, or a modified body)."""


class ExpiredSignature(SignatureError):
    """A JWT outside its validity window (``exp``, ``nbf``, or ``iat`` older than the tolerance)."""


class UnknownKey(SignatureError):
    """The JWT names a key (``kid``) that is not in the key set, even after refreshing it."""


class PayloadError(WebhookError, ValueError):
    """The signature is valid but the body is not an Invora event (HTTP 400)."""


class JWKSUnavailable(WebhookError):
    """The key set could not be fetched or parsed: a receiver-side problem, answer 5xx so Invora retries."""


# -- events ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """A verified delivery. ``payload`` is the whole JSON body; ``data`` the object it is about."""

    webhook_type: str
    id: str
    created_at: str
    payload: Mapping[str, Any] = field(repr=False)

    @property
    def dedup_key(self) -> str:
        """``{webhook_type}:{id}:{created_at}`` — the same for every redelivery of one event."""
        return f"{self.webhook_type}:{self.id}:{self.created_at}"

    @property
    def object_type(self) -> str | None:
        value = self.payload.get("object_type")
        return value if isinstance(value, str) else None

    @property
    def data(self) -> Mapping[str, Any]:
        """The event's object: ``payload[object_type]`` when present, else ``payload["data"]``, else ``{}``."""
        for name in (self.object_type, "data"):
            value = self.payload.get(name) if name else None
            if isinstance(value, Mapping):
                return value
        return {}

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware datetime (for ordering: deliveries arrive in any order)."""
        return datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))

    @classmethod
    def parse(cls, body: bytes | str) -> Event:
        """The event in a body (already verified). ``id`` and ``created_at`` are read from the top level,
        or else from the object the event is about (``payload[object_type]``)."""
        try:
            payload = _json.loads(body, max_bytes=MAX_BODY, what="the webhook body")
        except ValueError as exc:
            raise PayloadError(f"webhook body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise PayloadError(f"webhook body must be a JSON object, got {type(payload).__name__}")
        obj_type = payload.get("object_type")
        obj = payload.get(obj_type) if isinstance(obj_type, str) else None
        obj = obj if isinstance(obj, dict) else {}

        def pick(name: str) -> str:
            value = payload.get(name, obj.get(name))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value:
                where = f" or in its {obj_type!r} object" if obj else ""
                raise PayloadError(f"webhook body has no {name!r} string at the top level{where}")
            return value

        webhook_type = payload.get("webhook_type")
        if not isinstance(webhook_type, str) or not webhook_type:
            raise PayloadError("webhook body has no 'webhook_type' string")
        return cls(webhook_type, pick("id"), pick("created_at"), payload)


# -- key sets ----------------------------------------------------------------------------------------------
class KeySet(Protocol):
    """Where :func:`verify` finds the public key for a JWT's ``kid`` (``None`` when it has none)."""

    def key(self, kid: str | None) -> RSAPublicKey: ...


def _parse_jwks(document: Mapping[str, Any] | str | bytes, source: str) -> dict[str, RSAPublicKey]:
    if isinstance(document, (str, bytes)):
        try:
            document = _json.loads(document, max_bytes=MAX_BODY, what=source)
        except ValueError as exc:
            raise JWKSUnavailable(f"{source} is not JSON: {exc}") from None
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise JWKSUnavailable(f'{source} is not a JWK set (expected {{"keys": [...]}})')
    out: dict[str, RSAPublicKey] = {}
    problems: list[str] = []
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, Mapping):
            problems.append(f"keys[{i}] is not an object")
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
            continue  # encryption keys and other algorithms are not ours to use
        try:
            key = _jose.rsa_public_key(jwk)
        except ValueError as exc:
            problems.append(f"keys[{i}]: {exc}")
            continue
        out[str(jwk.get("kid", ""))] = key
    if not out:
        why = "; ".join(problems) or "no RS256 signing keys"
        raise JWKSUnavailable(f"{source} has no usable key ({why})")
    return out


def _select(keys: Mapping[str, RSAPublicKey], kid: str | None) -> RSAPublicKey | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


class JWKS:
    """A fixed key set, from a JWKS document (mapping or JSON text)."""

    def __init__(self, document: Mapping[str, Any] | str | bytes) -> None:
        self._keys = _parse_jwks(document, "JWKS")

    def __repr__(self) -> str:
        return f"JWKS(kids={sorted(self._keys)!r})"

    def key(self, kid: str | None) -> RSAPublicKey:
        key = _select(self._keys, kid)
        if key is None:
            raise UnknownKey(_unknown(kid, self._keys))
        return key


def _unknown(kid: str | None, keys: Mapping[str, Any]) -> str:
    if kid is None:
        return f"the JWT has no 'kid' header and the key set holds {len(keys)} keys; cannot choose one"
    shown = repr(kid) if len(kid) <= 64 else f"{kid[:64]!r}… ({len(kid)} characters)"
    return f"the JWT was signed with key {shown}, which is not in the key set ({', '.join(sorted(keys))})"


class RemoteJWKS:
    """Invora's key set fetched over HTTPS, cached, and refreshed when it rotates.

    Keys are fetched on first use and kept for ``max_age`` seconds. A JWT with an unknown ``kid`` triggers
    one refresh (the signer may have rotated), at most once per ``min_refresh_interval`` so that forged
    ``kid`` values cannot turn the receiver into a load generator against the JWKS endpoint. Concurrent
    callers share one fetch. If a scheduled refresh fails, the cached keys stay in use.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float = 3600.0,
        min_refresh_interval: float = 30.0,
        timeout: float = 10.0,
        verify: Any = True,
    ) -> None:
        from invora.auth import _check_url

        # A tampered key set would accept forged webhooks: the keys travel over TLS except on loopback.
        _check_url(url, "the JWKS URL", "fetch webhook signing keys from")
        self.url = url
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self.verify = verify
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at = -float("inf")  # monotonic time of the last attempt
        self._lock = threading.Lock()
        self.fetches = 0  # completed HTTP requests (for diagnostics and tests)

    def __repr__(self) -> str:
        return f"RemoteJWKS({self.url!r}, kids={sorted(self._keys)!r})"

    def refresh(self) -> None:
        """Fetch the key set now (e.g. at start-up); :class:`JWKSUnavailable` if that fails."""
        with self._lock:
            self._refresh_locked()

    def key(self, kid: str | None) -> RSAPublicKey:
        keys = self._keys
        key = _select(keys, kid)
        if key is not None and time.monotonic() - self._fetched_at < self.max_age:
            return key
        with self._lock:
            age = time.monotonic() - self._fetched_at
            key = _select(self._keys, kid)
            if key is None and age >= self.min_refresh_interval:
                self._refresh_locked()
            elif key is not None and age >= self.max_age:
                try:
                    self._refresh_locked()
                except JWKSUnavailable:
                    # Stale keys beat no keys; try again after min_refresh_interval.
                    self._fetched_at = time.monotonic() - self.max_age + self.min_refresh_interval
                    return key
            key = _select(self._keys, kid)
        if key is None:
            raise UnknownKey(_unknown(kid, self._keys) + f" published at {self.url}")
        return key

    def _refresh_locked(self) -> None:
        import httpx

        from invora.auth import _ssl_verify

        self._fetched_at = time.monotonic()
        try:
            with httpx.Client(timeout=self.timeout, verify=_ssl_verify(self.verify)) as http:
                resp = http.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise JWKSUnavailable(f"fetching the JWKS at {self.url} failed: {type(exc).__name__}") from None
        self.fetches += 1
        if resp.status_code != 200:
            snippet = " ".join(resp.content[:80].decode("utf-8", "replace").split())
            raise JWKSUnavailable(f"JWKS at {self.url} returned HTTP {resp.status_code}: {snippet!r}")
        self._keys = _parse_jwks(resp.content, f"the JWKS at {self.url}")
        self._fetched_at = time.monotonic()


# -- verification ------------------------------------------------------------------------------------------
Secret = str | bytes


def sign(body: bytes, secret: Secret) -> str:
    """The HMAC ``X-Invora-Signature`` value for ``body`` (hex SHA-256) — for testing your receiver."""
    return hmac.new(_secret_bytes(secret), body, hashlib.sha256).hexdigest()


def _secret_bytes(secret: Secret) -> bytes:
    value = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not value:
        raise ValueError("the webhook secret is empty; use the endpoint secret shown when it was created")
    return value


def _digest(candidate: str) -> bytes:
    """A 32-byte digest from its hex or base64 form, optionally prefixed with ``sha256=``."""
    value = candidate.strip()
    if value.lower().startswith("sha256="):
        value = value[7:]
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    elif len(value) == 44 and value.endswith("="):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    raise MalformedSignature(
        f"{SIGNATURE_HEADER} is neither a JWT nor an HMAC-SHA256 digest (64 hex or 44 base64 characters, "
        f"optionally 'sha256='-prefixed; got {len(value)} characters)"
    )


def _verify_hmac(body: bytes, signature: str, secret: Secret | Sequence[Secret]) -> None:
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    keys = [_secret_bytes(s) for s in secrets]
    if not keys:
        raise ValueError("secret= is an empty list; pass the endpoint secret (or the current and previous)")
    digests = [_digest(part) for part in signature.split(",") if part.strip()]
    if not digests:
        raise MalformedSignature(f"{SIGNATURE_HEADER} is empty")
    expected = [hmac.new(k, body, hashlib.sha256).digest() for k in keys]
    # Compare every pair without short-circuiting, so timing says nothing about which one matched.
    ok = False
    for d in digests:
        for e in expected:
            ok |= hmac.compare_digest(d, e)
    if not ok:
        raise BadSignature(
            "the HMAC signature does not match the body: check the endpoint secret, and verify the raw "
            "request bytes (not re-serialised JSON)"
        )


def _verify_jwt(body: bytes, token: str, jwks: KeySet, tolerance: float, now: float) -> None:
    try:
        header, claims, signing_input, sig = _jose.split_jws(token)
    except ValueError as exc:
        raise MalformedSignature(f"{SIGNATURE_HEADER} is not a well-formed JWT: {exc}") from None
    alg = header.get("alg")
    if alg != "RS256":
        raise MalformedSignature(f"JWT alg must be RS256, got {alg!r}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedSignature("JWT 'kid' header must be a string")
    if not _jose.verify_rs256(jwks.key(kid), signing_input, sig):
        raise BadSignature("the JWT signature does not verify with the published key")

    def number(name: str) -> float | None:
        value = claims.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MalformedSignature(f"JWT claim {name!r} must be a number (seconds since the epoch)")
        return float(value)

    exp, nbf, iat = number("exp"), number("nbf"), number("iat")
    if iat is None:
        # Without iat the tolerance cannot apply and a captured delivery would replay forever.
        raise MalformedSignature("the JWT has no 'iat' claim: its age, and so a replay, cannot be checked")
    if exp is not None and now > exp + LEEWAY:
        raise ExpiredSignature(f"the JWT expired {now - exp:.0f}s ago")
    if nbf is not None and now < nbf - LEEWAY:
        raise ExpiredSignature(f"the JWT is not valid for another {nbf - now:.0f}s (check the clock)")
    if iat is not None and iat > now + LEEWAY:
        raise ExpiredSignature(f"the JWT was issued {iat - now:.0f}s in the future (check the clock)")
    if iat is not None and now - iat > tolerance:
        raise ExpiredSignature(f"the JWT was issued {now - iat:.0f}s ago, more than tolerance={tolerance:g}s")

    # The body is bound by its SHA-256 (`body_sha256`) or carried whole (`data`); both must hold if both are
    # present, and one must be.
    bound = False
    digest = claims.get("body_sha256")
    if digest is not None:
        if not isinstance(digest, str) or not hmac.compare_digest(
            digest.lower().encode(), hashlib.sha256(body).hexdigest().encode()
        ):
            raise BadSignature("the JWT is valid but was issued for a different body (body_sha256 differs)")
        bound = True
    data = claims.get("data")
    if data is not None:
        if not isinstance(data, str) or not hmac.compare_digest(data.encode("utf-8"), body):
            raise BadSignature("the JWT is valid but was issued for a different body (data differs)")
        bound = True
    if not bound:
        raise MalformedSignature("the JWT does not bind the body (no 'body_sha256' or 'data' claim)")


def verify(
    body: bytes | bytearray | memoryview,
    signature: str | None,
    *,
    secret: Secret | Sequence[Secret] | None = None,
    jwks: KeySet | None = None,
    tolerance: float = 300.0,
    now: float | None = None,
) -> Event:
    """Check ``signature`` (the ``X-Invora-Signature`` header) against the raw ``body``; return the event.

    ``secret`` verifies HMAC signatures; pass a list while rotating (any may match). ``jwks`` verifies
    JWT signatures (:class:`RemoteJWKS` for Invora's published keys, :class:`JWKS` for a fixed set). A JWT
    older than ``tolerance`` seconds (by ``iat``) is refused, limiting replays; HMAC signatures carry no
    time, so rely on :attr:`Event.dedup_key` for those. ``now`` (epoch seconds) is for tests.
    """
    if secret is None and jwks is None:
        raise TypeError("verify() needs secret= (HMAC), jwks= (JWT), or both")
    if isinstance(body, str):
        raise TypeError("pass the raw request body as bytes, not str (re-encoding can change it)")
    raw = bytes(body)
    if signature is None or not signature.strip():
        raise MissingSignature(f"the request has no {SIGNATURE_HEADER} header")
    signature = signature.strip()
    if signature.count(".") == 2:
        if jwks is None:
            raise MalformedSignature(
                f"{SIGNATURE_HEADER} holds a JWT but this receiver has no key set: pass "
                "jwks=invora.webhooks.RemoteJWKS(<Invora's JWKS URL>)"
            )
        _verify_jwt(raw, signature, jwks, tolerance, time.time() if now is None else now)
    else:
        if secret is None:
            raise MalformedSignature(
                f"{SIGNATURE_HEADER} holds an HMAC digest but this receiver has no secret: pass "
                "secret=<the endpoint secret>"
            )
        _verify_hmac(raw, signature, secret)
    return Event.parse(raw)


# -- deduplication -----------------------------------------------------------------------------------------
class Deduplicator:
    """Remembers recent :attr:`Event.dedup_key` values in memory, bounded in size and age (thread-safe).

    Invora redelivers for up to about 7.5 hours, so the default ``ttl`` is a day. One process only: with
    several receiver processes, keep the keys in a shared store instead (``SET key NX EX ttl`` in Redis,
    or a unique index in your database), using the same :meth:`first` / :meth:`forget` pattern.
    """

    def __init__(self, max_entries: int = 100_000, ttl: float = 86_400.0) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError("max_entries must be >= 1 and ttl > 0")
        self.max_entries = max_entries
        self.ttl = ttl
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, event: Event | str) -> bool:
        """True the first time an event is seen (and records it); False for a repeat within ``ttl``."""
        key = event.dedup_key if isinstance(event, Event) else event
        now = time.monotonic()
        with self._lock:
            seen_at = self._seen.get(key)
            if seen_at is not None and now - seen_at < self.ttl:
                return False
            self._seen[key] = now
            self._seen.move_to_end(key)
            while self._seen:
                oldest_key, oldest_at = next(iter(self._seen.items()))
                if len(self._seen) > self.max_entries or now - oldest_at >= self.ttl:
                    del self._seen[oldest_key]
                else:
                    break
            return True

    def forget(self, event: Event | str) -> None:
        """Drop a key — call it when handling failed, so that the redelivery is processed."""
        key = event.dedup_key if isinstance(event, Event) else event
        with self._lock:
            self._seen.pop(key, None)
