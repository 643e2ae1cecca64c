"""List semantics shared by every service: filters, sort rules, skip/limit and signed cursors.

Filters and sort rules are interpreted from their descriptors, not per service: a filter part's oneof
field names an entity attribute (``created_at``, ``frozen``, ``key``…) and its message type says how to
compare (``in_values``, date/timestamp/number ranges, nullable wrappers, ``and``/``or``/``not``,
documents' ``field``/``unary_field`` conditions). Parts it cannot interpret answer UNIMPLEMENTED, never
a wrong page.

Cursors are opaque and tamper-evident: ``base64url(json).hmac`` binding the offset to the organization,
the list and the query; a changed, foreign or expired cursor gives OUT_OF_RANGE naming the problem.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from invora._pbcompat import is_repeated
from invora.sandbox.faults import Fault
from invora.transcoding import WRAPPERS

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
CURSOR_TTL = 3600.0

Getter = Callable[[Any, str], Any]


def scalar(value: Any) -> Any:
    """A comparable Python value for a field value (messages of well-known kinds unwrapped)."""
    if not isinstance(value, Message):
        return value
    value = cast(Any, value)
    name = value.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return dt.datetime.fromtimestamp(value.seconds + value.nanos / 1e9, tz=dt.timezone.utc)
    if name == "google.type.Date":
        if not value.year:
            return None
        return dt.date(value.year, max(1, value.month), max(1, value.day))
    if name == "kernel.DecimalValue":
        from invora.decimal import to_decimal

        return to_decimal(value)
    if name in WRAPPERS:
        return value.value
    if name == "kernel.KeyVersion":
        return value.key
    return value


def find_value(msg: Any, name: str, depth: int = 5) -> Any:
    """The value of the first set field called ``name`` in ``msg``, searching set sub-messages breadth
    first (documents keep ``issue_date`` deep inside their UBL content). ``None`` when absent."""
    layer = [msg]
    for _ in range(depth):
        nxt: list[Message] = []
        for m in layer:
            fd = m.DESCRIPTOR.fields_by_name.get(name)
            if fd is not None and (is_repeated(fd) or not fd.has_presence or m.HasField(name)):
                return getattr(m, name)
            for f, v in m.ListFields():
                if f.message_type is not None and not f.message_type.GetOptions().map_entry:
                    if is_repeated(f):
                        nxt.extend(v[:3])
                    else:
                        nxt.append(v)
        if not nxt:
            return None
        layer = nxt
    return None


def path_value(msg: Any, path: str) -> Any:
    """Value at a dotted path of snake_case or lowerCamelCase names; ``None`` when a step is unset."""
    cur: Any = msg
    for step in path.split("."):
        if not isinstance(cur, Message):
            return None
        fd = cur.DESCRIPTOR.fields_by_name.get(step) or _by_json_name(cur.DESCRIPTOR, step)
        if fd is None:
            raise Fault(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown field {step!r} in filter path {path!r}",
                reason="INVALID_FILTER",
                metadata={"field_path": path},
            )
        if fd.has_presence and not is_repeated(fd) and not cur.HasField(fd.name):
            return None
        cur = getattr(cur, fd.name)
    return cur


def _by_json_name(desc: Any, name: str) -> Any:
    for f in desc.fields:
        if f.json_name == name:
            return f
    return None


# -- filters --------------------------------------------------------------------------------------------


def _as_datetime(v: Any) -> dt.datetime | None:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)
    return None


def _as_date(v: Any) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return None


def _in_range(value: Any, lo: Any, hi: Any, conv: Callable[[Any], Any]) -> bool:
    v = conv(value)
    if v is None:
        return False
    lo_v = conv(lo) if lo is not None else None
    hi_v = conv(hi) if hi is not None else None
    if lo_v is not None and v < lo_v:
        return False
    return not (hi_v is not None and v >= hi_v)


def _opt(msg: Any, name: str) -> Any:
    return scalar(getattr(msg, name)) if msg.HasField(name) else None


def _numeric(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float, decimal.Decimal)):
        return decimal.Decimal(str(v)) if isinstance(v, float) else decimal.Decimal(v)
    return None


class FilterEval:
    """Evaluates a service's ``ListFilterPart`` against entities, resolving names with ``get``."""

    def __init__(self, get: Getter, full_name: str) -> None:
        self.get = get
        self.full_name = full_name

    def __call__(self, part: Any, entity: Any) -> bool:
        kind = part.WhichOneof("type") if "type" in part.DESCRIPTOR.oneofs_by_name else None
        if kind is None:
            return True
        value = getattr(part, kind)
        if kind == "and":
            return all(self(p, entity) for p in value.operands)
        if kind == "or":
            return any(self(p, entity) for p in value.operands)
        if kind == "not":
            return not self(value, entity)
        if kind == "field":
            return self._field(value, entity)
        if kind == "unary_field":
            return self._unary(value, entity)
        return self._typed(kind, value, entity)

    def _typed(self, kind: str, cond: Any, entity: Any) -> bool:
        actual = scalar(self.get(entity, kind))
        if actual is None and kind.startswith(("with_", "include_")):
            return True  # a listing modifier (with_deleted…), not an attribute: nothing is ever hidden here
        if not isinstance(cond, Message):  # bool / enum / scalar condition: equality
            return bool(actual == cond) if actual is not None else not cond
        cond = cast(Any, cond)
        desc = cond.DESCRIPTOR
        fields = desc.fields_by_name
        if "in_values" in fields:
            wanted = list(cond.in_values)
            if not wanted:
                return True
            if isinstance(actual, (list, tuple)) or (
                hasattr(actual, "__len__") and not isinstance(actual, str)
            ):
                return any(scalar(a) in wanted for a in actual)
            return actual in wanted
        if desc.full_name.endswith("Nullable") and "value" in fields:
            if not cond.HasField("value"):
                return actual is None
            return self._typed(kind, cond.value, entity)
        if desc.full_name in ("kernel.ListRequestFilterPartDateV2",):
            which = cond.WhichOneof("value")
            if which == "exact":
                return bool(_as_date(actual) == scalar(cond.exact))
            if which == "range":
                return _in_range(
                    actual, _opt(cond.range, "from_inclusive"), _opt(cond.range, "to_exclusive"), _as_date
                )
            if which == "range_timestamp":
                r = cond.range_timestamp
                return _in_range(actual, _opt(r, "from_inclusive"), _opt(r, "to_exclusive"), _as_datetime)
            return True
        if "from_inclusive" in fields and "to_exclusive" in fields:
            lo, hi = _opt(cond, "from_inclusive"), _opt(cond, "to_exclusive")
            sample = lo if lo is not None else hi
            if isinstance(sample, (dt.date, dt.datetime)):
                return _in_range(actual, lo, hi, _as_datetime)
            return _in_range(actual, lo, hi, _numeric)
        raise Fault(
            grpc.StatusCode.UNIMPLEMENTED,
            f"the sandbox cannot interpret filter part {kind!r} ({desc.full_name}) of {self.full_name}",
            reason="FILTER_NOT_SUPPORTED",
            metadata={"filter": kind},
        )

    def _field(self, cond: Any, entity: Any) -> bool:
        op = cond.DESCRIPTOR.fields_by_name["op"].enum_type.values_by_number[cond.op].name
        op = op.removeprefix("FIELD_FILTER_OPERATOR_")
        actual = self._path(entity, cond.field_path)
        which = cond.value.WhichOneof("value")
        if which is None:
            raise Fault(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"filter on {cond.field_path!r} has no value",
                reason="INVALID_FILTER",
            )
        expected: Any = getattr(cond.value, which)
        expected = (
            [scalar(getattr(x, x.WhichOneof("value"))) for x in expected.values if x.WhichOneof("value")]
            if which == "list_value"
            else scalar(expected)
        )
        items = list(actual) if _is_seq(actual) else None
        if items is not None:
            vals = [_cmp(scalar(a), expected) for a in items]
            if op == "ARRAY_CONTAINS":
                return any(v == expected for v in vals)
            if op == "ARRAY_CONTAINS_ALL":
                return isinstance(expected, list) and all(e in vals for e in expected)
            return any(_compare(op, v, expected) for v in vals)
        return _compare(op, _cmp(scalar(actual), expected), expected)

    def _unary(self, cond: Any, entity: Any) -> bool:
        op = cond.DESCRIPTOR.fields_by_name["op"].enum_type.values_by_number[cond.op].name
        actual = self._path(entity, cond.field_path)
        empty = actual is None or actual == "" or (_is_seq(actual) and len(actual) == 0)
        if op.endswith("IS_NULL"):
            return actual is None
        if op.endswith("IS_SET"):
            return not empty
        if op.endswith("IS_EMPTY"):
            return empty
        raise Fault(grpc.StatusCode.INVALID_ARGUMENT, f"unary filter without operator on {cond.field_path!r}")

    def _path(self, entity: Any, path: str) -> Any:
        if not path:
            raise Fault(
                grpc.StatusCode.INVALID_ARGUMENT, "filter field_path is empty", reason="INVALID_FILTER"
            )
        if "." not in path:
            return self.get(entity, path)
        return path_value(entity.msg if hasattr(entity, "msg") else entity, path)


