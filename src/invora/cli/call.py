"""``invora call`` (one RPC, response as proto3 JSON) and ``invora list`` (auto-paginating lists)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from invora.cli.common import EXIT_OK, UsageError, client_from_args, read_json

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from invora._catalog import MethodInfo

__all__ = ["apply_filters", "apply_sort", "build_request", "register"]

_FILTER_HELP = """\
--filter forms (repeatable; conditions combine with AND):
  text=WORDS            free-text search (filter.text_search)
  FIELD=VALUE           a typed condition of the filter's part, e.g. frozen=true,
                        currency_code=SAR,USD (ids: comma-separated in_values),
                        issue_date=2026-01-31 or issue_date=2026-01-01..2026-02-01 (dates),
                        enum fields by value name (full or without the type prefix)
  '{...}'               raw proto3 JSON merged into the method's filter message,
                        e.g. '{"part": {"or": {"operands": [{"frozen": true}, {"currencyCode": {"inValues": ["SAR"]}}]}}}'
Use `invora describe <method>` to see the filter's fields."""


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    call = sub.add_parser(
        "call",
        parents=list(parents),
        help="call one RPC and print the response as JSON",
        description="Call one RPC. The request is JSON (proto3 mapping; camelCase or snake_case names) from "
        "--data '<json>', --data @file, or stdin. Paginated methods return one page (see `invora list`); "
        "server streams print one JSON document per message.",
    )
    call.add_argument("method", help="'pkg.Service/Method' or accessor path such as simple.invoices.get")
    call.add_argument(
        "--output",
        "-o",
        choices=("json", "jsonl"),
        default="json",
        help="json: pretty (default); jsonl: one compact line",
    )
    _output_flags(call)
    call.add_argument("--verbose", "-v", action="store_true", help="print response metadata to stderr")
    call.add_argument(
        "--schema",
        metavar="FILE",
        help="a FileDescriptorSet for RPCs this SDK was not built with (default: ask the server by reflection)",
    )
    call.set_defaults(handler=run_call)

    lst = sub.add_parser(
        "list",
        parents=list(parents),
        help="list every item of a paginated method (follows cursors)",
        description="List items of a paginated RPC across pages. --data gives the base request.",
        epilog=_FILTER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lst.add_argument(
        "method", help="a paginated method (simple.invoices.list) or a service (simple.invoices)"
    )
    lst.add_argument("--filter", "-f", action="append", default=[], metavar="FILTER", help="see below")
    lst.add_argument(
        "--sort", action="append", default=[], metavar="FIELD[:asc|desc]", help="sort rule (repeatable)"
    )
    lst.add_argument("--limit", "-n", type=_positive, help="stop after N items (default: all)")
    lst.add_argument("--page-size", type=_positive, help="items per request (pagination.limit)")
    lst.add_argument(
        "--output",
        "-o",
        choices=("json", "jsonl", "table"),
        default="json",
        help="json: one pretty array (default); jsonl: one compact line per item; table",
    )
    lst.add_argument("--columns", help="table columns, comma-separated field names")
    _output_flags(lst)
    lst.set_defaults(handler=run_list)


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all-fields", action="store_true", help="also print fields holding default values")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="deadline of each attempt (default 30)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# -- requests -----------------------------------------------------------------------------------------
def build_request(info: MethodInfo, data: Any) -> Message:
    """Parse proto3 JSON into the method's request message; unknown fields are usage errors."""
    from google.protobuf import json_format

    request = info.request_class()
    if data is None:
        return request
    if not isinstance(data, dict):
        raise UsageError(f"the request for {info.full_name} must be a JSON object, got {type(data).__name__}")
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        raise UsageError(f"invalid request for {info.input_type}: {exc}") from None
    return request


def _field(desc: Any, name: str) -> Any | None:
    name = name.strip()
    found = desc.fields_by_name.get(name)
    if found is None:
        found = next((f for f in desc.fields if f.json_name == name), None)
    return found


def apply_filters(info: MethodInfo, request: Message, specs: Sequence[str]) -> None:
    """Apply ``--filter`` forms (see ``_FILTER_HELP``) to ``request.filter`` in place."""
    from google.protobuf import json_format

    if not specs:
        return
    req: Any = request
    filter_field = _field(request.DESCRIPTOR, "filter")
    conditions: list[Any] = []
    for spec in specs:
        text = spec.strip()
        if text.startswith("{"):
            if filter_field is None or filter_field.message_type is None:
                raise UsageError(f"{info.full_name} has no filter field; pass request fields with --data")
            try:
                json_format.ParseDict(json.loads(text), req.filter)
            except (ValueError, json_format.ParseError) as exc:
                raise UsageError(f"--filter {text!r}: {exc}") from None
            continue
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--filter {text!r}: expected text=WORDS, FIELD=VALUE or a JSON object")
        name = name.strip()
        if name in ("text", "q", "text_search", "textSearch"):
            if filter_field is not None and _field(filter_field.message_type, "text_search") is not None:
                req.filter.text_search = value
            elif _field(request.DESCRIPTOR, "text_search") is not None:
                req.text_search = value
            else:
                raise UsageError(f"{info.full_name} has no free-text search")
            continue
        if filter_field is None or filter_field.message_type is None:
            raise UsageError(f"{info.full_name} has no filter field; pass request fields with --data")
        part_field = _field(filter_field.message_type, "part")
        if part_field is not None and _field(part_field.message_type, name) is not None:
            part = _new(part_field.message_type)
            _set_condition(part, _field(part_field.message_type, name), value)
            conditions.append(part)
            continue
        plain = _field(filter_field.message_type, name)
        if plain is not None and plain.message_type is None:
            _set_condition(req.filter, plain, value)
            continue
        known = []
        if part_field is not None:
            known = [f.name for f in part_field.message_type.fields if f.name not in ("and", "or", "not")]
        known += [f.name for f in filter_field.message_type.fields if f.message_type is None]
        raise UsageError(
            f"--filter {name}=…: {filter_field.message_type.full_name} has no condition {name!r}"
            + (f" (known: text, {', '.join(known)})" if known else "")
        )
    if conditions:
        assert filter_field is not None
        part_field = _field(filter_field.message_type, "part")
        assert part_field is not None
        if len(conditions) == 1 and not req.filter.HasField("part"):
            req.filter.part.CopyFrom(conditions[0])
            return
        if _field(part_field.message_type, "and") is None:
            raise UsageError(f"{part_field.message_type.full_name} cannot combine conditions (no 'and')")
        existing = [req.filter.part] if req.filter.HasField("part") else []
        combined = _new(part_field.message_type)
        for c in [*existing, *conditions]:  # copied into `combined`, then back into the filter
            getattr(combined, "and").operands.add().CopyFrom(c)
        req.filter.part.CopyFrom(combined)


def _new(desc: Any) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)()


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _set_condition(target: Any, field: Any, value: str) -> None:
    """Set one typed condition from its command-line text."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    name = field.name
    where = f"--filter {name}={value}"
    if field.message_type is None:
        if field.type == FD.TYPE_BOOL:
            low = value.strip().lower()
            if low not in _TRUE | _FALSE:
                raise UsageError(f"{where}: expected true or false")
            setattr(target, name, low in _TRUE)
        elif field.enum_type is not None:
            setattr(target, name, _enum_number(field.enum_type, value, where))
        elif field.type == FD.TYPE_STRING:
            setattr(target, name, value)
        elif field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            setattr(target, name, _number(value, float, where))
        else:
            setattr(target, name, _number(value, int, where))
        return
    msg = getattr(target, name)
    sub = field.message_type
    if "in_values" in sub.fields_by_name:
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            raise UsageError(f"{where}: give one or more comma-separated values")
        msg.in_values.extend(values)
        return
    if "exact" in sub.fields_by_name and "range" in sub.fields_by_name:
        _date_condition(msg, value, where)
        return
    if sub.full_name.startswith("google.protobuf.") and sub.full_name.endswith("Value"):
        inner = sub.fields_by_name["value"]
        _set_condition(msg, inner, value)
        return
    raise UsageError(
        f"{where}: {sub.full_name} has no shorthand; use --filter '{{\"part\": {{...}}}}' (JSON)"
    )


def _date_condition(msg: Any, value: str, where: str) -> None:
    start, dots, end = value.partition("..")
    if not dots:
        _set_date(msg.exact, start, where)
        return
    if start:
        _set_date(msg.range.from_inclusive, start, where)
    if end:
        _set_date(msg.range.to_exclusive, end, where)
    if not start and not end:
        raise UsageError(f"{where}: a range needs a start or an end (YYYY-MM-DD..YYYY-MM-DD)")


def _set_date(msg: Any, text: str, where: str) -> None:
    import datetime

    try:
        d = datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{where}: dates are YYYY-MM-DD, ranges FROM..TO (TO exclusive)") from None
    msg.year, msg.month, msg.day = d.year, d.month, d.day


def _enum_number(enum: Any, text: str, where: str) -> int:
    wanted = text.strip().upper()
    for v in enum.values:
        if v.name == wanted or v.name.endswith("_" + wanted):
            return int(v.number)
    names = ", ".join(v.name for v in enum.values)
    raise UsageError(f"{where}: not a value of {enum.full_name} ({names})")


def _number(text: str, kind: type[int] | type[float], where: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{where}: expected a number") from None


def apply_sort(info: MethodInfo, request: Message, specs: Sequence[str]) -> None:
    """``--sort field[:asc|desc]`` → ``sort.rules`` entries, in order."""
    if not specs:
        return
    req: Any = request
    sort_field = _field(request.DESCRIPTOR, "sort")
    rules_field = _field(sort_field.message_type, "rules") if sort_field and sort_field.message_type else None
    if rules_field is None or rules_field.message_type is None:
        raise UsageError(f"{info.full_name} does not take sort rules")
    rule_desc = rules_field.message_type
    for spec in specs:
        name, _, direction = spec.partition(":")
        field = _field(rule_desc, name)
        if field is None or field.enum_type is None:
            known = ", ".join(f.name for f in rule_desc.fields)
            raise UsageError(f"--sort {spec}: cannot sort by {name!r} (sortable: {known})")
        direction = (direction or "asc").strip().lower()
        suffix = {"asc": "_ASCENDING", "desc": "_DESCENDING"}.get(direction)
        if suffix is None:
            raise UsageError(f"--sort {spec}: direction is asc or desc")
        number = next(v.number for v in field.enum_type.values if v.name.endswith(suffix))
        setattr(req.sort.rules.add(), field.name, number)


# -- commands -----------------------------------------------------------------------------------------
def run_call(args: argparse.Namespace) -> int:
    from invora.cli._output import dump_json, to_dict
    from invora.cli._resolve import find_method

    unknown: UsageError | None = None
    try:
        info: MethodInfo | None = find_method(args.method)
    except UsageError as exc:
        if "/" not in args.method:
            raise
        info, unknown = None, exc  # not compiled in: resolved in --schema or the server's reflection below
    data = read_json(args)
    compact = args.output == "jsonl"
    options = {"schema": args.schema} if args.schema else None
    with client_from_args(args, options=options) as client:
        if info is None:
            info = _runtime_method(client, args.method, unknown)
        if info.client_streaming:
            items = data if isinstance(data, list) else ([] if data is None else [data])
            requests = [build_request(info, item) for item in items]
            result = client.invoke(info, iter(requests), timeout=args.timeout)
        else:
            if isinstance(data, list):
                raise UsageError(f"{info.full_name} takes one request object, not a JSON array")
            request = build_request(info, data)
            if info.server_streaming:
                result = client.invoke(info, request, timeout=args.timeout)
            else:
                raw = client.raw(info, request, timeout=args.timeout)
                if args.verbose:
                    _print_metadata(raw.initial_metadata, raw.trailing_metadata)
                dump_json(to_dict(raw.response, all_fields=args.all_fields), compact=compact)
                return EXIT_OK
        for message in _stream(result):
            dump_json(to_dict(message, all_fields=args.all_fields), compact=compact)
            sys.stdout.flush()
    return EXIT_OK


def _runtime_method(client: Any, spec: str, unknown: UsageError | None) -> MethodInfo:
    from invora.schema.guard import runtime_method

    try:
        return runtime_method(client, spec)
    except LookupError as exc:
        raise UsageError(f"{unknown}; {exc}") from None


def _stream(result: Any) -> Iterator[Any]:
    if hasattr(result, "DESCRIPTOR"):  # client streaming: one response
        yield result
        return
    yield from result


def _print_metadata(initial: Iterable[tuple[str, Any]], trailing: Iterable[tuple[str, Any]]) -> None:
    for title, pairs in (("response headers", initial), ("response trailers", trailing)):
        sys.stderr.write(f"{title}:\n")
        for key, value in pairs:
            shown = f"<{len(value)} bytes>" if isinstance(value, bytes) else value
            sys.stderr.write(f"  {key}: {shown}\n")


def _list_method(spec: str) -> MethodInfo:
    from invora.cli._resolve import find_method, find_service

    svc = find_service(spec) if "/" not in spec else None
    if svc is not None:
        paged = [m for m in svc.methods.values() if m.page is not None]
        chosen = svc.methods.get("List") if "List" in svc.methods else (paged[0] if len(paged) == 1 else None)
        if chosen is None or chosen.page is None:
            names = ", ".join(m.accessor for m in paged) or "none"
            raise UsageError(f"{svc.full_name}: name the list method (paginated methods: {names})")
        return chosen
    info = find_method(spec)
    if info.page is None:
        raise UsageError(f"{info.full_name} is not a paginated method; use `invora call`")
    return info


def run_list(args: argparse.Namespace) -> int:
    from invora.cli._output import dump_json, render_table, table_columns, table_rows

    info = _list_method(args.method)
    request = build_request(info, read_json(args))
    apply_filters(info, request, args.filter)
    apply_sort(info, request, args.sort)
    if args.columns and args.output != "table":
        raise UsageError("--columns applies to --output table")
    assert info.page is not None
    item_desc = info.response_class.DESCRIPTOR.fields_by_name[info.page.items].message_type
    columns = table_columns(item_desc, args.columns.split(",") if args.columns else None) if item_desc else []
    with client_from_args(args) as client:
        pager = client.invoke(
            info, request, timeout=args.timeout, page_size=args.page_size, max_items=args.limit
        )
        out = sys.stdout
        if args.output == "table":
            if item_desc is None:
                raise UsageError(f"{info.full_name} items are not messages; use --output json")
            render_table([c.name for c in columns], table_rows(pager, columns))
        elif args.output == "jsonl":
            for item in pager:
                dump_json(_item(item, args.all_fields), compact=True, out=out)
                out.flush()  # streamed: a reader sees items as pages arrive
        else:
            count = 0
            out.write("[")
            for item in pager:
                text = json.dumps(_item(item, args.all_fields), ensure_ascii=False, indent=2)
                out.write(("," if count else "") + "\n" + textwrap.indent(text, "  "))
                count += 1
            out.write("\n]\n" if count else "]\n")
    return EXIT_OK


def _item(item: Any, all_fields: bool) -> Any:
    from invora.cli._output import to_dict

    return to_dict(item, all_fields=all_fields) if hasattr(item, "DESCRIPTOR") else item
