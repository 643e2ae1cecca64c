"""``invora describe``: services, methods, messages and enums, from the catalog and descriptors.

No network and no credentials: everything comes from the generated schema shipped with the package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from invora.cli.common import EXIT_OK, UsageError

if TYPE_CHECKING:
    from invora._catalog import HttpRule, MethodInfo, ServiceInfo

__all__ = ["describe", "register"]


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "describe",
        help="describe services, methods and messages of the schema",
        description="Without NAME: list the services. NAME may be a service ('simple.invoices' or "
        "'invora.simple.invoices.v1.SimpleInvoiceService'), a method ('simple.invoices.get' or "
        "'pkg.Service/Get'), or a message or enum ('invora.simple.invoices.v1.Invoice').",
    )
    p.add_argument("name", nargs="?", help="service, method, message or enum")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text")
    p.set_defaults(handler=run_describe)


def run_describe(args: argparse.Namespace) -> int:
    result = describe(args.name)
    if args.output == "json":
        from invora.cli._output import dump_json

        dump_json(result)
    else:
        sys.stdout.write(_text(result))
    return EXIT_OK


def describe(name: str | None) -> dict[str, Any]:
    """A JSON-able description; ``kind`` is services | service | method | message | enum."""
    from invora import _catalog
    from invora.cli._resolve import find_descriptor, find_method, find_service, suggest

    if not name:
        return {
            "kind": "services",
            "services": [
                {
                    "name": s.full_name,
                    "accessor": s.accessor,
                    "methods": len(s.methods),
                    "provenance": _provenance(s),
                }
                for s in _catalog.services()
            ],
        }
    svc = find_service(name)
    if svc is not None:
        return _service(svc)
    if "/" in name or _looks_like_accessor(name):
        return _method(find_method(name))
    desc = find_descriptor(name)
    if desc is not None:
        return _message(desc) if hasattr(desc, "fields") else _enum(desc)
    names = [s.full_name for s in _catalog.services()] + [s.accessor for s in _catalog.services()]
    raise UsageError(
        f"nothing named {name!r}{suggest(name, names)}: give a service, a method, or a message's full name"
    )


def _looks_like_accessor(name: str) -> bool:
    from invora import _catalog

    head, _, _ = name.rpartition(".")
    try:
        _catalog.service(head)
    except LookupError:
        return False
    return True


def _rule(rule: HttpRule | None) -> list[str]:
    if rule is None:
        return []
    out = [f"{rule.verb.upper()} {rule.path}" + (f" body={rule.body}" if rule.body else "")]
    for extra in rule.additional:
        out += _rule(extra)
    return out


def _method_summary(m: MethodInfo) -> dict[str, Any]:
    return {
        "name": m.name,
        "full_name": m.full_name,
        "accessor": m.accessor,
        "call_type": m.kind,
        "input": m.input_type,
        "output": m.output_type,
        "http": _rule(m.http),
        "scope": m.scope,
        "retry_safe": m.read or m.idempotency_key is not None,
        "idempotency_key": m.idempotency_key,
        "paginated": m.page is not None,
    }


def _service(svc: ServiceInfo) -> dict[str, Any]:
    return {
        "kind": "service",
        "name": svc.full_name,
        "accessor": svc.accessor,
        "file": svc.file,
        "provenance": _provenance(svc),
        "depends": {k: list(v) for k, v in svc.depends.items()},
        "methods": [_method_summary(m) for m in svc.methods.values()],
    }


def _provenance(svc: ServiceInfo) -> str:
    """``vendor build 1.3``, ``reconstructed``, or ``vendor build 1.3 + reconstructed types``."""
    if svc.provenance == "reconstructed":
        return "reconstructed"
    extra = [("reconstructed" if k == "reconstructed" else f"build {k}") + " types" for k in svc.depends]
    return " + ".join([f"vendor build {svc.provenance}", *extra])


def _desc_provenance(desc: Any) -> str | None:
    from invora import _catalog

    label = _catalog.file_provenance(desc.file.name)
    return (
        None if label is None else ("reconstructed" if label == "reconstructed" else f"vendor build {label}")
    )


def _method(m: MethodInfo) -> dict[str, Any]:
    out = {"kind": "method", **_method_summary(m)}
    if m.page is not None:
        out["page"] = {"items": m.page.items, "total_count": m.page.total_count}
    out["request"] = _message(m.request_class.DESCRIPTOR)
    return out


def _type_name(field: Any) -> str:
    from google.protobuf.descriptor import FieldDescriptor as FD

    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            k, v = field.message_type.fields
            return f"map<{_type_name(k)}, {_type_name(v)}>"
        return str(field.message_type.full_name)
    if field.enum_type is not None:
        return str(field.enum_type.full_name)
    names = {v: k[5:].lower() for k, v in vars(FD).items() if k.startswith("TYPE_") and isinstance(v, int)}
    return names.get(field.type, str(field.type))


def _behaviour(field: Any) -> list[str]:
    import importlib

    field_behavior_pb2: Any = importlib.import_module("google.api.field_behavior_pb2")
    values = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]  # repeated: [] when unset
    return [field_behavior_pb2.FieldBehavior.Name(v) for v in values]


def _message(desc: Any) -> dict[str, Any]:
    fields = []
    for f in desc.fields:
        is_map = f.message_type is not None and f.message_type.GetOptions().map_entry
        label = "repeated" if f.is_repeated and not is_map else ("optional" if f.has_presence else "")
        oneof = (
            f.containing_oneof.name
            if f.containing_oneof and not f.containing_oneof.name.startswith("_")
            else ""
        )
        fields.append(
            {
                "number": f.number,
                "name": f.name,
                "json_name": f.json_name,
                "type": _type_name(f),
                "label": "" if is_map or (f.message_type is not None and label == "optional") else label,
                "oneof": oneof,
                "behavior": _behaviour(f),
            }
        )
    return {
        "kind": "message",
        "name": desc.full_name,
        "file": desc.file.name,
        "provenance": _desc_provenance(desc),
        "fields": fields,
    }


def _enum(desc: Any) -> dict[str, Any]:
    return {
        "kind": "enum",
        "name": desc.full_name,
        "file": desc.file.name,
        "provenance": _desc_provenance(desc),
        "values": [{"name": v.name, "number": v.number} for v in desc.values],
    }


# -- text rendering -----------------------------------------------------------------------------------
def _table(rows: list[list[str]], indent: str = "  ") -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


def _text(d: dict[str, Any]) -> str:
    kind = d["kind"]
    if kind == "services":
        rows = [[s["accessor"], s["name"], f"{s['methods']} rpcs", s["provenance"]] for s in d["services"]]
        return f"{len(rows)} services (describe one by accessor or full name):\n" + _table(rows)
    if kind == "service":
        out = f"service {d['name']}\n  accessor: client.{d['accessor']}\n  proto: {d['file']}\n"
        out += f"  wire facts: {d['provenance']}\n"
        for label, files in d["depends"].items():
            out += f"  reaches {label}: {', '.join(files)}\n"
        out += "\n"
        rows = []
        for m in d["methods"]:
            flags = ",".join(
                x for x, on in (("paginated", m["paginated"]), ("retry-safe", m["retry_safe"])) if on
            )
            rows.append(
                [m["name"], m["call_type"], "; ".join(m["http"]) or "(gRPC only)", m["scope"] or "", flags]
            )
        return out + _table([["RPC", "KIND", "HTTP", "SCOPE", ""], *rows])
    if kind == "method":
        lines = [
            f"rpc {d['full_name']}",
            f"  accessor: client.{d['accessor']}(...)",
            f"  type:     {d['call_type']}",
            f"  request:  {d['input']}",
            f"  response: {d['output']}",
            f"  http:     {'; '.join(d['http']) or '(none: gRPC only)'}",
            f"  scope:    {d['scope'] or '(none)'}",
            "  retries:  "
            + ("safe (read)" if d["retry_safe"] and not d["idempotency_key"] else "")
            + (f"safe ({d['idempotency_key']} idempotency key)" if d["idempotency_key"] else "")
            + ("" if d["retry_safe"] else "only when the request was never sent (a non-idempotent write)"),
        ]
        if "page" in d:
            p = d["page"]
            lines.append(
                f"  paginated: items in '{p['items']}', cursor next_page_cursor"
                + (", total_count" if p["total_count"] else "")
                + " — `invora list` follows the cursors"
            )
        return "\n".join(lines) + "\n\n" + _text(d["request"])
    if kind == "message":
        rows = [
            [
                str(f["number"]),
                f["name"],
                f["json_name"],
                " ".join(x for x in (f["label"], f["type"]) if x),
                f"oneof {f['oneof']}" if f["oneof"] else "",
                ",".join(f["behavior"]),
            ]
            for f in d["fields"]
        ]
        body = _table([["#", "FIELD", "JSON", "TYPE", "", ""], *rows]) if rows else "  (no fields)\n"
        return f"message {d['name']}\n" + _provenance_line(d) + body
    rows = [[str(v["number"]), v["name"]] for v in d["values"]]
    return f"enum {d['name']}\n" + _provenance_line(d) + _table(rows)


def _provenance_line(d: dict[str, Any]) -> str:
    return f"  proto: {d['file']} — wire facts: {d['provenance']}\n" if d.get("provenance") else ""