def _is_seq(v: Any) -> bool:
    return not isinstance(v, (str, bytes, Message)) and hasattr(v, "__len__") and hasattr(v, "__iter__")


def _cmp(actual: Any, expected: Any) -> Any:
    """Coerce ``actual`` towards the type of ``expected`` (a string filter on an enum, a number on a
    decimal…)."""
    if isinstance(expected, list) and expected:
        expected = expected[0]
    if isinstance(expected, decimal.Decimal) or (
        isinstance(expected, (int, float)) and not isinstance(expected, bool)
    ):
        return _numeric(actual)
    if isinstance(expected, dt.datetime):
        return _as_datetime(actual)
    if isinstance(expected, dt.date):
        return _as_date(actual)
    return actual


def _compare(op: str, a: Any, b: Any) -> bool:
    if isinstance(b, float):
        b = decimal.Decimal(str(b))
    elif isinstance(b, int) and not isinstance(b, bool):
        b = decimal.Decimal(b)
    try:
        if op == "EQUAL":
            return bool(a == b)
        if op == "IN":
            return a in (b if isinstance(b, list) else [b])
        if a is None:
            return False
        if op == "LESS_THAN":
            return bool(a < b)
        if op == "LESS_THAN_OR_EQUAL":
            return bool(a <= b)
        if op == "GREATER_THAN":
            return bool(a > b)
        if op == "GREATER_THAN_OR_EQUAL":
            return bool(a >= b)
        sa, sb = str(a).lower(), str(b).lower()
        if op == "CONTAINS":
            return sb in sa
        if op == "STARTS_WITH":
            return sa.startswith(sb)
        if op == "ENDS_WITH":
            return sa.endswith(sb)
        if op == "REGEX":
            return re.search(str(b), str(a)) is not None
    except TypeError:
        return False
    except re.error as exc:
        raise Fault(
            grpc.StatusCode.INVALID_ARGUMENT, f"bad regex {b!r}: {exc}", reason="INVALID_FILTER"
        ) from None
    raise Fault(
        grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter operator {op}", reason="INVALID_FILTER"
    )


