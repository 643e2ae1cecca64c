"""``invora.Client`` and ``invora.AsyncClient``: configuration, the service tree, generic calls, tenancy views."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from invora._attempts import REQUEST_ID_KEY, apply_log_env
from invora._core import AsyncCore, Core, Scope
from invora._proto.services import AsyncServices, Services
from invora._service import DEFAULT, Namespace, RetryArg
from invora._target import ENVIRONMENTS, check_metadata, check_metadata_key, parse_target
from invora.auth import Credentials, StaticToken
from invora.errors import ConfigurationError
from invora.retry import Retry
from invora.transport import (
    AsyncRequestFeed,
    AsyncTransport,
    RawResponse,
    RequestFeed,
    Transport,
    TransportConfig,
)
from invora.transport._registry import transport_classes

if TYPE_CHECKING:
    from google.protobuf.descriptor_pb2 import FileDescriptorSet

    from invora._catalog import MethodInfo
    from invora.hooks import Hook

__all__ = ["AsyncClient", "Client"]

_VERSION = "0.1.0"


class _Options(NamedTuple):
    """The client's arguments as given, frozen: built once, copied with changes by ``with_options``."""

    target: str | None = None
    environment: str | None = None
    credentials: Credentials | str | None = None
    org_id: str | None = None
    timeout: float = 30.0
    stream_timeout: float = 600.0
    retry: Retry | Any | None = DEFAULT
    tls: bool | None = None
    root_certificates: bytes | str | os.PathLike[str] | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    ssl_target_name: str | None = None
    channel_options: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None
    org_header: str = "x-target-org-id"
    metadata: Sequence[tuple[str, str]] | Mapping[str, str] | None = None
    hooks: Sequence[Hook] = ()
    transport: str | Transport | AsyncTransport = "grpc"
    prefetch: bool = True
    user_agent: str | None = None
    schema_check: str = "off"
    schema: str | os.PathLike[str] | bytes | FileDescriptorSet | None = None


_OPTION_NAMES = frozenset(_Options._fields)


class _Settings:
    """Validated client configuration (everything decided before any network)."""

    def __init__(self, options: _Options) -> None:
        apply_log_env()
        o = self.options = options
        target, environment, credentials = o.target, o.environment, o.credentials
        timeout, stream_timeout, retry, tls = o.timeout, o.stream_timeout, o.retry, o.tls
        private_key, org_header, metadata, hooks = o.private_key, o.org_header, o.metadata, o.hooks
        channel_options, transport = o.channel_options, o.transport
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
        roots = _read_roots(o.root_certificates)
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
        header = check_metadata_key(
            org_header.strip() if isinstance(org_header, str) else org_header, "org_header"
        )
        if header.endswith("-bin"):
            raise ConfigurationError(f"invalid org_header {org_header!r}: a text (not -bin) metadata key")
        extra: Any = check_metadata(metadata) if metadata else ()
        opts = tuple(
            channel_options.items() if isinstance(channel_options, Mapping) else channel_options or ()
        )
        if any(key == REQUEST_ID_KEY for key, _ in extra):
            raise ConfigurationError(
                f"{REQUEST_ID_KEY} names one call: pass it per call (metadata=...), not for the whole client"
            )
        if isinstance(hooks, str) or not all(callable(h) for h in hooks):
            raise ConfigurationError("hooks must be a sequence of callables hook(event) (see invora.hooks)")
        self.sync_transport_cls, self.async_transport_cls = transport_classes(transport)
        self.transport_name = transport if isinstance(transport, str) else transport.name
        self.target = parsed
        self.config = TransportConfig(
            host=parsed.host,
            port=parsed.port,
            secure=secure,
            root_certificates=roots,
            private_key=private_key,
            certificate_chain=o.certificate_chain,
            ssl_target_name=o.ssl_target_name,
            channel_options=opts,
            user_agent=o.user_agent or f"invora-python/{_VERSION}",
        )
        self.credentials = credentials
        self.org_id = o.org_id
        self.timeout = float(timeout)
        self.stream_timeout = float(stream_timeout)
        self.retry: Retry | None = retry
        self.org_header = header
        self.extra_md = extra
        self.hooks = tuple(hooks)
        self.prefetch = o.prefetch


