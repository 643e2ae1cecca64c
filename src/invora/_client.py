"""``invora.Client`` and ``invora.AsyncClient``: configuration, the service tree, generic calls, tenancy views."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invora._core import AsyncCore, Core, OnCall, Scope
from invora._proto.services import AsyncServices, Services
from invora._service import DEFAULT, Namespace, RetryArg
from invora._target import ENVIRONMENTS, parse_target
from invora.auth import Credentials, StaticToken
from invora.errors import ConfigurationError
from invora.retry import Retry
from invora.transport import RawResponse, TransportConfig, transport_classes

if TYPE_CHECKING:
    from google.protobuf.descriptor_pb2 import FileDescriptorSet

    from invora._catalog import MethodInfo

__all__ = ["AsyncClient", "Client"]

_VERSION = "0.1.0"
_HEADER_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class _Settings:
    """Validated client configuration (everything decided before any network)."""

    def __init__(
        self,
        target: str | None,
        environment: str | None,
        credentials: Credentials | str | None,
        org_id: str | None,
        timeout: float,
        stream_timeout: float,
        retry: Retry | Any | None,
        tls: bool | None,
        root_certificates: bytes | str | os.PathLike[str] | None,
        private_key: bytes | None,
        certificate_chain: bytes | None,
        ssl_target_name: str | None,
        channel_options: Sequence[tuple[str, Any]] | Mapping[str, Any] | None,
        org_header: str,
        metadata: Sequence[tuple[str, str]] | Mapping[str, str] | None,
        on_call: OnCall | None,
        transport: str,
        prefetch: bool,
        user_agent: str | None,
    ) -> None:
        if target is not None and environment is not None:
            raise ConfigurationError("pass target or environment, not both")
        if target is None:
            env = environment or "production"
            if env not in ENVIRONMENTS:
                raise ConfigurationError(
                    f"unknown environment {env!r}; expected one of {', '.join(sorted(ENVIRONMENTS))}"
                )
            target = ENVIRONMENTS[env]
        parsed = parse_target(target)
        roots = _read_roots(root_certificates)
        if parsed.scheme == "https" and tls is False:
            raise ConfigurationError(f"target {target!r} says https but tls=False")
        if parsed.scheme == "http" and (tls is True or roots is not None):
            raise ConfigurationError(f"target {target!r} says http (plaintext) but TLS options were given")
        if parsed.scheme is not None:
            secure = parsed.scheme == "https"
        elif roots is not None or private_key is not None:
            if tls is False:
                raise ConfigurationError("root_certificates/private_key given with tls=False")
            secure = True
        else:
            secure = (not parsed.loopback) if tls is None else bool(tls)
        if isinstance(credentials, str):
            credentials = StaticToken(credentials)
        if credentials is not None and not isinstance(credentials, Credentials):
            raise ConfigurationError(
                "credentials must be invora.ClientCredentials, invora.StaticToken, a token string or None"
            )
        if credentials is not None and not secure and not parsed.loopback:
            raise ConfigurationError(
                f"refusing to send a bearer token over a plaintext channel to {parsed.host}: use TLS "
                "(plaintext is allowed only for loopback addresses: 127.0.0.0/8, ::1, localhost)"
            )
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not (isinstance(stream_timeout, (int, float)) and stream_timeout > 0):
            raise ConfigurationError("stream_timeout must be a positive number of seconds")
        if retry is DEFAULT:
            retry = Retry()
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigurationError("retry must be an invora.Retry or None")
        header = org_header.strip().lower() if isinstance(org_header, str) else ""
        if not _HEADER_RE.fullmatch(header) or header.startswith("grpc-") or header.endswith("-bin"):
            raise ConfigurationError(f"invalid org_header {org_header!r}: a lower-case ASCII metadata key")
        extra: tuple[tuple[str, str], ...] = ()
        if metadata:
            pairs = metadata.items() if isinstance(metadata, Mapping) else metadata
            extra = tuple((str(k).lower(), v) for k, v in pairs)
        opts = tuple(
            channel_options.items() if isinstance(channel_options, Mapping) else channel_options or ()
        )
        if on_call is not None and not callable(on_call):
            raise ConfigurationError("on_call must be callable")
        self.sync_transport_cls, self.async_transport_cls = transport_classes(transport)
        self.transport_name = transport
        self.target = parsed
        self.config = TransportConfig(
            host=parsed.host,
            port=parsed.port,
            secure=secure,
            root_certificates=roots,
            private_key=private_key,
            certificate_chain=certificate_chain,
            ssl_target_name=ssl_target_name,
            channel_options=opts,
            user_agent=user_agent or f"invora-python/{_VERSION}",
        )
        self.credentials = credentials
        self.org_id = org_id
        self.timeout = float(timeout)
        self.stream_timeout = float(stream_timeout)
        self.retry: Retry | None = retry
        self.org_header = header
        self.extra_md = extra
        self.on_call = on_call
        self.prefetch = prefetch


def _read_roots(value: bytes | str | os.PathLike[str] | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode()
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read root_certificates from {value!r}: {exc.strerror}") from None


_INIT_DOC = """
    Arguments (all keyword-only but ``target``):

    - ``target``: ``host:port`` or ``https://host`` for gRPC; the REST base URL with ``transport="rest"``.
    - ``environment``: ``"production"`` or ``"staging"``: Invora's gateway, instead of a ``target``.
    - ``credentials``: :class:`invora.ClientCredentials`, :class:`invora.StaticToken`, a token, or None.
    - ``org_id``: the organization calls act on by default (None: the token's home organization).
    - ``timeout``: default deadline of each attempt of a unary call or page, in seconds (30).
    - ``stream_timeout``: default deadline of a streaming call, in seconds (600).
    - ``retry``: an :class:`invora.Retry` policy (default ``Retry()``), or None for no retries.
    - ``tls``: True or False to force TLS on or off; default on, except plaintext for loopback targets.
    - ``root_certificates``: PEM roots (bytes, PEM text or a file path) to trust instead of the system's.
    - ``private_key``: PEM private key of a mutual-TLS client certificate (gRPC only).
    - ``certificate_chain``: PEM certificate chain of that key (gRPC only).
    - ``ssl_target_name``: the name the server's certificate must carry, when not the target's host (gRPC).
    - ``channel_options``: extra gRPC channel options, e.g. ``{"grpc.max_receive_message_length": n}``.
    - ``org_header``: the metadata key carrying ``org_id`` (default ``x-target-org-id``).
    - ``metadata``: extra metadata (HTTP headers over REST) sent with every call.
    - ``on_call``: ``on_call(method, seconds, code, request_bytes, response_bytes)`` after each call or page.
    - ``transport``: ``"grpc"`` (default) or ``"rest"`` (REST/JSON through the schema's HTTP rules).
    - ``prefetch``: fetch a list's next page while the current one is consumed (default True).
    - ``user_agent``: the user agent to send (default ``invora-python/<version>``).
    - ``schema_check``: ``"off"`` (default), ``"warn"`` or ``"strict"``: before the first gRPC call of a
      service whose wire facts are reconstructed, compare them with the server's (reflection), once per
      channel; warn, or raise before sending. See docs/schema-check.md.
    - ``schema``: a ``FileDescriptorSet`` (or its file) through which :meth:`invoke` reaches RPCs the SDK
      was not built with; without it they are looked up through reflection.

    Services hang off the client as attributes (``client.simple.invoices``, ``client.billing.plans``);
    ``dir(client)`` and ``help(client.simple)`` list them.
"""


class _ClientMixin:
    _scope: Scope
    _settings: _Settings
    _owner: bool

    @property
    def org_id(self) -> str | None:
        """The organization this client acts on by default (None: the token's home org)."""
        return self._scope.org_id

    @property
    def target(self) -> str:
        return self._settings.config.address

    @property
    def credentials(self) -> Credentials | None:
        return self._settings.credentials

    def with_org(self, org_id: str | None) -> Any:
        """A view acting on ``org_id`` (None: home org); shares channels and credentials with this client."""
        view = object.__new__(type(self))
        view._settings = self._settings
        view._owner = False
        Namespace.__init__(view, Scope(self._scope.core, org_id, self._scope.extra_md))  # type: ignore[arg-type]
        return view

    def _prepare(self, method: str | MethodInfo, request: Any) -> tuple[Any, Any, Mapping[str, Any] | None]:
        from invora import _catalog

        if isinstance(method, str):
            try:
                info = _catalog.method(method)
            except LookupError:
                if "/" not in method:
                    raise
                from invora.schema.guard import runtime_method

                info = runtime_method(self, method)  # type: ignore[arg-type]
        else:
            info = method
        binding = self._scope.core.binding(info)
        if isinstance(request, Mapping) and not info.client_streaming:
            return binding, None, request
        return binding, request, None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target} {self._scope!r}>"


class Client(Services, _ClientMixin):  # type: ignore[misc]
    __doc__ = "Blocking Invora client: ``client.simple.invoices.create(...)``.\n" + _INIT_DOC

    def __init__(
        self,
        target: str | None = None,
        *,
        environment: str | None = None,
        credentials: Credentials | str | None = None,
        org_id: str | None = None,
        timeout: float = 30.0,
        stream_timeout: float = 600.0,
        retry: Retry | Any | None = DEFAULT,
        tls: bool | None = None,
        root_certificates: bytes | str | os.PathLike[str] | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        ssl_target_name: str | None = None,
        channel_options: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None,
        org_header: str = "x-target-org-id",
        metadata: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        on_call: OnCall | None = None,
        transport: str = "grpc",
        prefetch: bool = True,
        user_agent: str | None = None,
        schema_check: str = "off",
        schema: str | os.PathLike[str] | bytes | FileDescriptorSet | None = None,
    ) -> None:
        s = _Settings(
            target, environment, credentials, org_id, timeout, stream_timeout, retry, tls, root_certificates,
            private_key, certificate_chain, ssl_target_name, channel_options, org_header, metadata, on_call,
            transport, prefetch, user_agent,
        )  # fmt: skip
        core = Core(
            s.sync_transport_cls(s.config),
            s.credentials,
            timeout=s.timeout,
            stream_timeout=s.stream_timeout,
            retry=s.retry,
            on_call=s.on_call,
            org_header=s.org_header,
            prefetch=s.prefetch,
        )
        self._settings = s
        self._owner = True
        super().__init__(Scope(core, s.org_id, s.extra_md))
        if schema is not None or schema_check != "off":
            _install_schema(self, schema_check, schema)

    def with_org(self, org_id: str | None) -> Client:
        """A view acting on ``org_id`` (None: home org); shares channels and credentials with this client."""
        return super().with_org(org_id)  # type: ignore[no-any-return]

    def invoke(
        self,
        method: str | MethodInfo,
        request: Any = None,
        /,
        *,
        timeout: float | None = None,
        retry: RetryArg = DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        org_id: str | None = None,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> Any:
        """Call any RPC by ``"pkg.Service/Method"`` or accessor path (``"simple.invoices.get"``).

        ``request`` is a message, a dict of fields, or (client streaming) an iterable of either. Returns
        what the typed method returns: a response, a :class:`~invora.pagination.Pager` or a stream.
        """
        binding, req, fields = self._prepare(method, request)
        return self._scope.dispatch(
            binding, req, fields, timeout, retry, metadata, org_id, page_size, max_items
        )

    def raw(
        self,
        method: str | MethodInfo,
        request: Any = None,
        /,
        *,
        timeout: float | None = None,
        retry: RetryArg = DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        org_id: str | None = None,
    ) -> RawResponse:
        """One call (one page, for lists) with its initial/trailing metadata and status code."""
        binding, req, fields = self._prepare(method, request)
        scope = self._scope
        core = scope.core
        assert isinstance(core, Core)
        core.check_usable()
        md = scope.call_metadata(org_id, metadata)
        if binding.info.client_streaming:
            req, retry = (binding.coerce(r) for r in req), None
        else:
            req = binding.build(req, fields)
            if binding.info.server_streaming:
                retry = None  # streams are never retried
        if binding.info.server_streaming or binding.info.client_streaming:
            timeout = core.stream_timeout if timeout is None else timeout
        return core.unary(binding, req, timeout, retry, md, call=binding.raw)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the channels (views share them: closing a view does nothing)."""
        if self._owner:
            self._scope.core.close()  # type: ignore[union-attr,unused-ignore]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(AsyncServices, _ClientMixin):  # type: ignore[misc]
    __doc__ = "asyncio Invora client: ``await client.simple.invoices.create(...)``.\n" + _INIT_DOC

    def __init__(
        self,
        target: str | None = None,
        *,
        environment: str | None = None,
        credentials: Credentials | str | None = None,
        org_id: str | None = None,
        timeout: float = 30.0,
        stream_timeout: float = 600.0,
        retry: Retry | Any | None = DEFAULT,
        tls: bool | None = None,
        root_certificates: bytes | str | os.PathLike[str] | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        ssl_target_name: str | None = None,
        channel_options: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None,
        org_header: str = "x-target-org-id",
        metadata: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        on_call: OnCall | None = None,
        transport: str = "grpc",
        prefetch: bool = True,
        user_agent: str | None = None,
        schema_check: str = "off",
        schema: str | os.PathLike[str] | bytes | FileDescriptorSet | None = None,
    ) -> None:
        s = _Settings(
            target, environment, credentials, org_id, timeout, stream_timeout, retry, tls, root_certificates,
            private_key, certificate_chain, ssl_target_name, channel_options, org_header, metadata, on_call,
            transport, prefetch, user_agent,
        )  # fmt: skip
        core = AsyncCore(
            s.async_transport_cls(s.config),
            s.credentials,
            timeout=s.timeout,
            stream_timeout=s.stream_timeout,
            retry=s.retry,
            on_call=s.on_call,
            org_header=s.org_header,
            prefetch=s.prefetch,
        )
        self._settings = s
        self._owner = True
        super().__init__(Scope(core, s.org_id, s.extra_md))
        if schema is not None or schema_check != "off":
            _install_schema(self, schema_check, schema)

    def with_org(self, org_id: str | None) -> AsyncClient:
        """A view acting on ``org_id`` (None: home org); shares channels and credentials with this client."""
        return super().with_org(org_id)  # type: ignore[no-any-return]

    def invoke(
        self,
        method: str | MethodInfo,
        request: Any = None,
        /,
        *,
        timeout: float | None = None,
        retry: RetryArg = DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        org_id: str | None = None,
        page_size: int | None = None,
        max_items: int | None = None,
    ) -> Any:
        """Like :meth:`Client.invoke`: a coroutine for unary RPCs, an AsyncPager or async stream otherwise."""
        binding, req, fields = self._prepare(method, request)
        return self._scope.dispatch(
            binding, req, fields, timeout, retry, metadata, org_id, page_size, max_items
        )

    async def raw(
        self,
        method: str | MethodInfo,
        request: Any = None,
        /,
        *,
        timeout: float | None = None,
        retry: RetryArg = DEFAULT,
        metadata: Sequence[tuple[str, str]] | None = None,
        org_id: str | None = None,
    ) -> RawResponse:
        """Like :meth:`Client.raw`."""
        binding, req, fields = self._prepare(method, request)
        scope = self._scope
        core = scope.core
        assert isinstance(core, AsyncCore)
        core.check_usable()
        md = scope.call_metadata(org_id, metadata)
        if binding.info.client_streaming:
            req, retry = _coerce_any(binding.coerce, req), None
        else:
            req = binding.build(req, fields)
            if binding.info.server_streaming:
                retry = None
        if binding.info.server_streaming or binding.info.client_streaming:
            timeout = core.stream_timeout if timeout is None else timeout
        return await core.unary(binding, req, timeout, retry, md, call=binding.raw)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close the channels (views share them: closing a view does nothing)."""
        if self._owner:
            await self._scope.core.close()  # type: ignore[misc]

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _install_schema(client: Any, schema_check: str, schema: Any) -> None:
    from invora.schema.guard import install

    install(client, schema_check, schema)


def _coerce_any(coerce: Callable[[Any], Any], requests: Any) -> Any:
    from collections.abc import AsyncIterable

    if isinstance(requests, AsyncIterable):

        async def gen() -> Any:
            async for r in requests:
                yield coerce(r)

        return gen()
    return (coerce(r) for r in requests)
