"""Building request messages from what callers pass: a message, a mapping, keyword fields (dicts and the
proto3 JSON forms allowed), with a clear error for anything else — before anything is sent."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from invora._pbcompat import is_repeated
from invora.errors import ConfigurationError

__all__ = ["build_request", "coerce_item", "idempotency_key"]

_urandom = os.urandom

_NESTED = (Mapping, list, tuple)
_SCALARS = frozenset((str, int, float, bool, bytes))  # exact types known flat, checked before the ABCs
_MAX_NESTING = 100  # the deepest request dict accepted when the message schema itself is recursive


def build_request(
    cls: Any, method: str, fill_request_id: bool, request: Any, fields: Mapping[str, Any] | None
) -> Any:
    """The request message from a message, a mapping and/or keyword fields (``None`` values are unset).

    ``fill_request_id``: the method has an idempotency key; an empty one gets a fresh UUID4, on a copy
    when the caller gave a message (it may be a reused template).
    """
    if request is None:
        if fields:
            kw = {}
            flat = True
            for k, v in fields.items():
                if v is not None:
                    kw[k] = v
                    if flat and type(v) not in _SCALARS and isinstance(v, _NESTED):
                        flat = False
            try:  # flat keyword fields, the common call: straight to the constructor
                req = cls(**kw) if flat else None
            except (TypeError, ValueError, AttributeError):
                req = None
            if req is None:
                req = from_fields(cls, kw)
        else:
            req = cls()
    elif type(request) is cls:
        if fields:
            given = [k for k, v in fields.items() if v is not None]
            if given:
                raise TypeError(
                    f"{method}: pass either a request message or keyword fields, not both "
                    f"(got a {cls.__name__} and {', '.join(given)})"
                )
        req = request
    elif isinstance(request, Mapping):
        merged = dict(request)
        if fields:
            merged.update((k, v) for k, v in fields.items() if v is not None)
        req = from_fields(cls, merged)
    else:
        raise TypeError(
            f"{method} takes a {cls.DESCRIPTOR.full_name} (or a dict), got {type(request).__name__}"
        )
    if fill_request_id and not req.request_id:
        if req is request:
            req = cls()
            req.CopyFrom(request)
        req.request_id = idempotency_key()
    return req


def idempotency_key() -> str:
    """A fresh idempotency key (``request_id``): a random (version 4) UUID in its canonical text form.

    What ``str(uuid.uuid4())`` returns, without the ``uuid`` module, whose import loads ``platform`` (~3 ms
    of every program's start), and in half the time per call.
    """
    b = bytearray(_urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def coerce_item(cls: Any, method: str, item: Any) -> Any:
    """A streamed request item: a message of the right class, or a mapping of its fields."""
    if type(item) is cls:
        return item
    if isinstance(item, Mapping):
        return from_fields(cls, item)
    raise TypeError(f"{method} streams {cls.__name__} items, got {type(item).__name__}")


_DEPTHS: dict[Any, int] = {}


def _schema_depth(desc: Any, path: frozenset[Any] = frozenset()) -> int:
    """How deep a request dict for ``desc`` may nest; ``_MAX_NESTING`` when the schema is recursive
    (a message that can contain itself, ``Struct``), since any depth is then valid. Memoised: a message
    that reaches a cycle is unbounded wherever it is met."""
    known = _DEPTHS.get(desc)
    if known is not None:
        return known
    if desc in path:
        return _MAX_NESTING
    inner = path | {desc}
    deepest = 0
    for fd in desc.fields:
        sub = fd.message_type
        if sub is None:
            deepest = max(deepest, 1 if is_repeated(fd) else 0)
        elif sub.GetOptions().map_entry:  # a map is one dict level; its value type may nest further
            deepest = max(deepest, _schema_depth(sub, inner))
        else:
            deepest = max(deepest, _schema_depth(sub, inner) + (2 if is_repeated(fd) else 1))
        if deepest >= _MAX_NESTING:
            break
    _DEPTHS[desc] = result = min(deepest, _MAX_NESTING)
    return result


def _check_nesting(cls: Any, fields: Mapping[str, Any]) -> None:
    """Refuse request dicts nested deeper than the schema allows (they would otherwise end in a
    RecursionError deep inside protobuf); iterative, so any input depth is measured safely."""
    if not any(isinstance(v, (Mapping, list, tuple)) for v in fields.values()):
        return  # flat keyword fields (the common call): nothing nested to measure
    desc = cls.DESCRIPTOR
    allowed = _schema_depth(desc)
    stack: list[tuple[Any, int]] = [(fields, 0)]
    while stack:
        value, level = stack.pop()
        if not isinstance(value, (Mapping, list, tuple)):
            continue
        if level > allowed:
            raise ConfigurationError(
                f"{desc.full_name}: the request is nested deeper ({level}+ levels) than its schema allows "
                f"({allowed}); check for a dict or list inside itself or a value under the wrong field"
            )
        if isinstance(value, Mapping):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, level + 1) for v in value)


def _decimal_hint(cls: Any, fields: Mapping[str, Any]) -> str:
    """A pointer to ``from_decimal`` when a Decimal or float was given for a DecimalValue field."""
    import decimal

    for key, value in fields.items():
        fd = cls.DESCRIPTOR.fields_by_name.get(key)
        if fd is None or fd.message_type is None:
            continue
        if isinstance(value, (decimal.Decimal, float)):
            if fd.message_type.full_name.endswith("DecimalValue"):
                return (
                    f"{cls.DESCRIPTOR.full_name}.{key} is a DecimalValue: pass "
                    f"invora.decimal.from_decimal({str(value)!r}) (money never goes through float)"
                )
            return f"{cls.DESCRIPTOR.full_name}.{key} is a {fd.message_type.full_name} message, not a number"
        if isinstance(value, Mapping):
            inner = _decimal_hint(_message_class(fd), value)
            if inner:
                return inner
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, Mapping):
                    inner = _decimal_hint(_message_class(fd), item)
                    if inner:
                        return inner
    return ""


def _message_class(fd: Any) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(fd.message_type)


def from_fields(cls: Any, fields: Mapping[str, Any]) -> Any:
    _check_nesting(cls, fields)
    try:
        return _build(cls, fields)
    except TypeError:
        hint = _decimal_hint(cls, fields)
        if hint:
            raise TypeError(hint) from None
        raise


def _build(cls: Any, fields: Mapping[str, Any]) -> Any:
    kw = {k: v for k, v in fields.items() if v is not None}
    try:
        return cls(**kw)
    except (TypeError, ValueError, AttributeError):
        pass
    # Field by field, falling back to the proto3 JSON form (wrappers as scalars, enums by name,
    # timestamps as RFC 3339 strings, field masks as "a,b") where the native constructor refuses.
    from google.protobuf import json_format

    msg = cls()
    for key, value in kw.items():
        try:
            part = cls(**{key: value})
        except (TypeError, ValueError, AttributeError) as exc:
            if key not in cls.DESCRIPTOR.fields_by_name:
                raise TypeError(f"{cls.DESCRIPTOR.full_name} has no field {key!r}") from None
            part = cls()
            try:
                json_format.ParseDict({key: _jsonable(value)}, part)
            except (json_format.ParseError, TypeError, ValueError) as json_exc:
                raise TypeError(f"{cls.DESCRIPTOR.full_name}.{key}: {exc} ({json_exc})") from exc
        msg.MergeFrom(part)
    return msg


def _jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        from google.protobuf import json_format

        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