def _read_roots(value: bytes | str | os.PathLike[str] | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode()
    try:
        with open(value, "rb") as f:
            return f.read()
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
    - ``hooks``: callables that watch each attempt of a call or page (:mod:`invora.hooks`: tracing, metrics).
    - ``transport``: ``"grpc"`` (default), ``"rest"`` (REST/JSON through the schema's HTTP rules), or a
      transport instance (e.g. :class:`invora.testing.FakeTransport` for unit tests without sockets).
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


_C = TypeVar("_C", bound="_BaseClient[Any]")
_R = TypeVar("_R")  # what ``raw`` returns: a RawResponse, or an awaitable of one


class _BaseClient(Namespace, Generic[_R]):
    """What both clients share: arguments, validation, the core, views, generic calls; the two
    subclasses add only what differs between blocking and awaiting (``raw``, ``close``, context)."""

    _settings: _Settings
    _owner: bool
    _async: ClassVar[bool] = False

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
        hooks: Sequence[Hook] = (),
        transport: str | Transport | AsyncTransport = "grpc",
        prefetch: bool = True,
        user_agent: str | None = None,
        schema_check: str = "off",
        schema: str | os.PathLike[str] | bytes | FileDescriptorSet | None = None,
    ) -> None:
        options = _Options(
            target=target, environment=environment, credentials=credentials, org_id=org_id, timeout=timeout,
            stream_timeout=stream_timeout, retry=retry, tls=tls, root_certificates=root_certificates,
            private_key=private_key, certificate_chain=certificate_chain, ssl_target_name=ssl_target_name,
            channel_options=channel_options, org_header=org_header, metadata=metadata, hooks=hooks,
            transport=transport, prefetch=prefetch, user_agent=user_agent, schema_check=schema_check,
            schema=schema,
        )  # fmt: skip
        self._start(_Settings(options), None)

    def _start(self, s: _Settings, parent: Core | AsyncCore | None) -> None:
        """Builds the core: over ``parent``'s transport when given (a ``with_options`` copy), else a new one."""
        core_cls = AsyncCore if self._async else Core
        if parent is None:
            transport = (s.async_transport_cls if self._async else s.sync_transport_cls)(s.config)
        else:
            transport = parent.transport
        core = core_cls(
            transport,
            s.credentials,
            timeout=s.timeout,
            stream_timeout=s.stream_timeout,
            retry=s.retry,
            hooks=s.hooks,
            org_header=s.org_header,
            prefetch=s.prefetch,
            target=s.config.address,
            transport_name=s.transport_name,
        )
        if parent is not None:
            parent.adopt(core)
        self._settings = s
        self._owner = parent is None
        Namespace.__init__(self, Scope(core, s.org_id, s.extra_md))
        o = s.options
        if o.schema is not None or o.schema_check != "off":
            _install_schema(self, o.schema_check, o.schema)

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

    @classmethod
    def from_env(cls: type[_C], environ: Mapping[str, str] | None = None, **options: Any) -> _C:
        """A client from the ``INVORA_*`` variables the CLI reads (``INVORA_TARGET`` or ``INVORA_ENV``,
        ``INVORA_TRANSPORT``, ``INVORA_CLIENT_ID``/``INVORA_CLIENT_SECRET``/``INVORA_TOKEN_URL`` or
        ``INVORA_TOKEN``, ``INVORA_ORG_ID``); ``options`` are further constructor arguments and win.

        Mixed sandbox and production settings (a loopback target with Invora's token endpoint, or the
        reverse) raise :class:`invora.ConfigurationError` before anything is sent.
        """
        from invora import _env

        return _env.build(cls, _env.from_environ(environ), options)  # type: ignore[no-any-return]

    def with_org(self: _C, org_id: str | None) -> _C:
        """A view acting on ``org_id`` (None: home org); shares channels and credentials with this client."""
        view = object.__new__(type(self))
        view._settings = self._settings
        view._owner = False
        Namespace.__init__(view, Scope(self._scope.core, org_id, self._scope.extra_md))
        return view

    def with_options(self: _C, **changes: Any) -> _C:
        """A copy with some constructor arguments changed (``client.with_options(timeout=5, retry=None)``).

        The copy shares this client's channels (or transport instance) and is closed with it, unless a
        change needs other channels (``target``, ``transport``, TLS or channel options): then it has its
        own, to close too.
        """
        unknown = sorted(set(changes) - _OPTION_NAMES)
        if unknown:
            raise ConfigurationError(
                f"with_options() got unknown option(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(sorted(_OPTION_NAMES))}"
            )
        changes.setdefault("org_id", self._scope.org_id)
        changes.setdefault("hooks", self._scope.core.hooks)  # including those added since (invora.otel)
        if "target" in changes or "environment" in changes:  # a new address replaces the old either way
            changes.setdefault("target", None)
            changes.setdefault("environment", None)
        s = _Settings(self._settings.options._replace(**changes))
        old = self._settings
        given = s.options.transport
        same_channels = given == old.options.transport and (
            s.config == old.config or not isinstance(given, str)
        )
        copy = object.__new__(type(self))
        copy._start(s, self._scope.core if same_channels else None)
        return copy

    def _prepare(self, method: str | MethodInfo, request: Any) -> tuple[Any, Any, Mapping[str, Any] | None]:
        from invora import _catalog

        if isinstance(method, str):
            try:
                info = _catalog.method(method)
            except LookupError as exc:
                if "/" not in method:
                    raise ConfigurationError(
                        str(exc.args[0]) if exc.args else f"unknown method {method!r}"
                    ) from None
                from invora.schema.guard import runtime_method

                info = runtime_method(self, method)  # type: ignore[arg-type]
        elif isinstance(method, _catalog.MethodInfo):
            info = method
        else:
            raise ConfigurationError(
                f"method must be 'pkg.Service/Method' or an accessor path such as 'simple.invoices.get', "
                f"got {type(method).__name__}"
            )
        binding = self._scope.core.binding(info)
        if isinstance(request, Mapping) and not info.client_streaming:
            return binding, None, request
        return binding, request, None

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
        what the typed method returns: a response, a :class:`~invora.pagination.Pager` or a stream (on
        an :class:`AsyncClient`: a coroutine, an ``AsyncPager`` or an async stream).
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
    ) -> _R:
        """One call (one page, for lists) with its initial/trailing metadata and status code (on an
        :class:`AsyncClient`, awaitable)."""
        binding, req, fields = self._prepare(method, request)
        scope = self._scope
        core = scope.core
        core.check_usable()
        md, rid = scope.call_metadata(org_id, metadata)
        if binding.info.client_streaming:
            feed = AsyncRequestFeed if self._async else RequestFeed
            req, retry = feed(req, binding.coerce), None
        else:
            req = binding.build(req, fields)
            if binding.info.server_streaming:
                retry = None  # streams are never retried
        if binding.info.server_streaming or binding.info.client_streaming:
            timeout = core.stream_timeout if timeout is None else timeout
        return core.unary(binding.with_call(binding.raw), req, timeout, retry, md, rid)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target} {self._scope!r}>"


class Client(_BaseClient[RawResponse], Services):  # type: ignore[misc]
    __doc__ = "Blocking Invora client: ``client.simple.invoices.create(...)``.\n" + _INIT_DOC

    def close(self) -> None:
        """Close the channels (views share them: closing a view does nothing)."""
        if self._owner:
            self._scope.core.close()  # type: ignore[union-attr,unused-ignore]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_BaseClient[Awaitable[RawResponse]], AsyncServices):  # type: ignore[misc]
    __doc__ = "asyncio Invora client: ``await client.simple.invoices.create(...)``.\n" + _INIT_DOC
    _async = True

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
