"""The few JOSE pieces the SDK and the sandbox share: base64url, RSA JWKs and RS256 signatures.

Written against ``cryptography`` directly: a JWT library would be a second dependency for four functions.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from invora import _json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey


#: Longest compact JWS accepted (tokens and webhook signatures are a few KB; a header line is 8 KB).
MAX_JWS = 64 * 1024


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; ``ValueError`` on anything else (including standard base64 ``+/``)."""
    if not text.isascii() or any(c in text for c in "+/= \t\r\n"):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def require_crypto() -> None:
    """Fail with the install line, not a bare ModuleNotFoundError, when ``cryptography`` is missing."""
    try:
        import cryptography  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "JWT signatures need the 'webhooks' extra (cryptography): pip install 'invora[webhooks]'",
            name="cryptography",
        ) from None


def _uint_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def rsa_jwk(key: RSAPublicKey, kid: str) -> dict[str, str]:
    """The public JWK of ``key`` for RS256 signatures."""
    nums = key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": _uint_b64(nums.n),
        "e": _uint_b64(nums.e),
    }


def rsa_public_key(jwk: Mapping[str, Any]) -> RSAPublicKey:
    """The RSA public key of a JWK; ``ValueError`` naming what is wrong with it."""
    require_crypto()
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    if jwk.get("kty") != "RSA":
        raise ValueError(f"kty is {jwk.get('kty')!r}, not 'RSA'")
    n, e = jwk.get("n"), jwk.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        raise ValueError("'n' and 'e' must be base64url strings")
    key = RSAPublicNumbers(int.from_bytes(b64url_decode(e), "big"), int.from_bytes(b64url_decode(n), "big"))
    if key.n.bit_length() < 2048:
        raise ValueError(f"RSA modulus has {key.n.bit_length()} bits; at least 2048 are required")
    return key.public_key()


def sign_rs256(key: RSAPrivateKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """A compact JWS of ``claims`` signed with RS256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = (
        b64url(json.dumps(dict(header), separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    sig = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def split_jws(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS; ``ValueError`` if malformed."""
    if len(token) > MAX_JWS:
        raise ValueError(f"a JWS of {len(token)} characters is longer than the {MAX_JWS} accepted")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError("not a compact JWS (three non-empty base64url parts separated by '.')")
    header = _json.loads(b64url_decode(parts[0]), max_bytes=MAX_JWS, max_depth=8, what="the JWS header")
    claims = _json.loads(b64url_decode(parts[1]), max_bytes=MAX_JWS, max_depth=16, what="the JWS payload")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWS header and payload must be JSON objects")
    return header, claims, (parts[0] + "." + parts[1]).encode("ascii"), b64url_decode(parts[2])


def verify_rs256(key: RSAPublicKey, signing_input: bytes, signature: bytes) -> bool:
    require_crypto()
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
