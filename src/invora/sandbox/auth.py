"""RS256 JWTs for the sandbox: one RSA key per sandbox, minting, verification with a cache, JWKS.

Written against ``cryptography`` directly (see :mod:`invora._jose`) so the sandbox needs one optional
dependency.
Verification is on the hot path of every call: a verified token is cached with its parsed claims until
it expires, so the RSA check runs once per token, not once per call.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from invora._jose import rsa_jwk, sign_rs256, split_jws, verify_rs256

AUDIENCE = "invora"
LEEWAY = 30.0  # clock skew allowed on nbf (seconds)


def _seconds(value: Any) -> bool:
    """A finite epoch time (NaN compares false with everything and would never expire)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


ALL_SCOPES = "openid Invora.*"


class TokenError(Exception):
    """A token was refused; ``reason`` is the ErrorInfo reason (TOKEN_EXPIRED, TOKEN_INVALID…)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class OAuthError(Exception):
    """The token endpoint refused a grant: ``error`` is the RFC 6749 code, ``status`` its HTTP status."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


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
        return {"keys": [rsa_jwk(self._public, self.kid)]}

    def sign_webhook(self, body: bytes, *, ttl: float = 300.0) -> str:
        """An ``X-Invora-Signature`` JWT for a webhook ``body``: RS256, bound to the body by its SHA-256."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "iat": now,
            "exp": now + int(ttl),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        return sign_rs256(self._key, {"alg": "RS256", "typ": "JWT", "kid": self.kid}, claims)

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
        key = self._rogue if bad_signature else self._key
        return sign_rs256(key, {"alg": "RS256", "typ": "JWT", "kid": self.kid}, claims), jti

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
        if token.count(".") != 2:
            raise TokenError("TOKEN_INVALID", "the access token is not a JWT")
        try:
            header, payload, signing_input, sig = split_jws(token)
        except ValueError:
            raise TokenError("TOKEN_INVALID", "the access token is not a well-formed JWT") from None
        if header.get("alg") != "RS256":
            raise TokenError("TOKEN_INVALID", "the access token is not signed with RS256")
        if header.get("kid") not in (None, self.kid):
            raise TokenError("TOKEN_INVALID", "the access token was signed by an unknown key")
        if not verify_rs256(self._public, signing_input, sig):
            raise TokenError("TOKEN_INVALID", "the access token signature does not verify")
        aud = payload.get("aud")
        if aud != AUDIENCE and not (isinstance(aud, list) and AUDIENCE in aud):
            raise TokenError("TOKEN_INVALID", f"the access token audience is not {AUDIENCE!r}")
        if payload.get("iss") != self.issuer:
            raise TokenError("TOKEN_INVALID", "the access token was issued by another issuer")
        exp = payload.get("exp")
        org = payload.get("org_id")
        if not isinstance(exp, (int, float)) or not _seconds(exp) or not isinstance(org, str):
            raise TokenError("TOKEN_INVALID", "the access token lacks exp or org_id")
        nbf = payload.get("nbf")
        if nbf is not None and (not _seconds(nbf) or nbf > time.time() + LEEWAY):
            raise TokenError("TOKEN_INVALID", "the access token is not valid yet (nbf)")
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
