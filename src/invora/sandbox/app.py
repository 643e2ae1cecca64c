"""The :class:`Sandbox`: organizations and credentials, the per-call gateway pipeline, testing knobs.

Both transports (gRPC and REST) hand every call to :meth:`Sandbox.dispatch`, which does what the real
gateway does, in this order: authenticate the bearer JWT, check the method's scope, resolve the tenancy
header against the caller's own and managed organizations, apply the per-organization rate limit, then the
testing knobs (latency, injected errors, error rate), then the handler. Handlers are built once per RPC at
start (domain behaviour where it matters, the generic descriptor-driven store everywhere else).
"""

from __future__ import annotations

import collections
import random
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message

from invora import _catalog
from invora.sandbox import auth, listing
from invora.sandbox.faults import Fault
from invora.sandbox.store import CallContext, GenericService, Handler, Store

if TYPE_CHECKING:
    from invora._catalog import MethodInfo

__all__ = ["CallRecord", "Sandbox", "Tenant"]

TENANCY_KEYS = ("x-target-org-id", "x-invora-org-id", "x-zitadel-orgid")
_ORG_ID_RE = re.compile(r"^[0-9]{6,32}$")
TOKEN_FAULTS = ("status500", "garbage", "no_access_token", "slow")
CALL_HISTORY = 2000


@dataclass(frozen=True)
class Tenant:
    """An organization with machine credentials for the token endpoint."""

    org_id: str
    client_id: str
    client_secret: str = field(repr=False)
    name: str = ""
    kind: str = "business"  # business | platform | connected


@dataclass(frozen=True)
class CallRecord:
    """One call as the gateway saw it (the authorization value is redacted)."""

    method: str
    org_id: str | None
    metadata: dict[str, str]
    code: grpc.StatusCode
    transport: str
    at: float = 0.0


@dataclass
class Org:
    org_id: str
    name: str
    kind: str
    parent: str | None = None
    country: str = "SA"
    status: str = "active"  # active | suspended
    vat_number: str = ""
    members: set[str] = field(default_factory=set)  # other organizations whose callers hold roles here
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientCred:
    client_id: str
    secret: str
    org_id: str
    scope: str


@dataclass
class MethodEntry:
    info: MethodInfo
    handler: Handler
    scope: str | None
    full: str