def text_matches(texts: Iterable[str], needle: str) -> bool:
    n = needle.lower()
    return any(n in t.lower() for t in texts)


def strings_of(msg: Any, depth: int = 4) -> list[str]:
    """Every set string value in ``msg`` down to ``depth`` levels (the generic text search corpus)."""
    out: list[str] = []
    layer = [msg]
    for _ in range(depth):
        nxt: list[Message] = []
        for m in layer:
            for f, v in m.ListFields():
                if f.type == FieldDescriptor.TYPE_STRING:
                    out.extend(v if is_repeated(f) else [v])
                elif f.message_type is not None and not f.message_type.GetOptions().map_entry:
                    nxt.extend(v if is_repeated(f) else [v])
        layer = nxt
        if not layer:
            break
    return out


# -- sort -----------------------------------------------------------------------------------------------


def sort_items(items: list[Any], sort: Any, get: Getter) -> list[Any]:
    """Stable multi-key sort; unset values sort first ascending (last descending)."""
    if sort is None:
        return items
    rules = list(getattr(sort, "rules", ()))
    for rule in reversed(rules):
        kind = rule.WhichOneof("type")
        if kind is None:
            continue
        direction = getattr(rule, kind)
        descending = direction == 2  # SORT_DIRECTION_DESCENDING

        def key(e: Any, kind: str = kind) -> tuple[int, Any]:
            v = scalar(get(e, kind))
            if v is None or v == "":
                return (0, 0)
            if isinstance(v, dt.datetime):
                return (1, v.timestamp())
            if isinstance(v, dt.date):
                return (1, v.toordinal())
            if isinstance(v, bool):
                return (1, int(v))
            if isinstance(v, (int, float, decimal.Decimal)):
                return (1, decimal.Decimal(str(v)) if isinstance(v, float) else v)
            return (1, str(v))

        items.sort(key=key, reverse=descending)
    return items


