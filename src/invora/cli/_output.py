"""Rendering: proto3 JSON, JSON lines, plain-text tables, and errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from invora._pbcompat import is_repeated
from invora.transcoding import WRAPPERS

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from invora.errors import InvoraError

__all__ = ["dump_json", "print_error", "render_table", "table_columns", "table_rows", "to_dict"]


def to_dict(message: Message, *, all_fields: bool = False) -> dict[str, Any]:
    """Proto3 JSON mapping: lowerCamelCase names, enum names, int64 as strings, RFC 3339 timestamps."""
    from google.protobuf import json_format

    return json_format.MessageToDict(message, always_print_fields_with_no_presence=all_fields)


def dump_json(value: Any, *, compact: bool = False, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if compact:
        stream.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        stream.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


# -- tables -------------------------------------------------------------------------------------------
_PLAIN_MESSAGES = {"kernel.DecimalValue", "google.type.Date", "google.protobuf.Timestamp", *WRAPPERS}
_HIDDEN_BY_DEFAULT = {"concurrency_stamp"}


def _tabular(field: Any) -> bool:
    if is_repeated(field):
        return False
    if field.message_type is None:
        return True
    return field.message_type.full_name in _PLAIN_MESSAGES


def table_columns(descriptor: Any, wanted: Sequence[str] | None) -> list[Any]:
    """Default: every scalar-like field (numbers, strings, enums, decimals, dates, timestamps)."""
    if not wanted:
        return [f for f in descriptor.fields if _tabular(f) and f.name not in _HIDDEN_BY_DEFAULT]
    by_name = {f.name: f for f in descriptor.fields} | {f.json_name: f for f in descriptor.fields}
    columns = []
    for name in wanted:
        field = by_name.get(name.strip())
        if field is None:
            known = ", ".join(f.name for f in descriptor.fields)
            from invora.cli.common import UsageError

            raise UsageError(f"--columns: {descriptor.name} has no field {name!r} (fields: {known})")
        columns.append(field)
    return columns


def _cell(message: Message, field: Any) -> str:
    if field.message_type is not None and not is_repeated(field):
        if not message.HasField(field.name):
            return ""
        value: Any = getattr(message, field.name)
        kind = field.message_type.full_name
        if kind == "kernel.DecimalValue":
            from invora.decimal import to_decimal

            return str(to_decimal(value))
        if kind == "google.type.Date":
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d}" if value.year else ""
        if kind == "google.protobuf.Timestamp":
            return str(value.ToJsonString())
        if kind.startswith("google.protobuf.") and kind.endswith("Value"):
            return str(value.value)
    if field.message_type is not None or is_repeated(field):
        from google.protobuf import json_format

        return json.dumps(json_format.MessageToDict(message).get(field.json_name), separators=(",", ":"))
    value = getattr(message, field.name)
    if field.enum_type is not None:
        name = (
            field.enum_type.values_by_number[value].name
            if value in field.enum_type.values_by_number
            else str(value)
        )
        prefix = _enum_prefix(field.enum_type)
        short = name[len(prefix) :] if prefix and name.startswith(prefix) else name
        return "" if short == "UNSPECIFIED" else short
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _enum_prefix(enum: Any) -> str:
    """``SUBMISSION_STATUS_`` from ``SUBMISSION_STATUS_UNSPECIFIED`` (the proto3 zero-value convention)."""
    first = enum.values[0].name if enum.values else ""
    return first[: -len("UNSPECIFIED")] if first.endswith("_UNSPECIFIED") else ""


def table_rows(messages: Iterable[Message], columns: Sequence[Any]) -> list[list[str]]:
    return [[_cell(m, c) for c in columns] for m in messages]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    """Left-aligned columns separated by two spaces; cells are single-line."""
    stream = out or sys.stdout
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [list(header), *rows]:
        stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


# -- errors -------------------------------------------------------------------------------------------
def print_error(exc: InvoraError, out: TextIO | None = None) -> None:
    """Status, message and every unpacked detail, one per line (no traceback, never a token)."""
    stream = out or sys.stderr
    code = exc.code.name
    stream.write(f"invora: {code} ({_status_label(exc)}): {exc.message or '(no message)'}\n")
    if exc.method:
        stream.write(f"  method: {exc.method}\n")
    if exc.attempts > 1:
        stream.write(f"  attempts: {exc.attempts}\n")
    for detail in exc.details:
        stream.write("  " + _detail_line(detail) + "\n")
    if exc.details_error:
        stream.write(f"  (status details could not be parsed: {exc.details_error})\n")
    if exc.retry_delay is not None and not any(
        d.DESCRIPTOR.full_name == "google.rpc.RetryInfo" for d in exc.details
    ):
        stream.write(f"  retry after: {exc.retry_delay:g}s\n")
    hint = _hint(exc)
    if hint:
        stream.write(f"  hint: {hint}\n")


def _detail_line(detail: Message) -> str:
    from google.protobuf import json_format

    kind = detail.DESCRIPTOR.full_name
    d: Any = detail
    if kind == "google.rpc.ErrorInfo":
        meta = ", ".join(f"{k}={v}" for k, v in sorted(d.metadata.items()))
        return f"error info: reason={d.reason} domain={d.domain}" + (f" {{{meta}}}" if meta else "")
    if kind == "google.rpc.BadRequest":
        return "\n  ".join(f"field violation: {v.field}: {v.description}" for v in d.field_violations)
    if kind == "google.rpc.RetryInfo":
        delay = d.retry_delay.seconds + d.retry_delay.nanos / 1e9
        return f"retry info: retry after {delay:g}s"
    if kind == "invora.documents.v2.ValidationError":
        body = to_dict(detail)
        parts = [f"{k}={body[k]}" for k in ("field", "code", "severity") if body.get(k)]
        return f"validation error: {' '.join(parts)}: {body.get('message', '')}".rstrip(": ")
    try:
        body_text = json.dumps(json_format.MessageToDict(detail), separators=(",", ":"))
    except Exception:
        body_text = "(unprintable)"
    return f"{kind}: {body_text}"


def _status_label(exc: InvoraError) -> str:
    """``HTTP 404`` when there is an HTTP status to show; a failed connection has none."""
    if exc.code.name == "UNAVAILABLE" and exc.request_not_sent:
        return "connection failed, no response"
    return f"HTTP {exc.http_status}" if exc.http_status else "no HTTP response"


# What gRPC's own client reports (in the error's message and debug string, both written by the client
# library, not the server) when the peer answered HTTP/2's connection preface with something else, such as
# an HTTP/1 REST port. Used for a hint only, never for a decision.
_NOT_HTTP2 = ("Failed parsing HTTP/2", "Trying to connect an http1.x server")


def _hint(exc: InvoraError) -> str:
    name = exc.code.name
    seen = f"{exc.message} {exc.debug or ''}"
    if name == "UNAVAILABLE" and any(text in seen for text in _NOT_HTTP2):
        return (
            "the target does not speak gRPC (HTTP/2): if it is a REST endpoint, add --transport rest and "
            "give its URL, e.g. --target http://127.0.0.1:8080"
        )
    if exc.http_status == 0 and exc.message.startswith("RemoteProtocolError"):  # the REST client's words
        return "the target did not answer HTTP/1.1: if it is a gRPC port, drop --transport rest"
    if name == "UNAVAILABLE" and ("connect" in exc.message.lower() or exc.request_not_sent):
        return "is the target reachable? check --target / INVORA_TARGET"
    if name == "UNAUTHENTICATED":
        return "check the credentials (--client-id/--client-secret or --token) and --token-url"
    if name == "PERMISSION_DENIED" and exc.reason == "TENANT_FORBIDDEN":
        return "the token has no role on --org-id; omit it to act on the home organization"
    return ""
