"""The schema-derived rules the client acts on, in one place: names, reads, idempotency, pagination.

Everything here is a pure function of descriptors (no I/O). ``codegen/generate.py`` applies the rules to
write the compiled catalog; :mod:`invora.schema` applies the same functions at run time to a schema
pulled by reflection, so an RPC the SDK was not built with is retried, deduplicated and paginated by the
same rules. ``codegen/rules.py`` re-exports this module; ``tests/test_codegen_rules.py`` checks each rule
on the real image and on small hand-made descriptors.

- **Accessor paths** (``client.billing.plans``): the package minus ``invora`` and the version; a package
  with several services adds each service's snake_case name minus ``Service``; a few services whose
  package name is not what a user would type get an explicit name (``ACCESSOR_NAMES``).
- **Reads** are safe to repeat: an HTTP ``GET`` rule, an RPC named ``List…``/``Get…``, or a read scope
  (``Invora.<Area>.v<N>.List`` / ``.Get``) on a list-shaped RPC such as ``CustomerInvoices``.
- **Idempotent writes** carry a key the server deduplicates on: ``request_id`` (documents, the Simple
  module, payments; the client fills an empty one with a UUID4) or the caller's ``transaction_id`` (usage
  events, alone or in a batch).
- **Pagination**: a read whose request has ``pagination`` (``kernel.PaginationInfo``) and whose response
  has repeated ``items`` and a string ``next_page_cursor``. Writes never paginate: re-sending a write with each
  cursor would repeat its effect.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from google.protobuf import descriptor_pb2, empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

FDP = descriptor_pb2.FieldDescriptorProto

#: Services whose package segment is not the name a user guesses. Keys are full service names.
ACCESSOR_NAMES = {
    "invora.billing.account.v2.AccountsService": "billing.accounts",
    "invora.billing.metering.v2.BillableMetricsService": "billing.metrics",
    "invora.billing.webhooks.v2.WebhookEndpointsService": "billing.webhook_endpoints",
    "invora.admin.billing.v2.BillingOrgAdminService": "admin.billing.orgs",
    "invora.admin.billing.v2.SallaPlanMappingAdminService": "admin.billing.salla_plan_mappings",
    "invora.admin.identity.v2.TenantAdminService": "admin.identity.tenants",
}

_VERSION = re.compile(r"v\d+(alpha\d*|beta\d*)?")
_READ_NAME = re.compile(r"(List|Get)([A-Z]|$)")
_READ_SCOPE_LEAF = ("List", "Get")

#: Request fields that make a write idempotent, in the order they are looked for. ``fill``: the client
#: generates one when the caller left it empty.
IDEMPOTENCY_FIELDS = (("request_id", True), ("transaction_id", False))


def snake(name: str) -> str:
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def accessor_paths(services: list[tuple[str, str]]) -> dict[str, str]:
    """Map service full name -> client attribute path.

    A path that is also a prefix of another gets ``_service`` appended, so namespaces and services never
    share an attribute. Python keywords get a trailing underscore.
    """
    by_package: dict[str, list[str]] = {}
    for package, name in services:
        by_package.setdefault(package, []).append(name)
    paths: dict[str, str] = {}
    for package, names in by_package.items():
        segs = [s for s in package.split(".") if not _VERSION.fullmatch(s)]
        if segs and segs[0] == "invora":
            segs = segs[1:]
        for name in names:
            full = f"{package}.{name}"
            if full in ACCESSOR_NAMES:
                paths[full] = ACCESSOR_NAMES[full]
                continue
            parts = list(segs)
            if len(names) > 1 or not parts:
                parts.append(
                    snake(name[: -len("Service")] if name.endswith("Service") and name != "Service" else name)
                )
            parts = [p + "_" if keyword.iskeyword(p) else p for p in parts]
            paths[full] = ".".join(parts)
    values = set(paths.values())
    for full, path in sorted(paths.items()):
        if any(other.startswith(path + ".") for other in values):
            paths[full] = path + "_service"
    return paths


def is_read(method_name: str, http_verb: str | None, scope: str | None) -> bool:
    if http_verb == "get" or _READ_NAME.match(method_name):
        return True
    return scope is not None and ".Modify." not in scope and scope.rsplit(".", 1)[-1] in _READ_SCOPE_LEAF


def idempotency_key(
    request: descriptor_pb2.DescriptorProto,
    messages: dict[str, descriptor_pb2.DescriptorProto],
) -> tuple[str, bool] | None:
    """``(field path, client fills it)`` for a write the server deduplicates, else None.

    The key is a top-level string field, or the field of every item of a repeated message field (a
    batch), e.g. ``events.transaction_id``.
    """
    for name, fill in IDEMPOTENCY_FIELDS:
        for fl in request.field:
            if fl.name == name and _is_single_string(fl):
                return name, fill
        if fill:
            continue  # the client fills top-level keys only; batches carry the caller's own keys
        for fl in request.field:
            if fl.type == FDP.TYPE_MESSAGE and fl.label == FDP.LABEL_REPEATED:
                item = messages.get(fl.type_name)
                if item is not None and any(f.name == name and _is_single_string(f) for f in item.field):
                    return f"{fl.name}.{name}", False
    return None


def _is_single_string(fl: descriptor_pb2.FieldDescriptorProto) -> bool:
    return fl.type == FDP.TYPE_STRING and fl.label != FDP.LABEL_REPEATED


def page_shape(
    read: bool,
    streaming: bool,
    request: descriptor_pb2.DescriptorProto,
    response: descriptor_pb2.DescriptorProto,
) -> dict[str, object] | None:
    if not read or streaming:
        return None
    req = {f.name: f for f in request.field}
    resp = {f.name: f for f in response.field}
    if not (
        "pagination" in req
        and req["pagination"].type_name == ".kernel.PaginationInfo"
        and "items" in resp
        and resp["items"].label == FDP.LABEL_REPEATED
        and "next_page_cursor" in resp
    ):
        return None
    if resp["next_page_cursor"].type != FDP.TYPE_STRING:
        return None
    return {"items": "items", "total_count": "total_count" in resp}


#: ``kernel.options`` on MethodOptions: ``KernelMethodOptions { string scope = 1; }``.
SCOPE_EXTENSION = 53036


def decode_scope(options: descriptor_pb2.MethodOptions) -> str | None:
    """Read ``(kernel.options).scope`` from method options without needing kernel's generated code."""
    # Through Empty, every field is unknown: the same answer whether or not kernel's extension is loaded.
    fields: Any = UnknownFieldSet(empty_pb2.Empty.FromString(options.SerializeToString()))
    for field in fields:
        if field.field_number != SCOPE_EXTENSION:
            continue
        inners: Any = UnknownFieldSet(empty_pb2.Empty.FromString(field.data))
        for inner in inners:
            if inner.field_number == 1:
                return str(inner.data.decode("utf-8"))
    return None


