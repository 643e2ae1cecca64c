"""RS256 JWTs for the sandbox: one RSA key per sandbox, minting, verification with a cache, JWKS.

Written against ``cryptography`` directly (no JWT library) so the sandbox needs one optional dependency.
Verification is on the hot path of every call: a verified token is cached with its parsed claims until
it expires, so the RSA check runs once per token, not once per call.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

AUDIENCE = "invora"
ALL_SCOPES = "openid Invora.*"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class TokenError(Exception):
    """A token was refused; ``reason`` is the ErrorInfo reason (TOKEN_EXPIRED, TOKEN_INVALID…)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Claims:
    """The verified parts of a token the gateway acts on."""

    sub: str
    org_id: str
    jti: str
    exp: float
    exact_scopes: frozenset[str]
    scope_prefixes: tuple[str, ...]
    roles: frozenset[str]  # orgs the token holds roles on

    def allows(self, scope: str | None) -> bool:
        if not scope or scope in self.exact_scopes:
            return True
        return any(scope.startswith(p) for p in self.scope_prefixes)


def parse_scopes(scope: str) -> tuple[frozenset[str], tuple[str, ...]]:
    exact: set[str] = set()
    prefixes: list[str] = []
    for s in scope.split():
        if s.endswith("*"):
            prefixes.append(s[:-1])
        else:
            exact.add(s)
    return frozenset(exact), tuple(prefixes)


class KeyRing:
    """The sandbox's signing key and a cache of verified tokens."""

    def __init__(self, issuer: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer = issuer
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = self._key.public_key()
        # A second key, never published: signs the deliberately bad tokens of mint(bad_signature=True).
        self._rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self._cache: dict[str, Claims] = {}
        self._lock = threading.Lock()
        self.revoked: set[str] = set()

    def jwks(self) -> dict[str, Any]:
        nums = self._public.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _int_b64(nums.n),
                    "e": _int_b64(nums.e),
                }
            ]
        }

    def mint(
        self,
        sub: str,
        org_id: str,
        *,
        ttl: float,
        scope: str = ALL_SCOPES,
        roles: dict[str, list[str]] | None = None,
        expired: bool = False,
        bad_signature: bool = False,
    ) -> tuple[str, str]:
        """A signed JWT and its ``jti``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        exp = now - 60 if expired else now + max(1, int(ttl))
        jti = secrets.token_hex(12)
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": AUDIENCE,
            "exp": exp,
            "iat": now - 120 if expired else now,
            "jti": jti,
            "org_id": org_id,
            "roles": roles if roles is not None else {org_id: ["owner"]},
            "scope": scope,
        }
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        key = self._rogue if bad_signature else self._key
        sig = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig), jti

    def verify(self, token: str) -> Claims:
        """Claims of a valid token; :class:`TokenError` otherwise. Revocation is checked on every call."""
        claims = self._cache.get(token)
        if claims is None:
            claims = self._verify_slow(token)
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache[token] = claims
        if claims.exp <= time.time():
            raise TokenError("TOKEN_EXPIRED", "the access token has expired")
        if claims.jti in self.revoked:
            raise TokenError("TOKEN_REVOKED", "the access token has been revoked")
        return claims

    def _verify_slow(self, token: str) -> Claims:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("TOKEN_INVALID", "the access token is not a JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            payload = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            raise TokenError("TOKEN_INVALID", "the access token is not a well-formed JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise TokenError("TOKEN_INVALID", "the access token is not signed with RS256")
        if header.get("kid") not in (None, self.kid):
            raise TokenError("TOKEN_INVALID", "the access token was signed by an unknown key")
        try:
            self._public.verify(
                sig, (parts[0] + "." + parts[1]).encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise TokenError("TOKEN_INVALID", "the access token signature does not verify") from None
        if not isinstance(payload, dict):
            raise TokenError("TOKEN_INVALID", "the access token has no claims")
        aud = payload.get("aud")
        if aud != AUDIENCE and not (isinstance(aud, list) and AUDIENCE in aud):
            raise TokenError("TOKEN_INVALID", f"the access token audience is not {AUDIENCE!r}")
        if payload.get("iss") != self.issuer:
            raise TokenError("TOKEN_INVALID", "the access token was issued by another issuer")
        exp = payload.get("exp")
        org = payload.get("org_id")
        if not isinstance(exp, (int, float)) or not isinstance(org, str):
            raise TokenError("TOKEN_INVALID", "the access token lacks exp or org_id")
        exact, prefixes = parse_scopes(str(payload.get("scope", "")))
        roles = payload.get("roles")
        return Claims(
            sub=str(payload.get("sub", "")),
            org_id=org,
            jti=str(payload.get("jti", "")),
            exp=float(exp),
            exact_scopes=exact,
            scope_prefixes=prefixes,
            roles=frozenset(roles) if isinstance(roles, dict) else frozenset(),
        )
