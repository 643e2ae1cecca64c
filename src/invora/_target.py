"""Target parsing: turn what users type into a gRPC ``host:port`` and decide TLS, before any network.

The client imports this module for the metadata checks of every call; ``ipaddress`` and ``urllib.parse``
(~4 ms together) load only when a target or URL is parsed, at construction.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from invora.errors import ConfigurationError

ENVIRONMENTS = {
    "production": "gateway.invora.app:443",
    "staging": "stg-gateway.invora.app:443",
}

# A pattern (compiled and cached by ``re`` on first use): only construction checks host names.
_HOST = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?"


class Target(NamedTuple):
    host: str  # without brackets for IPv6
    port: int
    scheme: str | None  # "https" / "http" when given as a URL, else None

    @property
    def address(self) -> str:
        """``host:port`` as gRPC wants it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` itself. Other names (``evil.localhost`` included) resolve
    through DNS, which may answer anything: they are not trusted with plaintext credentials."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(target: str) -> Target:
    """``host:port``, ``[v6]:port``, ``https://host[:port]`` (→ port 443) or ``http://host[:port]``.

    Anything else (a bare host, a path, another scheme, an out-of-range port) raises
    :class:`ConfigurationError` naming the accepted forms.
    """
    import ipaddress
    from urllib.parse import urlsplit

    if not isinstance(target, str) or not target.strip():
        raise ConfigurationError("target must be a non-empty 'host:port' string")
    raw = target.strip()
    hint = "expected 'host:port' (e.g. 'gateway.invora.app:443') or 'https://host'"
    if "://" in raw:
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            raise ConfigurationError(f"unsupported scheme in target {raw!r}: {hint}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(f"target {raw!r} has a path or query; gRPC targets are hosts: {hint}")
        if parts.username or parts.password:
            raise ConfigurationError(f"target must not carry credentials: {hint}")
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"invalid port in target {raw!r}: {hint}") from None
        host = parts.hostname or ""
        if not host:
            raise ConfigurationError(f"target {raw!r} has no host: {hint}")
        _check_host(host, raw, hint)
        return Target(host, port or (443 if scheme == "https" else 80), scheme)
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigurationError(f"invalid IPv6 target {raw!r}: expected '[addr]:port'")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigurationError(f"invalid IPv6 address in target {raw!r}") from None
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or not host:
            raise ConfigurationError(f"target {raw!r} has no port: {hint}")
        _check_host(host, raw, hint)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"invalid port {port_text!r} in target {raw!r}: {hint}")
    return Target(host, int(port_text), None)


def _check_host(host: str, raw: str, hint: str) -> None:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not re.fullmatch(_HOST, host) or len(host) > 253:
        raise ConfigurationError(f"invalid host {host!r} in target {raw!r}: {hint}")


_ORG_RE = re.compile(r"[\x21-\x7e]{1,256}")


def check_org_id(org_id: str) -> str:
    """Org ids go into a metadata value: printable ASCII, no whitespace, not empty."""
    if not isinstance(org_id, str) or not _ORG_RE.fullmatch(org_id):
        shown = repr(org_id) if isinstance(org_id, str) and len(org_id) < 80 else type(org_id).__name__
        raise ConfigurationError(
            f"invalid org id {shown}: must be 1-256 printable ASCII characters without whitespace"
        )
    return org_id


# Keys the SDK, HTTP or gRPC own: a caller's metadata must not set them (credentials go through
# ``credentials=``, where the plaintext rule applies; the rest would corrupt the call).
_RESERVED = frozenset(
    {"authorization", "content-type", "content-length", "user-agent", "te", "host", "connection",
     "transfer-encoding", "upgrade", "proxy-authorization", "cookie"}
)  # fmt: skip
_KEY_RE = re.compile(r"[a-z0-9_.-]+")
_VALUE_RE = re.compile(r"[\x20-\x7e]*")


def check_metadata_key(key: object, what: str = "metadata key") -> str:
    """A lower-case ASCII metadata key the caller may set; ConfigurationError naming the rule otherwise."""
    if not isinstance(key, str):
        raise ConfigurationError(f"{what} must be a string, got {type(key).__name__}")
    lowered = key.lower()
    shown = repr(key) if len(key) <= 80 else repr(key[:80]) + "…"
    if not _KEY_RE.fullmatch(lowered) or lowered.startswith(("grpc-", ":")):
        raise ConfigurationError(
            f"invalid {what} {shown}: use lower-case ASCII letters, digits, '-', '_' and '.', "
            "not starting with 'grpc-'"
        )
    if lowered in _RESERVED:
        hint = " (pass credentials= instead)" if lowered.endswith("authorization") else ""
        raise ConfigurationError(f"{what} {shown} is set by the SDK and cannot be overridden{hint}")
    return lowered


def check_metadata(pairs: object) -> tuple[tuple[str, str | bytes], ...]:
    """Caller metadata (pairs or a mapping) as a tuple; ConfigurationError before any network when a key
    or value would be refused by gRPC/HTTP (which would otherwise fail the call with INTERNAL)."""
    from collections.abc import Mapping

    items: Any = pairs.items() if isinstance(pairs, Mapping) else pairs
    out: list[tuple[str, str | bytes]] = []
    try:
        entries = [tuple(p) for p in items]
    except TypeError:
        raise ConfigurationError("metadata must be a mapping or a sequence of (key, value) pairs") from None
    for entry in entries:
        if len(entry) != 2:
            raise ConfigurationError("metadata must be a mapping or a sequence of (key, value) pairs")
        key = check_metadata_key(entry[0])
        value = entry[1]
        if key.endswith("-bin"):
            if not isinstance(value, bytes):
                raise ConfigurationError(f"metadata {key!r} ends in -bin: its value must be bytes")
        elif not isinstance(value, str) or not _VALUE_RE.fullmatch(value) or len(value) > 8192:
            raise ConfigurationError(
                f"invalid value for metadata {key!r}: printable ASCII text up to 8192 characters"
            )
        out.append((key, value))
    return tuple(out)