def http_rule(rule: Any) -> dict[str, Any]:
    """A ``google.api.HttpRule`` as plain data (the catalog's ``http`` entry)."""
    verb = rule.WhichOneof("pattern") or ""
    path = rule.custom.path if verb == "custom" else getattr(rule, verb, "")
    if verb == "custom":
        verb = rule.custom.kind.lower()
    return {
        "verb": verb,
        "path": path,
        "body": rule.body,
        "response_body": rule.response_body,
        "additional": [http_rule(extra) for extra in rule.additional_bindings],
    }


def method_facts(
    method: descriptor_pb2.MethodDescriptorProto,
    messages: dict[str, descriptor_pb2.DescriptorProto],
) -> dict[str, Any]:
    """What the client decides from one RPC's descriptor: HTTP rule, scope, read, idempotency, pages.

    ``messages`` maps ``.full.Name`` to every message the request and response refer to. The keys are
    those of the catalog (``invora._proto.catalog``) minus the Python-only ``attr``.
    """
    from google.api import annotations_pb2  # type: ignore[import-untyped]

    req = messages[method.input_type]
    resp = messages[method.output_type]
    # Re-parse now that google.api.http is registered: options read before that hold it as unknown bytes.
    opts = descriptor_pb2.MethodOptions.FromString(method.options.SerializeToString())
    http = (
        http_rule(opts.Extensions[annotations_pb2.http]) if opts.HasExtension(annotations_pb2.http) else None
    )
    scope = decode_scope(opts)
    read = is_read(method.name, http["verb"] if http else None, scope)
    key = None if read else idempotency_key(req, messages)
    page = page_shape(read, method.client_streaming or method.server_streaming, req, resp)
    return {
        "name": method.name,
        "input": method.input_type[1:],
        "output": method.output_type[1:],
        "client_streaming": method.client_streaming,
        "server_streaming": method.server_streaming,
        "http": http,
        "scope": scope,
        "read": read,
        "idempotency_key": key[0] if key else None,
        "request_id": bool(key and key[1]),
        "page": page,
    }