class Sandbox:
    """A local Invora gateway: gRPC + REST/JSON + OIDC token endpoint, in memory.

    Use as a context manager (or :meth:`start` / :meth:`stop`). See the module docs of
    :mod:`invora.sandbox` for the programmatic contract."""

    def __init__(
        self,
        grpc_port: int = 0,
        http_port: int = 0,
        host: str = "127.0.0.1",
        seed: int = 0,
        tls: tuple[bytes, bytes] | None = None,
        token_ttl: float = 43200.0,
        rate_limit: float | None = None,
        *,
        latency: float = 0.0,
        error_rate: float = 0.0,
    ) -> None:
        self.host = host
        self.seed = seed
        self.tls = tls
        self.token_ttl = token_ttl
        self.rate_limit = rate_limit
        self._grpc_port = grpc_port
        self._http_port = http_port
        self._lock = threading.RLock()
        self.store = Store()
        self.cursors = listing.Cursors(secrets.token_bytes(32))
        self._rng = random.Random(seed)
        self._orgs: dict[str, Org] = {}
        self._clients: dict[str, ClientCred] = {}
        self._issued: dict[str, str] = {}  # jti -> org id
        self._token_requests = 0
        self._token_faults: collections.deque[str] = collections.deque()
        self._injected: dict[str, collections.deque[tuple[grpc.StatusCode, str, float | None]]] = {}
        self._latency: dict[str | None, float] = {None: latency} if latency else {}
        self._error_rate: dict[str | None, tuple[float, grpc.StatusCode]] = (
            {None: (error_rate, grpc.StatusCode.UNAVAILABLE)} if error_rate else {}
        )
        self._buckets: dict[str, list[float]] = {}
        # Raw tuples on the hot path; CallRecord objects (with the authorization redacted) built on read.
        self._calls: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=CALL_HISTORY)
        self.dedup: dict[tuple[str, str, str], tuple[float, Message]] = {}
        self.dedup_window = 24 * 3600.0
        self._grpc: Any = None
        self._http: Any = None
        self.keys: auth.KeyRing | None = None
        self.methods: dict[str, MethodEntry] = {}
        self._build_methods()
        self.tenant: Tenant = self.create_tenant("Sandbox Business", kind="business")

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        from invora.sandbox.grpc_server import GrpcServer
        from invora.sandbox.http import HttpServer

        self._http = HttpServer(self, self.host, self._http_port, self.tls)
        try:
            self.keys = auth.KeyRing(self._http.base_url)
            self._grpc = GrpcServer(self, self.host, self._grpc_port, self.tls)
        except BaseException:
            self._http.stop()
            self._http = None
            raise
        self._http.start()
        self._grpc.start()
        if self.seed:
            from invora.sandbox.domain import simple

            simple.seed_invoices(self, self.tenant.org_id, self.seed)
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop()
            self._grpc = None
        if self._http is not None:
            self._http.stop()
            self._http = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Sandbox grpc={self.grpc_target if self._grpc else '-'} rest={self.rest_url if self._http else '-'}>"

    # -- addresses --------------------------------------------------------------------------------------
    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self._grpc.port}"

    @property
    def grpc_port(self) -> int:
        return int(self._grpc.port)

    @property
    def rest_url(self) -> str:
        return str(self._http.base_url)

    @property
    def http_port(self) -> int:
        return int(self._http.port)

    @property
    def token_url(self) -> str:
        return self.rest_url + "/oauth/v2/token"

    @property
    def issuer(self) -> str:
        return self.rest_url

    @property
    def jwks_url(self) -> str:
        """Where the sandbox publishes its signing keys (tokens and webhook signatures)."""
        return self.rest_url + "/oauth/v2/keys"

    @property
    def client_id(self) -> str:
        return self.tenant.client_id

    @property
    def client_secret(self) -> str:
        return self.tenant.client_secret

    @property
    def org_id(self) -> str:
        return self.tenant.org_id

    def info(self) -> dict[str, str]:
        """The JSON line the CLI prints."""
        return {
            "grpc_target": self.grpc_target,
            "rest_url": self.rest_url,
            "token_url": self.token_url,
            "issuer": self.issuer,
            "jwks_url": self.jwks_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "org_id": self.org_id,
        }

    # -- tenants ----------------------------------------------------------------------------------------
    def _new_org_id(self) -> str:
        while True:
            org_id = str(self._rng.randrange(10**17, 10**18))
            if org_id not in self._orgs:
                return org_id

    def _new_client(self, org_id: str, scopes: Iterable[str] | None) -> ClientCred:
        cred = ClientCred(
            client_id=f"sbx-{secrets.token_hex(8)}",
            secret="sbx_"
            + secrets.token_urlsafe(32),  # never starts with "-", which argv would take for a flag
            org_id=org_id,
            scope=" ".join(scopes) if scopes is not None else auth.ALL_SCOPES,
        )
        self._clients[cred.client_id] = cred
        return cred

    def create_tenant(
        self,
        name: str = "Acme",
        *,
        kind: str = "business",
        scopes: Iterable[str] | None = None,
        country: str = "SA",
        parent: str | None = None,
    ) -> Tenant:
        """A new organization with its own client credentials (``scopes=None``: every scope)."""
        with self._lock:
            org = self.create_org(name, kind=kind, country=country, parent=parent)
            cred = self._new_client(org.org_id, scopes)
        return Tenant(org.org_id, cred.client_id, cred.secret, name, kind)

    def create_org(
        self, name: str, *, kind: str = "business", country: str = "SA", parent: str | None = None
    ) -> Org:
        """A new organization without credentials (reachable through a parent's or member's tenancy header)."""
        if kind not in ("business", "platform", "connected"):
            raise ValueError(f"kind must be 'business' or 'platform', not {kind!r}")
        with self._lock:
            org = Org(self._new_org_id(), name, kind, parent=parent, country=country.upper())
            org.vat_number = "3" + str(self._rng.randrange(10**13, 10**14)) + "3"
            self._orgs[org.org_id] = org
        return org

    def connect_business(self, platform: Tenant, name: str) -> Tenant:
        """A connected business managed by ``platform`` (which may then act on it via the tenancy header)."""
        if self.org(platform.org_id).kind != "platform":
            raise ValueError("connect_business() needs a platform tenant (create_tenant(kind='platform'))")
        return self.create_tenant(name, kind="connected", parent=platform.org_id)

    def org(self, org_id: str) -> Org:
        return self._orgs[org_id]

    def orgs(self) -> list[Org]:
        with self._lock:
            return list(self._orgs.values())

    def remove_org(self, org_id: str) -> None:
        """Delete an organization: its credentials stop working and its tokens are revoked."""
        with self._lock:
            self._orgs.pop(org_id, None)
            for cid in [c.client_id for c in self._clients.values() if c.org_id == org_id]:
                del self._clients[cid]
            if self.keys is not None:
                self.keys.revoked.update(j for j, o in self._issued.items() if o == org_id)

    def rotate_client(self, org_id: str) -> ClientCred:
        """New credentials for an organization; the old ones stop working at the token endpoint."""
        with self._lock:
            for cid in [c.client_id for c in self._clients.values() if c.org_id == org_id]:
                del self._clients[cid]
            return self._new_client(org_id, None)

    # -- tokens -----------------------------------------------------------------------------------------
    def _keyring(self) -> auth.KeyRing:
        if self.keys is None:
            raise RuntimeError("the sandbox is not started")
        return self.keys

    def mint_token(
        self,
        tenant: Tenant,
        *,
        ttl: float | None = None,
        scopes: Iterable[str] | None = None,
        expired: bool = False,
        bad_signature: bool = False,
    ) -> str:
        """A JWT for ``tenant`` as the token endpoint would issue it, or a deliberately bad one."""
        scope = " ".join(scopes) if scopes is not None else self._scope_of(tenant)
        token, jti = self._keyring().mint(
            tenant.client_id,
            tenant.org_id,
            ttl=self.token_ttl if ttl is None else ttl,
            scope=scope,
            expired=expired,
            bad_signature=bad_signature,
        )
        with self._lock:
            self._issued[jti] = tenant.org_id
        return token

    def sign_webhook(self, body: bytes) -> str:
        """An ``X-Invora-Signature`` JWT for ``body`` signed with the key published at :attr:`jwks_url`.

        For testing webhook receivers: ``invora.webhooks.verify(body, sb.sign_webhook(body),
        jwks=invora.webhooks.RemoteJWKS(sb.jwks_url))`` accepts it.
        """
        return self._keyring().sign_webhook(body)

    def _scope_of(self, tenant: Tenant) -> str:
        cred = self._clients.get(tenant.client_id)
        return cred.scope if cred is not None else auth.ALL_SCOPES

    def issue_token(self, client_id: str, client_secret: str) -> tuple[str, int]:
        """The ``client_credentials`` grant: a token and its lifetime, or :class:`~.auth.OAuthError`."""
        with self._lock:
            cred = self._clients.get(client_id)
        if cred is None or not secrets.compare_digest(cred.secret.encode(), client_secret.encode()):
            raise auth.OAuthError(401, "invalid_client", "client authentication failed")
        org = self._orgs.get(cred.org_id)
        if org is not None and org.status != "active":
            raise auth.OAuthError(400, "unauthorized_client", "the organization is suspended")
        ttl = self.token_ttl
        token, jti = self._keyring().mint(cred.client_id, cred.org_id, ttl=ttl, scope=cred.scope)
        with self._lock:
            self._issued[jti] = cred.org_id
            self._token_requests += 1
        return token, max(1, int(ttl))

    @property
    def token_requests(self) -> int:
        return self._token_requests

    def revoke_tokens(self, tenant: Tenant | None = None) -> None:
        """Every token issued so far (to ``tenant``, or to anyone) answers UNAUTHENTICATED from now on."""
        keys = self._keyring()
        with self._lock:
            for jti, org in self._issued.items():
                if tenant is None or org == tenant.org_id:
                    keys.revoked.add(jti)

    def inject_token_fault(self, kind: str, *, times: int = 1) -> None:
        """The next ``times`` token requests misbehave: status500 | garbage | no_access_token | slow."""
        if kind not in TOKEN_FAULTS:
            raise ValueError(f"token fault must be one of {', '.join(TOKEN_FAULTS)}, not {kind!r}")
        with self._lock:
            self._token_faults.extend([kind] * times)

    def next_token_fault(self) -> str | None:
        with self._lock:
            return self._token_faults.popleft() if self._token_faults else None

    # -- knobs ------------------------------------------------------------------------------------------
    def _method_name(self, method: str) -> str:
        return _catalog.method(method).full_name

    def inject_error(
        self,
        method: str,
        code: grpc.StatusCode,
        *,
        times: int = 1,
        message: str = "injected fault",
        retry_delay: float | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` fail with ``code`` (over gRPC and REST alike)."""
        full = self._method_name(method)
        with self._lock:
            self._injected.setdefault(full, collections.deque()).extend(
                [(code, message, retry_delay)] * times
            )

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        with self._lock:
            key = self._method_name(method) if method else None
            if seconds > 0:
                self._latency[key] = seconds
            else:
                self._latency.pop(key, None)

    def set_error_rate(
        self, rate: float, method: str | None = None, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            key = self._method_name(method) if method else None
            if rate > 0:
                self._error_rate[key] = (rate, code)
            else:
                self._error_rate.pop(key, None)

    @property
    def blocking(self) -> bool:
        """Whether calls may sleep (a latency knob is set): async servers then run them off their loop."""
        return bool(self._latency)

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            raw = list(self._calls)
        out = []
        for full, org, md, code, transport, at in raw:
            safe = {k: ("Bearer ***" if k == "authorization" else v) for k, v in md.items()}
            if org is None:
                org = next((md[k] for k in TENANCY_KEYS if md.get(k)), None)
            out.append(CallRecord(full, org, safe, code, transport, at))
        return out

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- methods ----------------------------------------------------------------------------------------
    def _build_methods(self) -> None:
        from invora.sandbox.domain import overrides

        domain = overrides()
        for svc in _catalog.services():
            svc.load()
            generic = GenericService(svc)
            for m in svc.methods.values():
                factory = domain.get(m.full_name)
                handler = factory(self, m, generic) if factory is not None else generic.build(m)
                self.methods[m.full_name] = MethodEntry(m, handler, m.scope, m.full_name)

    # -- the pipeline -----------------------------------------------------------------------------------
    def authenticate(self, md: Mapping[str, str]) -> auth.Claims:
        value = md.get("authorization")
        if not value:
            raise Fault(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing bearer token: send 'authorization: Bearer <access token>'",
                reason="TOKEN_MISSING",
            )
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Fault(
                grpc.StatusCode.UNAUTHENTICATED,
                "the authorization header is not a bearer token",
                reason="TOKEN_INVALID",
            )
        try:
            return self._keyring().verify(token.strip())
        except auth.TokenError as exc:
            raise Fault(grpc.StatusCode.UNAUTHENTICATED, exc.message, reason=exc.reason) from None

    def resolve_org(self, claims: auth.Claims, md: Mapping[str, str]) -> str:
        target = None
        for k in TENANCY_KEYS:
            target = md.get(k)
            if target:
                break
        home = claims.org_id
        if not target or target == home:
            target, org = home, self._orgs.get(home)
            if org is None:
                raise _denied("the token's organization no longer exists", "TENANT_FORBIDDEN", home)
        else:
            target = target.strip()
            if not _ORG_ID_RE.match(target):
                raise Fault(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the tenancy header is not a valid organization id (expected digits only)",
                    reason="INVALID_ORG_ID",
                    metadata={"header": "x-target-org-id"},
                )
            org = self._orgs.get(target)
            if org is None:
                raise _denied(
                    f"organization {target} does not exist or is not visible to this caller",
                    "UNKNOWN_ORG",
                    target,
                )
            if org.parent != home and home not in org.members and target not in claims.roles:
                raise _denied(f"the caller has no role on organization {target}", "TENANT_FORBIDDEN", target)
        if org.status != "active":
            raise _denied(f"organization {target} is suspended", "TENANT_SUSPENDED", target)
        return target

    def _rate_check(self, org: str) -> None:
        rate = self.rate_limit
        if not rate:
            return
        now = time.monotonic()
        burst = max(1.0, rate)
        with self._lock:
            b = self._buckets.get(org)
            if b is None:
                b = self._buckets[org] = [burst, now]
            tokens = min(burst, b[0] + (now - b[1]) * rate)
            b[1] = now
            if tokens < 1.0:
                b[0] = tokens
                wait = (1.0 - tokens) / rate
                raise Fault(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"rate limit of {rate:g} requests/second for organization {org} exceeded",
                    reason="RATE_LIMITED",
                    metadata={"org_id": org, "limit": f"{rate:g}"},
                    retry_delay=round(max(wait, 0.001), 3),
                )
            b[0] = tokens - 1.0

    def _knobs(self, full: str) -> None:
        if self._latency:
            delay = self._latency.get(full, self._latency.get(None, 0.0))
            if delay:
                time.sleep(delay)
        if self._injected:
            with self._lock:
                q = self._injected.get(full)
                item = q.popleft() if q else None
                if q is not None and not q:
                    del self._injected[full]
            if item is not None:
                code, message, retry = item
                raise Fault(
                    code, message, reason="INJECTED_FAULT", metadata={"method": full}, retry_delay=retry
                )
        if self._error_rate:
            rate, code = self._error_rate.get(full, self._error_rate.get(None, (0.0, grpc.StatusCode.OK)))
            if rate:
                with self._lock:
                    hit = self._rng.random() < rate
                if hit:
                    raise Fault(code, "random fault (error rate knob)", reason="INJECTED_FAULT")

    def prepare(self, entry: MethodEntry, md: Mapping[str, str], transport: str) -> CallContext:
        """Authentication, scope, tenancy, rate limit and knobs; the context the handler runs with."""
        claims = self.authenticate(md)
        if not claims.allows(entry.scope):
            raise Fault(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the token lacks scope {entry.scope}",
                reason="MISSING_SCOPE",
                metadata={"scope": entry.scope or ""},
            )
        org = self.resolve_org(claims, md)
        self._rate_check(org)
        self._knobs(entry.full)
        return CallContext(self, entry.info, org, claims, transport, md)

    def dispatch(self, entry: MethodEntry, request: Any, md: Mapping[str, str], transport: str) -> Any:
        """Run one unary call (or open a stream) through the gateway pipeline; raises :class:`Fault`."""
        code = grpc.StatusCode.OK
        org: str | None = None
        try:
            ctx = self.prepare(entry, md, transport)
            org = ctx.org
            return entry.handler(ctx, request)
        except Fault as f:
            code = f.code
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            raise
        finally:
            self.record(entry.full, org, md, code, transport)

    def record(
        self, full: str, org: str | None, md: Mapping[str, str], code: grpc.StatusCode, transport: str
    ) -> None:
        self._calls.append((full, org, md, code, transport, time.time()))  # deque.append is atomic


def _denied(message: str, reason: str, org_id: str) -> Fault:
    return Fault(grpc.StatusCode.PERMISSION_DENIED, message, reason=reason, metadata={"org_id": org_id})
