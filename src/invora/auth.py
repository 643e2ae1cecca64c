"""Credentials: where the bearer token of every call comes from.

:class:`ClientCredentials` runs the OAuth2 ``client_credentials`` grant against the OIDC token endpoint
and caches the token on the monotonic clock, refreshing ``min(refresh_buffer, ttl / 2)`` before expiry.

Fetches are single-flight: one background thread talks to the endpoint and every caller that needs its
result — threads and asyncio tasks of any loop alike — waits on the same future. While the cached token
is still valid, a due refresh never blocks anyone: callers keep using the cached token and the flight
runs behind them. Callers that have no valid token wait for the flight at most ``timeout`` seconds, and
when it fails they all get its error: a hanging or failing endpoint costs each caller one timeout at
most, never a queue of serial attempts.

Credentials hand out ready-made metadata tuples (``(("authorization", "Bearer …"),)``); the client adds
them to each call directly, which is much cheaper than gRPC call credentials under concurrency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import grpc

from invora._target import is_loopback
from invora.errors import AuthenticationError, ConfigurationError, register_secret

__all__ = [
    "DEFAULT_TOKEN_URL",
    "AuthMetadataPlugin",
    "ClientCredentials",
    "Credentials",
    "StaticToken",
]

DEFAULT_TOKEN_URL = "https://auth.invora.app/oauth/v2/token"
_MAX_BODY = 1024 * 1024  # a token response or discovery document is a few hundred bytes
AuthMetadata = tuple[tuple[str, str], ...]


class Credentials(ABC):
    """Source of the ``authorization`` metadata of each call."""

    #: Whether :meth:`invalidate` + a new fetch can produce a different token (retry once on 401).
    refreshable: bool = False

    @abstractmethod
    def metadata(self) -> AuthMetadata:
        """The metadata for a call now; may block while fetching a token."""

    async def ametadata(self) -> AuthMetadata:
        """Like :meth:`metadata` without blocking the running event loop."""
        return self.metadata()

    def cached_metadata(self) -> AuthMetadata | None:
        """The metadata if usable without any I/O, else None (the hot path of the async client)."""
        return self.metadata()

    def invalidate(self, metadata: AuthMetadata) -> None:  # noqa: B027 — optional hook
        """The server refused ``metadata``: drop it so the next call fetches a fresh token."""

    def close(self) -> None:  # noqa: B027 — optional hook
        """Release resources (nothing by default)."""


def _bearer(token: str) -> AuthMetadata:
    return (("authorization", "Bearer " + token),)


class StaticToken(Credentials):
    """A fixed bearer token, e.g. a personal access token (development only)."""

    def __init__(self, token: str) -> None:
        if not isinstance(token, str):
            raise ConfigurationError("StaticToken needs a string token")
        token = token.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise ConfigurationError("StaticToken: the token must be non-empty printable ASCII")
        register_secret(token)
        self._md = _bearer(token)

    def metadata(self) -> AuthMetadata:
        return self._md

    def cached_metadata(self) -> AuthMetadata | None:
        return self._md

    def __repr__(self) -> str:
        return "StaticToken(***)"


class ClientCredentials(Credentials):
    """OAuth2 client-credentials grant with caching, early refresh and single-flight fetching.

    ``token_url`` defaults to Invora's endpoint; with ``issuer=`` the endpoint is discovered from
    ``{issuer}/.well-known/openid-configuration`` on first use. ``verify`` is ``True`` (system roots),
    ``False``, a CA bundle path, CA PEM bytes or an ``ssl.SSLContext``. ``timeout`` bounds each HTTP exchange.
    """

    refreshable = True

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token_url: str | None = None,
        *,
        issuer: str | None = None,
        scopes: Sequence[str] = ("openid",),
        refresh_buffer: float = 60.0,
        timeout: float = 10.0,
        verify: Any = True,
        extra_params: dict[str, str] | None = None,
    ) -> None:
        if not client_id or not isinstance(client_id, str):
            raise ConfigurationError("ClientCredentials needs a client_id")
        if not client_secret or not isinstance(client_secret, str):
            raise ConfigurationError("ClientCredentials needs a client_secret")
        if token_url and issuer:
            raise ConfigurationError("pass token_url or issuer, not both")
        if isinstance(scopes, str):
            scopes = scopes.split()
        self.client_id = client_id
        self.__secret = client_secret
        register_secret(client_secret)
        self.issuer = issuer.rstrip("/") if issuer else None
        self._token_url = token_url or (None if issuer else DEFAULT_TOKEN_URL)
        for url in (self._token_url, self.issuer):
            if url:
                _check_url(url)
        self.scopes = tuple(scopes)
        for name, value in (("refresh_buffer", refresh_buffer), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigurationError(
                    f"ClientCredentials {name} must be a number of seconds, got {value!r}"
                )
        if timeout <= 0 or refresh_buffer < 0:
            raise ConfigurationError("ClientCredentials needs timeout > 0 and refresh_buffer >= 0")
        self.refresh_buffer = float(refresh_buffer)
        self.timeout = float(timeout)
        self.verify = verify
        self._extra = dict(extra_params or {})
        self._lock = threading.Lock()
        self._md: AuthMetadata | None = None
        self._refresh_at = 0.0  # monotonic time after which the cached token is refreshed
        self._expires_at = 0.0  # monotonic time after which it is unusable
        self._flight: concurrent.futures.Future[AuthMetadata] | None = None
        self.token_requests = 0  # successful grants (for diagnostics and tests)
        _LIVE.add(self)

    def _after_fork_in_child(self) -> None:
        # A lock held by another thread at fork time would stay locked forever in the child, and the
        # flight's thread does not exist there.
        self._lock = threading.Lock()
        self._flight = None

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(client_id={self.client_id!r}, token_url={self._token_url or self.issuer!r})"
        )

    # -- the hot path ---------------------------------------------------------------------------------
    def metadata(self) -> AuthMetadata:
        md = self._md
        if md is not None and time.monotonic() < self._refresh_at:
            return md
        md, flight = self._due()
        if flight is None:
            return md  # type: ignore[return-value]  # still valid; a refresh may run behind
        try:
            return flight.result(self.timeout)
        except concurrent.futures.TimeoutError:
            raise self._timed_out() from None

    def cached_metadata(self) -> AuthMetadata | None:
        md = self._md
        if md is not None and time.monotonic() < self._refresh_at:
            return md
        return None

    async def ametadata(self) -> AuthMetadata:
        md = self.cached_metadata()
        if md is not None:
            return md
        md, flight = self._due()
        if flight is None:
            return md  # type: ignore[return-value]
        waiter = asyncio.wrap_future(flight)
        waiter.add_done_callback(_retrieved)  # a caller that gave up leaves no unretrieved exception
        try:
            # shield: a cancelled caller must not cancel the flight others wait for
            return await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except asyncio.TimeoutError:
            raise self._timed_out() from None

    def invalidate(self, metadata: AuthMetadata) -> None:
        with self._lock:
            if self._md is metadata or self._md == metadata:
                self._md = None
                self._refresh_at = self._expires_at = 0.0

    # -- the flight -----------------------------------------------------------------------------------
    def _due(self) -> tuple[AuthMetadata | None, concurrent.futures.Future[AuthMetadata] | None]:
        """``(cached token, None)`` while it is valid — a due refresh is then started in the background
        and the caller goes on with it — else ``(None, the flight to wait for)``, started if needed."""
        with self._lock:
            now = time.monotonic()
            md = self._md
            if md is not None and now < self._refresh_at:
                return md, None
            flight = self._flight
            if flight is None:
                flight = self._flight = concurrent.futures.Future()
                flight.set_running_or_notify_cancel()  # never cancellable: many callers share it
                threading.Thread(target=self._fly, args=(flight,), name="invora-token", daemon=True).start()
            if md is not None and now < self._expires_at - 1.0:
                return md, None
            return None, flight

    def _fly(self, flight: concurrent.futures.Future[AuthMetadata]) -> None:
        try:
            token, ttl = self._fetch(self.token_url)
        except BaseException as exc:
            with self._lock:
                self._flight = None
                now = time.monotonic()
                if self._md is not None and now < self._expires_at - 1.0:
                    # An early refresh failed but the token is still valid: keep it, try again soon.
                    self._refresh_at = now + min(5.0, (self._expires_at - now) / 2)
            flight.set_exception(exc if isinstance(exc, Exception) else AuthenticationError(repr(exc)))
            return
        register_secret(token)
        md = _bearer(token)
        with self._lock:
            now = time.monotonic()
            self._md = md
            self._expires_at = now + ttl
            self._refresh_at = now + ttl - min(self.refresh_buffer, ttl / 2)
            self.token_requests += 1
            self._flight = None
        flight.set_result(md)

    def _timed_out(self) -> AuthenticationError:
        return AuthenticationError(
            f"token endpoint {self._token_url or self.issuer} did not answer within {self.timeout:g}s",
            http_status=0,
        )

    # -- fetching -------------------------------------------------------------------------------------
    @property
    def token_url(self) -> str:
        """The token endpoint (runs discovery on first use when only ``issuer`` was given)."""
        if self._token_url is None:
            with self._lock:
                url = self._token_url
            if url is None:
                url = self._discover()
                with self._lock:
                    self._token_url = url
        return self._token_url

    def _http(self, url: str) -> Any:
        from urllib.parse import urlsplit

        import httpx

        # trust_env off for plaintext (loopback) URLs: an HTTP_PROXY would receive the secret in clear.
        return httpx.Client(
            timeout=self.timeout,
            verify=_ssl_verify(self.verify),
            follow_redirects=False,
            trust_env=urlsplit(url).scheme == "https",
        )

    def _fetch(self, url: str) -> tuple[str, float]:
        import httpx

        form = {"grant_type": "client_credentials", "client_id": self.client_id}
        form["client_secret"] = self.__secret
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        form.update(self._extra)
        try:
            with self._http(url) as http:
                resp = http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.TimeoutException:
            raise AuthenticationError(
                f"token endpoint {url} did not answer within {self.timeout:g}s", http_status=0
            ) from None
        except httpx.HTTPError as exc:
            raise AuthenticationError(
                f"token endpoint {url} unreachable: {self._scrub(f'{type(exc).__name__}: {exc}')}",
                http_status=0,
            ) from None
        return self._parse(url, resp.status_code, resp.headers.get("content-type", ""), resp.content)

    def _parse(self, url: str, status: int, ctype: str, body: bytes) -> tuple[str, float]:
        from invora import _json  # (like httpx and urllib.parse) loaded by the first token fetch

        try:
            data = _json.loads(body, max_bytes=_MAX_BODY, what="the token response") if body else None
        except ValueError:
            data = None
        if status >= 400:
            detail = ""
            if isinstance(data, dict) and ("error" in data or "error_description" in data):
                detail = ": " + " ".join(
                    str(data[k]) for k in ("error", "error_description") if data.get(k) is not None
                )
            elif body:
                detail = ": " + " ".join(body[:120].decode("utf-8", "replace").split())
            raise AuthenticationError(
                f"token endpoint {url} returned HTTP {status}{self._scrub(detail)}", http_status=status
            )
        if not isinstance(data, dict):
            snippet = " ".join(body[:60].decode("utf-8", "replace").split())
            raise AuthenticationError(
                f"token endpoint {url} returned a non-JSON body (HTTP {status}, content-type "
                f"{ctype or 'none'}): {self._scrub(snippet)!r}",
                http_status=status,
            )
        if "error" in data and "access_token" not in data:
            raise AuthenticationError(
                f"token endpoint {url} returned an OAuth error: "
                + self._scrub(f"{data.get('error')} {data.get('error_description') or ''}".strip()),
                http_status=status,
            )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            keys = ", ".join(sorted(str(k) for k in data)) or "none"
            raise AuthenticationError(
                f"token endpoint {url} response has no access_token (keys: {keys})", http_status=status
            )
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise AuthenticationError(
                f"token endpoint {url} issued an unsupported token_type", http_status=status
            )
        if not token.isascii() or not token.isprintable() or " " in token:
            raise AuthenticationError(f"token endpoint {url} issued a malformed token", http_status=status)
        try:
            ttl = float(data.get("expires_in", 3600))
        except (TypeError, ValueError, OverflowError):
            ttl = 3600.0
        if not math.isfinite(ttl):
            ttl = 3600.0
        return token, min(max(ttl, 1.0), 86_400.0)

    def _discover(self) -> str:
        import httpx

        from invora import _json

        assert self.issuer is not None
        url = self.issuer + "/.well-known/openid-configuration"
        try:
            with self._http(url) as http:
                resp = http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthenticationError(
                f"OIDC discovery at {url} failed: {type(exc).__name__}: {exc}", http_status=0
            ) from None
        try:
            document = _json.loads(resp.content, max_bytes=_MAX_BODY, what="the OIDC discovery document")
            endpoint = document["token_endpoint"] if resp.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            endpoint = None
        if not isinstance(endpoint, str) or not endpoint:
            raise AuthenticationError(
                f"OIDC discovery at {url} gave no token_endpoint (HTTP {resp.status_code})",
                http_status=resp.status_code,
            )
        _check_url(endpoint)
        return endpoint

    def _scrub(self, text: str) -> str:
        from invora.errors import redact

        return redact(text.replace(self.__secret, "***"))


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _ssl_verify(verify: Any) -> Any:
    """httpx ``verify``: True/False, an ``ssl.SSLContext``, a CA file path, or CA PEM bytes."""
    import ssl

    if isinstance(verify, bytes):
        return ssl.create_default_context(cadata=verify.decode("ascii"))
    if isinstance(verify, (str, os.PathLike)):
        return ssl.create_default_context(cafile=os.fspath(verify))
    return verify


_LIVE: weakref.WeakSet[ClientCredentials] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for creds in list(_LIVE):
        creds._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _check_url(url: str, what: str = "token endpoint", action: str = "send client credentials to") -> None:
    """``url`` must be http(s), and https unless it points at loopback: ``action`` over plaintext is refused."""
    from urllib.parse import urlsplit  # not at import: only ClientCredentials needs it

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing to {action} {parts.hostname} over plaintext HTTP; use https "
            "(plaintext is allowed only for loopback addresses)"
        )


class AuthMetadataPlugin(grpc.AuthMetadataPlugin):
    """Expose :class:`Credentials` as gRPC call credentials for channels you build yourself::

        grpc.metadata_call_credentials(invora.AuthMetadataPlugin(creds))

    (The SDK's own client does not use it: adding metadata per call is much faster.)
    """

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self, context: Any, callback: Any) -> None:
        try:
            md = self._credentials.metadata()
        except Exception as exc:
            callback((), exc)
        else:
            callback(md, None)
