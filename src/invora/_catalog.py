"""Typed view over the generated service catalog (``invora._proto.catalog``).

The catalog is plain data written by ``codegen/generate.py``: one entry per service and RPC with its
HTTP rule, scope, streaming flags, and what the client needs to decide on retries (``read``,
``request_id``) and pagination (``page``). Message classes are resolved lazily, on the first call of a
method, so importing the package never loads the ~180 generated message modules.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message


@dataclass(frozen=True)
class HttpRule:
    verb: str  # get | post | put | patch | delete (lower case; custom kinds lower-cased too)
    path: str  # template, e.g. "/api/v1/simple/invoices/{key}"
    body: str  # "" (no body), "*" or a field name
    response_body: str
    additional: tuple[HttpRule, ...] = ()

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> HttpRule:
        return cls(
            verb=data["verb"],
            path=data["path"],
            body=data["body"],
            response_body=data["response_body"],
            additional=tuple(cls.from_data(d) for d in data["additional"]),
        )


@dataclass(frozen=True)
class PageInfo:
    items: str  # repeated field of the response holding the page's items
    total_count: bool  # response has total_count


@dataclass(frozen=True, eq=False)
class MethodInfo:
    service: ServiceInfo = field(repr=False)
    name: str  # RPC name, e.g. "Freeze"
    attr: str  # Python method name, e.g. "freeze"
    input_type: str  # full message name
    output_type: str
    client_streaming: bool
    server_streaming: bool
    http: HttpRule | None
    scope: str | None
    read: bool  # a read: HTTP GET rule or a List*/Get* RPC — safe to retry
    has_request_id: bool  # request carries `request_id`: the client fills it, making the write idempotent
    idempotency_key: str | None  # field the server deduplicates writes on (`request_id`, `transaction_id`)
    page: PageInfo | None

    @classmethod
    def from_data(cls, service: ServiceInfo, data: dict[str, Any]) -> MethodInfo:
        """From a catalog entry (the generated catalog, or facts derived at run time by ``invora._rules``)."""
        page = data["page"]
        return cls(
            service=service,
            name=data["name"],
            attr=data["attr"],
            input_type=data["input"],
            output_type=data["output"],
            client_streaming=data["client_streaming"],
            server_streaming=data["server_streaming"],
            http=HttpRule.from_data(data["http"]) if data["http"] else None,
            scope=data["scope"],
            read=data["read"],
            has_request_id=data["request_id"],
            idempotency_key=data["idempotency_key"],
            page=PageInfo(**page) if page else None,
        )

    @property
    def full_name(self) -> str:
        """``package.Service/Method`` — the form used by the CLI and grpcurl."""
        return f"{self.service.full_name}/{self.name}"

    @property
    def path(self) -> str:
        """The gRPC method path, ``/package.Service/Method``."""
        return f"/{self.service.full_name}/{self.name}"

    @property
    def accessor(self) -> str:
        """``simple.invoices.freeze`` — attribute path from a client."""
        return f"{self.service.accessor}.{self.attr}"

    @property
    def kind(self) -> str:
        return (
            ("stream" if self.client_streaming else "unary")
            + "_"
            + ("stream" if self.server_streaming else "unary")
        )

    @property
    def is_streaming(self) -> bool:
        return self.client_streaming or self.server_streaming

    @property
    def request_class(self) -> type[Message]:
        return self.service.message_class(self.input_type)

    @property
    def response_class(self) -> type[Message]:
        return self.service.message_class(self.output_type)


@dataclass(frozen=True, eq=False)
class ServiceInfo:
    full_name: str  # e.g. "invora.simple.invoices.v1.SimpleInvoiceService"
    accessor: str  # e.g. "simple.invoices"
    file: str  # proto file, e.g. "invora/simple/invoices/v1/service.proto"
    module: str  # generated messages module
    methods: dict[str, MethodInfo] = field(default_factory=dict, repr=False)
    #: Vendor build of the file's wire facts, or "reconstructed" (ours); see :func:`file_provenance`.
    provenance: str = ""
    #: Files of other provenance that the requests and responses reach: ``{"reconstructed": [file]}``.
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    @property
    def reconstructed(self) -> tuple[str, ...]:
        """Files behind this service whose field names and numbers are ours, not the vendor's."""
        own = (self.file,) if self.provenance == RECONSTRUCTED else ()
        return own + self.depends.get(RECONSTRUCTED, ())

    @property
    def name(self) -> str:
        return self.full_name.rsplit(".", 1)[1]

    def load(self) -> Any:
        """Import the generated message module (registers the file and its dependencies)."""
        return importlib.import_module(self.module)

    def message_class(self, full_name: str) -> type[Message]:
        return _loaded_message_class(self.module, full_name)

    def method(self, name: str) -> MethodInfo:
        """By RPC name (``Freeze``) or Python name (``freeze``)."""
        found = self.methods.get(name)
        if found is None:
            for m in self.methods.values():
                if m.attr == name:
                    return m
            known = ", ".join(sorted(self.methods))
            raise LookupError(f"{self.full_name} has no method {name!r} (known: {known})")
        return found


RECONSTRUCTED = "reconstructed"


def file_provenance(file: str) -> str | None:
    """The vendor build a proto file's wire facts come from, ``"reconstructed"``, or None (not ours)."""
    from invora._proto.catalog import FILES

    found: str | None = FILES.get(file)
    return found


@functools.cache
def _loaded_message_class(module: str, full_name: str) -> type[Message]:
    # Cached with the import: request_class/response_class are on every call's path, client and sandbox.
    importlib.import_module(module)
    return _message_class(full_name)


@functools.cache
def _message_class(full_name: str) -> type[Message]:
    desc = descriptor_pool.Default().FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(desc)


@functools.lru_cache(maxsize=1)
def services() -> tuple[ServiceInfo, ...]:
    from invora._proto.catalog import SERVICES

    out = []
    for data in SERVICES:
        svc = ServiceInfo(
            full_name=data["full_name"],
            accessor=data["accessor"],
            file=data["file"],
            module=data["module"],
            provenance=data["provenance"],
            depends={k: tuple(v) for k, v in data["depends"].items()},
        )
        for m in data["methods"]:
            svc.methods[m["name"]] = MethodInfo.from_data(svc, m)
        out.append(svc)
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _by_name() -> dict[str, ServiceInfo]:
    table: dict[str, ServiceInfo] = {}
    for svc in services():
        table[svc.full_name] = svc
        table[svc.accessor] = svc
    return table


def service(name: str) -> ServiceInfo:
    """A service by full name (``invora.billing.plans.v2.PlanService``) or accessor (``billing.plans``)."""
    try:
        return _by_name()[name]
    except KeyError:
        raise LookupError(f"unknown service {name!r}; see `invora describe` for the list") from None


def method(spec: str) -> MethodInfo:
    """A method by ``pkg.Service/Method``, ``/pkg.Service/Method`` or accessor path ``simple.invoices.get``."""
    spec = spec.strip()
    if "/" in spec:
        svc_name, _, name = spec.lstrip("/").partition("/")
        return service(svc_name).method(name)
    svc_name, _, name = spec.rpartition(".")
    if not svc_name:
        raise LookupError(f"{spec!r} is not a method name: use pkg.Service/Method or an accessor path")
    return service(svc_name).method(name)