# -- pagination -----------------------------------------------------------------------------------------


@dataclass
class Page:
    items: list[Any]
    total: int
    next_cursor: str | None


class Cursors:
    """Issues and checks signed cursors."""

    def __init__(self, secret: bytes, ttl: float = CURSOR_TTL) -> None:
        self._secret = secret
        self.ttl = ttl

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, body, hashlib.sha256).digest()[:18]).decode()

    def issue(self, scope: str, query: str, offset: int) -> str:
        body = json.dumps(
            {"s": scope, "q": query, "o": offset, "e": int(time.time() + self.ttl)}, separators=(",", ":")
        ).encode()
        return base64.urlsafe_b64encode(body).rstrip(b"=").decode() + "." + self._sign(body)

    def check(self, cursor: str, scope: str, query: str) -> int:
        def bad(problem: str) -> Fault:
            return Fault(
                grpc.StatusCode.OUT_OF_RANGE,
                f"pagination.cursor {problem}",
                reason="INVALID_CURSOR",
                metadata={"problem": problem},
            )

        head, _, sig = cursor.partition(".")
        try:
            body = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
        except ValueError:
            raise bad("is malformed (not a cursor issued by this server)") from None
        if not sig or not hmac.compare_digest(sig, self._sign(body)):
            raise bad(
                "is invalid: its signature does not verify (tampered, truncated or from another server)"
            )
        data = json.loads(body)
        if data.get("s") != scope:
            raise bad("belongs to another list or organization")
        if data.get("q") != query:
            raise bad("was issued for a different filter or sort; restart the listing without a cursor")
        if data.get("e", 0) < time.time():
            raise bad("has expired; restart the listing without a cursor")
        return int(data.get("o", 0))


def query_fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.SerializeToString(deterministic=True) if p is not None else b"-")
        h.update(b"|")
    return h.hexdigest()[:24]


def paginate(items: Sequence[Any], pagination: Any, cursors: Cursors, scope: str, query: str) -> Page:
    limit = DEFAULT_PAGE_SIZE
    offset = 0
    if pagination is not None:
        if pagination.HasField("limit"):
            limit = int(pagination.limit.value)
            if limit > MAX_PAGE_SIZE:
                raise Fault(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"pagination.limit {limit} is above the maximum page size {MAX_PAGE_SIZE}",
                    reason="PAGE_SIZE_TOO_LARGE",
                    metadata={"max": str(MAX_PAGE_SIZE)},
                )
            if limit == 0:
                limit = DEFAULT_PAGE_SIZE
        which = pagination.WhichOneof("type")
        if which == "skip":
            offset = int(pagination.skip)
        elif which == "cursor" and pagination.cursor:
            offset = cursors.check(pagination.cursor, scope, query)
    page = list(items[offset : offset + limit])
    end = offset + len(page)
    nxt = cursors.issue(scope, query, end) if end < len(items) else None
    return Page(page, len(items), nxt)
