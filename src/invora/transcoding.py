"""HTTP-rule transcoding shared by the REST transport (encode requests, decode responses) and the sandbox
(decode requests, encode responses): path templates, routing, query parameters, JSON bodies.

A ``google.api.http`` rule maps an RPC to ``VERB /path/{field}``: path variables bind request fields
(``{key}``, nested ``{input.id}``, multi-segment ``{name=projects/*/docs/**}``); ``body: "*"`` carries the
remaining fields as JSON, ``body: "field"`` that one field; whatever is bound by neither travels as query
parameters (``a.b=1``, repeated keys for repeated fields, well-known types in their JSON string form). JSON
is proto3 JSON (lowerCamelCase, enums by name, 64-bit integers as strings).
"""

from __future__ import annotations

import functools
import heapq
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from invora._pbcompat import is_repeated

if TYPE_CHECKING:
    from invora._catalog import HttpRule, MethodInfo

__all__ = [
    "WRAPPERS",
    "PathTemplate",
    "Route",
    "Router",
    "TranscodingError",
    "decode",
    "decode_response",
    "encode_response",
    "expand",
    "parse_template",
    "router",
]


#: Largest JSON request body decoded (gRPC's message limit in this SDK).
MAX_BODY = 64 * 1024 * 1024


class TranscodingError(ValueError):
    """A request or response does not fit its HTTP rule; ``field`` names the offending field if known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# -- path templates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    field_path: tuple[str, ...]
    pattern: tuple[str, ...]  # segments: literal, "*" or "**"

    @property
    def multi(self) -> bool:
        return len(self.pattern) != 1 or self.pattern[0] == "**"


Segment = str | Variable  # a literal, "*", "**" or a variable


@dataclass(frozen=True)
class PathTemplate:
    template: str
    segments: tuple[Segment, ...]
    verb: str  # custom verb after ":" ("" when none)

    @property
    def variables(self) -> list[Variable]:
        return [s for s in self.segments if isinstance(s, Variable)]

    def shape(self) -> tuple[Any, ...]:
        """What the template matches, without variable names: equal shapes are the same route."""
        out: list[Any] = []
        for s in self.segments:
            out.append(("v", s.pattern) if isinstance(s, Variable) else ("l", s))
        return (*out, self.verb)

    def specificity(self) -> tuple[int, ...]:
        """Sort key: literal segments before variables before ``**`` at each position."""
        key: list[int] = []
        for s in self.segments:
            if isinstance(s, Variable):
                key.append(2 if s.multi else 1)
            else:
                key.append(3 if s == "**" else (1 if s == "*" else 0))
        return tuple(key)

    def match(self, path: str) -> dict[str, str] | None:
        """Bindings ``{"input.id": "42"}`` when ``path`` (raw, percent-encoded) matches, else ``None``."""
        raw = path.split("?", 1)[0]
        if not raw.startswith("/"):
            return None
        parts = raw[1:].split("/")
        if self.verb:
            last, sep, verb = parts[-1].rpartition(":")
            if not sep or verb != self.verb:
                return None
            parts[-1] = last
        elif parts and ":" in parts[-1] and self._last_is_literal():
            return None
        out: dict[str, str] = {}
        if not self._match(list(self.segments), parts, out):
            return None
        return out

    def _last_is_literal(self) -> bool:
        last = self.segments[-1] if self.segments else ""
        return isinstance(last, str) and last not in ("*", "**")

    def _match(self, segs: list[Segment], parts: list[str], out: dict[str, str]) -> bool:
        i = 0
        for n, seg in enumerate(segs):
            if isinstance(seg, Variable):
                if seg.multi:
                    remaining_after = _min_len(segs[n + 1 :])
                    take = len(parts) - i - remaining_after if "**" in seg.pattern else len(seg.pattern)
                    if take < (len(seg.pattern) - 1 if "**" in seg.pattern else 1) or i + take > len(parts):
                        return False
                    chunk = parts[i : i + take]
                    if not _match_pattern(seg.pattern, chunk):
                        return False
                    out[".".join(seg.field_path)] = "/".join(urllib.parse.unquote(c) for c in chunk)
                    i += take
                else:
                    if i >= len(parts) or parts[i] == "":
                        return False
                    out[".".join(seg.field_path)] = urllib.parse.unquote(parts[i])
                    i += 1
            elif seg == "**":
                return True
            else:
                if i >= len(parts):
                    return False
                if seg != "*" and urllib.parse.unquote(parts[i]) != seg:
                    return False
                i += 1
        return i == len(parts)

    def expand(self, values: Mapping[str, str]) -> str:
        out: list[str] = []
        for seg in self.segments:
            if isinstance(seg, Variable):
                name = ".".join(seg.field_path)
                value = values.get(name, "")
                if value == "":
                    raise TranscodingError(f"field {name!r} is bound in the URL path and must be set", name)
                out.append(urllib.parse.quote(value, safe="/" if seg.multi else ""))
            else:
                out.append(seg)
        path = "/" + "/".join(out)
        return path + (":" + self.verb if self.verb else "")


def _min_len(segs: Sequence[Segment]) -> int:
    n = 0
    for s in segs:
        if isinstance(s, Variable):
            n += len([p for p in s.pattern if p != "**"])
        elif s != "**":
            n += 1
    return n


def _match_pattern(pattern: tuple[str, ...], chunk: list[str]) -> bool:
    j = 0
    for p in pattern:
        if p == "**":
            return True
        if j >= len(chunk):
            return False
        if p != "*" and urllib.parse.unquote(chunk[j]) != p:
            return False
        j += 1
    return j == len(chunk)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.lru_cache(maxsize=2048)
def parse_template(template: str) -> PathTemplate:
    """Parse ``/v1/{name=projects/*}/docs/{id}:verb``; :class:`TranscodingError` on a bad template."""
    if not template.startswith("/"):
        raise TranscodingError(f"path template must start with '/': {template!r}")
    body = template[1:]
    verb = ""
    # A custom verb is a ":" after the last "}" or "/".
    cut = max(body.rfind("}"), body.rfind("/"))
    colon = body.find(":", cut + 1)
    if colon != -1:
        body, verb = body[:colon], body[colon + 1 :]
    segments: list[Segment] = []
    i = 0
    while i <= len(body):
        if i < len(body) and body[i] == "{":
            end = body.find("}", i)
            if end == -1:
                raise TranscodingError(f"unclosed variable in {template!r}")
            inner = body[i + 1 : end]
            name, _, pat = inner.partition("=")
            fp = tuple(name.strip().split("."))
            if not all(_IDENT.match(p) for p in fp):
                raise TranscodingError(f"bad field path {name!r} in {template!r}")
            pattern = tuple(pat.split("/")) if pat else ("*",)
            segments.append(Variable(fp, pattern))
            i = end + 1
            if i < len(body) and body[i] != "/":
                raise TranscodingError(f"a variable must fill whole segments in {template!r}")
            i += 1
        else:
            end = body.find("/", i)
            if end == -1:
                end = len(body)
            seg = body[i:end]
            if "{" in seg or "}" in seg:
                raise TranscodingError(f"malformed segment {seg!r} in {template!r}")
            segments.append(seg)
            i = end + 1
    return PathTemplate(template, tuple(segments), verb)


# -- routing --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: MethodInfo
    rule: HttpRule
    template: PathTemplate
    verb: str  # upper case


class Router:
    """Matches ``VERB /path`` to the RPC whose rule serves it.

    Several RPCs of the schema declare the same verb and path; the first in catalog order owns the route
    and the others are reachable over gRPC only (``shadowed``: full name → the full name that wins)."""

    def __init__(self, methods: Iterable[MethodInfo]) -> None:
        self.routes: dict[str, list[Route]] = {}
        self.shadowed: dict[str, str] = {}
        owners: dict[tuple[Any, ...], str] = {}
        for m in methods:
            if m.http is None:
                continue
            for rule in (m.http, *m.http.additional):
                tpl = parse_template(rule.path)
                verb = rule.verb.upper()
                key = (verb, tpl.shape())
                owner = owners.get(key)
                if owner is not None:
                    if owner != m.full_name and rule is m.http:
                        self.shadowed.setdefault(m.full_name, owner)
                    continue
                owners[key] = m.full_name
                self.routes.setdefault(verb, []).append(Route(m, rule, tpl, verb))
        for routes in self.routes.values():
            routes.sort(key=lambda r: r.template.specificity())  # stable: catalog order among equals
        # Each route's leading literal segments (never its last one, which may carry a custom verb): a
        # path that differs there cannot match. Routes with at least _DEPTH of them are also indexed by
        # those, so a path is tried only against the routes of its own first segments (plus the few
        # with shorter prefixes), in the same order as a full scan.
        self._scan: dict[str, list[tuple[int, list[str], Route]]] = {}
        self._index: dict[str, dict[tuple[str, ...], list[tuple[int, list[str], Route]]]] = {}
        self._short: dict[str, list[tuple[int, list[str], Route]]] = {}
        for verb, routes in self.routes.items():
            scan = self._scan[verb] = [(i, _literal_prefix(r.template), r) for i, r in enumerate(routes)]
            index = self._index[verb] = {}
            short = self._short[verb] = []
            for item in scan:
                if len(item[1]) >= _DEPTH:
                    index.setdefault(tuple(item[1][:_DEPTH]), []).append(item)
                else:
                    short.append(item)

    def match(self, verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
        verb = verb.upper()
        raw = path.split("?", 1)[0]
        # The shortcuts compare raw segments, so only when nothing in the path is percent-encoded.
        parts = raw[1:].split("/") if raw.startswith("/") and "%" not in raw else None
        candidates: Iterable[tuple[int, list[str], Route]]
        if parts is not None and len(parts) > _DEPTH:
            indexed = self._index.get(verb, {}).get(tuple(parts[:_DEPTH]), [])
            candidates = heapq.merge(indexed, self._short.get(verb, []), key=lambda item: item[0])
        else:
            candidates = self._scan.get(verb, ())
        for _, prefix, route in candidates:
            if parts is not None:
                k = min(len(prefix), len(parts) - 1)  # never the path's last part: it may carry ":verb"
                if parts[:k] != prefix[:k]:
                    continue
            bindings = route.template.match(path)
            if bindings is not None:
                return route, bindings
        return None

    def allowed_verbs(self, path: str) -> list[str]:
        return sorted(
            v for v, routes in self.routes.items() if any(r.template.match(path) is not None for r in routes)
        )


_DEPTH = 3  # leading literal segments the router indexes routes by


def _literal_prefix(template: PathTemplate) -> list[str]:
    out: list[str] = []
    for seg in template.segments[:-1]:
        if isinstance(seg, Variable) or seg in ("*", "**"):
            break
        out.append(seg)
    return out


@functools.lru_cache(maxsize=1)
def router() -> Router:
    """The router over every RPC of the catalog."""
    from invora import _catalog

    return Router(m for svc in _catalog.services() for m in svc.methods.values())


# -- field helpers --------------------------------------------------------------------------------------


def _field(desc: Any, name: str) -> Any:
    fd = desc.fields_by_name.get(name)
    if fd is not None:
        return fd
    for f in desc.fields:
        if f.json_name == name:
            return f
    return None


_WKT_STRING = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
_WRAPPER_KINDS = {
    "google.protobuf.StringValue": "string",
    "google.protobuf.BytesValue": "string",
    "google.protobuf.BoolValue": "bool",
    "google.protobuf.Int64Value": "int",
    "google.protobuf.UInt64Value": "int",
    "google.protobuf.Int32Value": "int",
    "google.protobuf.UInt32Value": "int",
    "google.protobuf.DoubleValue": "float",
    "google.protobuf.FloatValue": "float",
}
#: The full names of the ``google.protobuf`` wrapper messages (a scalar that can be absent).
WRAPPERS = frozenset(_WRAPPER_KINDS)
_INT_TYPES = {
    FieldDescriptor.CPPTYPE_INT32,
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT32,
    FieldDescriptor.CPPTYPE_UINT64,
}


def _text_to_json(fd: FieldDescriptor, text: str, name: str) -> Any:
    """A query/path string as the JSON value ``json_format`` expects for ``fd``'s (leaf) type."""
    mt = fd.message_type
    kind: str
    if mt is not None:
        if mt.full_name in _WKT_STRING:
            return text
        kind = _WRAPPER_KINDS.get(mt.full_name, "")
        if not kind:
            raise TranscodingError(f"field {name!r} is a message and cannot be given as text", name)
    elif fd.enum_type is not None:
        return int(text) if text.lstrip("-").isdigit() else text
    elif fd.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        kind = "bool"
    elif fd.cpp_type in _INT_TYPES:
        kind = "int"
    elif fd.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        kind = "float"
    else:
        kind = "string"
    if kind == "bool":
        low = text.lower()
        if low not in ("true", "false", "1", "0"):
            raise TranscodingError(f"field {name!r} expects true or false, got {text!r}", name)
        return low in ("true", "1")
    if kind == "int":
        if not re.fullmatch(r"-?[0-9]+", text):
            raise TranscodingError(f"field {name!r} expects an integer, got {text!r}", name)
        return text
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise TranscodingError(f"field {name!r} expects a number, got {text!r}", name) from None
    return text


def _put(tree: dict[str, Any], desc: Any, path: str, values: list[str], *, origin: str) -> None:
    """Set ``path`` (snake_case or lowerCamelCase steps) in the JSON ``tree`` of a ``desc`` message."""
    steps = path.split(".")
    node = tree
    d: Any = desc
    for n, step in enumerate(steps):
        fd = _field(d, step) if d is not None else None
        if fd is None:
            raise TranscodingError(f"unknown {origin} parameter {path!r}: {step!r} is not a field", path)
        key = fd.json_name
        last = n == len(steps) - 1
        if last:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                raise TranscodingError(f"map field {path!r} cannot be set from a {origin} parameter", path)
            conv = [_text_to_json(fd, v, path) for v in values]
            if is_repeated(fd):
                existing = node.get(key)
                node[key] = (existing if isinstance(existing, list) else []) + conv
            else:
                if len(conv) > 1:
                    raise TranscodingError(
                        f"{origin} parameter {path!r} is not repeated but given {len(conv)} times", path
                    )
                node[key] = conv[0]
        else:
            if fd.message_type is None or is_repeated(fd):
                raise TranscodingError(
                    f"{origin} parameter {path!r}: {step!r} is not a singular message", path
                )
            if fd.message_type.full_name in _WKT_STRING or fd.message_type.full_name in _WRAPPER_KINDS:
                raise TranscodingError(f"{origin} parameter {path!r}: {step!r} has no sub-fields", path)
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
            d = fd.message_type


def _merge(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def _parse(tree: dict[str, Any], cls: type[Message]) -> Any:
    msg = cls()
    try:
        json_format.ParseDict(tree, msg, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        text = str(exc)
        m = re.search(r'no field named "([^"]+)"', text)
        raise TranscodingError(f"invalid request: {text}", m.group(1) if m else None) from None
    return msg


# -- decode (server side) / encode (client side) of requests --------------------------------------------


def decode(
    rule: HttpRule,
    bindings: Mapping[str, str],
    query: Mapping[str, Sequence[str]] | Iterable[tuple[str, str]],
    body: bytes | str | Mapping[str, Any] | None,
    request_class: type[Message],
) -> Any:
    """The request message for an HTTP call already matched to ``rule``; :class:`TranscodingError` on
    unknown fields, bad values or a malformed body."""
    from invora import _json

    desc = request_class.DESCRIPTOR
    tree: dict[str, Any] = {}
    data: Any = None
    if isinstance(body, (bytes, str)):
        if body.strip():
            try:
                data = _json.loads(body, max_bytes=MAX_BODY, what="the request body")
            except ValueError as exc:
                raise TranscodingError(f"request body is not JSON: {exc}") from None
    elif body is not None:
        data = dict(body)
    if rule.body == "*":
        if data is not None:
            if not isinstance(data, dict):
                raise TranscodingError("request body must be a JSON object")
            tree = data
    elif rule.body:
        fd = _field(desc, rule.body)
        if fd is None:
            raise TranscodingError(f"HTTP rule body names unknown field {rule.body!r}")
        if data is not None:
            tree[fd.json_name] = data
    pairs: list[tuple[str, str]] = []
    if isinstance(query, Mapping):
        for k, vs in query.items():
            pairs.extend((k, v) for v in ([vs] if isinstance(vs, str) else vs))
    else:
        pairs.extend(query)
    if pairs:
        grouped: dict[str, list[str]] = {}
        for k, v in pairs:
            if k.startswith("$") or k in ("access_token", "alt"):
                continue
            grouped.setdefault(k, []).append(v)
        qtree: dict[str, Any] = {}
        for k, vs in grouped.items():
            _put(qtree, desc, k, vs, origin="query")
        _merge(tree, qtree)
    if bindings:
        ptree: dict[str, Any] = {}
        for k, v in bindings.items():
            _put(ptree, desc, k, [v], origin="path")
        _merge(tree, ptree)
    return _parse(tree, request_class)


def _to_json(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(msg)
    return out


def _pop_path(tree: dict[str, Any], desc: Any, path: tuple[str, ...]) -> None:
    node: Any = tree
    d: Any = desc
    for n, step in enumerate(path):
        fd = _field(d, step) if d is not None else None
        if fd is None or not isinstance(node, dict):
            return
        if n == len(path) - 1:
            node.pop(fd.json_name, None)
            return
        node = node.get(fd.json_name)
        d = fd.message_type


def _value_at(msg: Any, path: tuple[str, ...]) -> str:
    cur: Any = msg
    fd: FieldDescriptor | None = None
    for step in path:
        if not isinstance(cur, Message):
            return ""
        fd = _field(cur.DESCRIPTOR, step)
        if fd is None:
            raise TranscodingError(f"HTTP rule binds unknown field {'.'.join(path)!r}")
        cur = getattr(cur, fd.name)
    if fd is not None and fd.enum_type is not None:
        v = fd.enum_type.values_by_number.get(cur)
        return v.name if v is not None else str(cur)
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, Message):
        if cur.DESCRIPTOR.full_name in _WRAPPER_KINDS:
            return str(cur.value)  # type: ignore[attr-defined]
        return (
            str(json_format.MessageToDict(cur))
            if cur.DESCRIPTOR.full_name not in _WKT_STRING
            else str(json_format.MessageToJson(cur).strip('"'))
        )
    return str(cur)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                raise TranscodingError(
                    f"repeated message field {prefix!r} cannot travel as query parameters", prefix
                )
            _flatten(prefix, v, out)
    elif value is None:
        return
    elif isinstance(value, bool):
        out.append((prefix, "true" if value else "false"))
    else:
        out.append((prefix, str(value)))


def expand(rule: HttpRule, request: Any) -> tuple[str, str, list[tuple[str, str]], Any]:
    """``(VERB, path, query pairs, JSON body or None)`` for sending ``request`` by ``rule``."""
    tpl = parse_template(rule.path)
    desc = request.DESCRIPTOR
    values = {".".join(v.field_path): _value_at(request, v.field_path) for v in tpl.variables}
    path = tpl.expand(values)
    tree = _to_json(request)
    for v in tpl.variables:
        _pop_path(tree, desc, v.field_path)
    body: Any = None
    query: list[tuple[str, str]] = []
    if rule.body == "*":
        body = tree
    else:
        if rule.body:
            fd = _field(desc, rule.body)
            if fd is None:
                raise TranscodingError(f"HTTP rule body names unknown field {rule.body!r}")
            body = tree.pop(fd.json_name, None)
            if body is None:
                body = {} if fd.message_type is not None else None
        _flatten("", tree, query)
    return rule.verb.upper(), path, query, body


# -- responses ------------------------------------------------------------------------------------------


def encode_response(rule: HttpRule | None, response: Any) -> Any:
    """The JSON value of a response (``response_body`` selects one field)."""
    if rule is not None and rule.response_body:
        fd = _field(response.DESCRIPTOR, rule.response_body)
        if fd is None:
            raise TranscodingError(f"response_body names unknown field {rule.response_body!r}")
        return _to_json(response).get(fd.json_name)
    return _to_json(response)


def decode_response(rule: HttpRule | None, data: Any, response_class: type[Message]) -> Any:
    """The response message from the JSON an HTTP call returned (unknown fields tolerated: servers add
    fields before clients learn them)."""
    if rule is not None and rule.response_body:
        fd = _field(response_class.DESCRIPTOR, rule.response_body)
        if fd is None:
            raise TranscodingError(f"response_body names unknown field {rule.response_body!r}")
        data = {fd.json_name: data} if data is not None else {}
    msg = response_class()
    try:
        json_format.ParseDict(data if data is not None else {}, msg, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise TranscodingError(
            f"response is not a valid {response_class.DESCRIPTOR.full_name}: {exc}"
        ) from None
    return msg
