"""Generic, descriptor-driven behaviour for every service: one in-memory implementation, no handler per service.

Each RPC is classified once, at start, from its name and its request/response descriptors:

- **list** — response with repeated ``items`` (+ ``total_count``): filter, sort, skip/limit/cursor;
- **get** — one entity message in the response, addressed by ``key``/``id``/``input.id``/``<x>_id``
  (no address at all: a per-organization singleton such as settings);
- **create** / **update** / **delete** (``Destroy*`` too) / **freeze** / **bulk** / **clone**.

Entities are stored as the response's entity message; requests are applied to them by matching field names
(``changes``/``input`` wrappers or the request itself), recursively, so ``ChangeBase.content`` lands in
``Document.content`` and ``CreatePlanInput.name`` in ``BillingPlan.name``. Keys, ``concurrency_stamp``
(ABORTED on mismatch), timestamps and ``edit_state``/``frozen`` are maintained where the entity has them.
Everything else answers UNIMPLEMENTED with a message saying why.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from invora._pbcompat import is_repeated
from invora.sandbox import listing
from invora.sandbox.faults import Fault, invalid_argument, not_found, unimplemented
from invora.transcoding import WRAPPERS

if TYPE_CHECKING:
    from invora._catalog import MethodInfo, ServiceInfo
    from invora.sandbox.app import Sandbox
    from invora.sandbox.auth import Claims


@dataclass
class CallContext:
    """What a handler knows about the call (the gateway builds it once authentication and tenancy pass)."""

    sandbox: Sandbox
    method: MethodInfo
    org: str  # effective organization (tenancy header applied)
    claims: Claims
    transport: str
    metadata: Mapping[str, str]

    @property
    def store(self) -> Store:
        return self.sandbox.store


Handler = Callable[[CallContext, Any], Message]

_WRAPPER_PREFIX = "google.protobuf."


@dataclass
class Record:
    key: str
    msg: Any  # the stored entity message
    seq: int
    extra: dict[str, Any] = field(default_factory=dict)  # domain state not in the message


class Store:
    """Entities per (organization, collection), insertion-ordered; one lock for the whole store (calls
    are short and the sandbox favours obviously-correct over clever)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._data: dict[tuple[str, str], dict[str, Record]] = {}
        self._seq = 0

    def coll(self, org: str, name: str) -> dict[str, Record]:
        c = self._data.get((org, name))
        if c is None:
            c = self._data[(org, name)] = {}
        return c

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq


def now_ts() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def new_stamp() -> str:
    return uuid.uuid4().hex


# -- copying by field names -----------------------------------------------------------------------------


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _assign_scalar(dst: Any, df: FieldDescriptor, sf: FieldDescriptor, value: Any) -> None:
    if df.enum_type is not None:
        if sf.enum_type is None:
            return
        if df.enum_type is not sf.enum_type:
            names = sf.enum_type.values_by_number
            target = df.enum_type.values_by_name

            def conv(v: int) -> int | None:
                ev = names.get(v)
                tv = target.get(ev.name) if ev is not None else None
                return tv.number if tv is not None else None

            if is_repeated(df):
                getattr(dst, df.name).extend(c for c in (conv(v) for v in value) if c is not None)
            else:
                c = conv(value)
                if c is not None:
                    setattr(dst, df.name, c)
            return
    elif df.cpp_type != sf.cpp_type:
        return
    if is_repeated(df):
        getattr(dst, df.name).extend(value)
    else:
        setattr(dst, df.name, value)


def copy_matching(src: Any, dst: Any, *, only: Iterable[str] | None = None, depth: int = 12) -> None:
    """Copy the set fields of ``src`` into same-named, compatible fields of ``dst`` (recursively for
    different message types; wrappers and plain scalars convert both ways)."""
    if depth <= 0:
        return
    wanted = set(only) if only is not None else None
    dfields = dst.DESCRIPTOR.fields_by_name
    for sf, value in src.ListFields():
        if wanted is not None and sf.name not in wanted:
            continue
        df = dfields.get(sf.name)
        if df is None or is_repeated(df) != is_repeated(sf):
            continue
        smt, dmt = sf.message_type, df.message_type
        if smt is None and dmt is None:
            _assign_scalar(dst, df, sf, value)
        elif smt is not None and dmt is not None:
            if _is_map(sf) or _is_map(df):
                if smt.full_name == dmt.full_name or (
                    smt.fields_by_name["value"].message_type is None
                    and dmt.fields_by_name["value"].message_type is None
                ):
                    with contextlib.suppress(TypeError, ValueError):
                        getattr(dst, df.name).update(value)
                continue
            if smt.full_name == dmt.full_name:
                if is_repeated(df):
                    getattr(dst, df.name).extend(value)
                else:
                    getattr(dst, df.name).CopyFrom(value)
            elif is_repeated(df):
                target = getattr(dst, df.name)
                for item in value:
                    copy_matching(item, target.add(), depth=depth - 1)
            elif dmt.full_name in WRAPPERS and smt.full_name in WRAPPERS:
                getattr(dst, df.name).value = value.value
            else:
                copy_matching(value, getattr(dst, df.name), depth=depth - 1)
        elif smt is None and dmt is not None and dmt.full_name in WRAPPERS and not is_repeated(sf):
            with contextlib.suppress(TypeError, ValueError):
                getattr(dst, df.name).value = value
        elif smt is not None and dmt is None and smt.full_name in WRAPPERS and not is_repeated(sf):
            with contextlib.suppress(TypeError, ValueError):
                setattr(dst, df.name, value.value)


def convert(src: Any, cls: Any) -> Any:
    """``src`` as another message type, by field names, with shallow look-ups for what is left."""
    if src.DESCRIPTOR.full_name == cls.DESCRIPTOR.full_name:
        out = cls()
        out.CopyFrom(src)
        return out
    out = cls()
    copy_matching(src, out)
    for fd in cls.DESCRIPTOR.fields:
        if is_repeated(fd) or (fd.message_type is not None and out.HasField(fd.name)):
            continue
        if fd.message_type is None and getattr(out, fd.name):
            continue
        value = listing.find_value(src, fd.name, depth=3)
        if value is None:
            continue
        try:
            if fd.message_type is None:
                if not isinstance(value, Message):
                    setattr(out, fd.name, value)
            elif isinstance(value, Message) and value.DESCRIPTOR.full_name == fd.message_type.full_name:
                getattr(out, fd.name).CopyFrom(value)
        except (TypeError, ValueError):
            pass
    return out


def clear_fields(msg: Any, names: Iterable[str]) -> None:
    for n in names:
        if n in msg.DESCRIPTOR.fields_by_name:
            msg.ClearField(n)


def apply_mask(entity: Any, changes: Any, mask: field_mask_pb2.FieldMask | None, *, replace: bool) -> None:
    """Apply ``changes`` to ``entity``: the masked top-level paths only (``lines``, ``buyer.name``), or
    every field of the changes type (``replace``: unset ones are cleared) when there is no mask."""
    cdesc = changes.DESCRIPTOR
    if mask is not None and mask.paths:
        for path in mask.paths:
            head, _, rest = path.partition(".")
            fd = cdesc.fields_by_name.get(head) or listing._by_json_name(cdesc, head)
            if fd is None:
                raise invalid_argument(
                    f"mask path {path!r} is not a field of {cdesc.name}", "mask", reason="INVALID_MASK"
                )
            if rest:
                sub_src = getattr(changes, fd.name) if fd.message_type is not None else None
                sub_dst_fd = entity.DESCRIPTOR.fields_by_name.get(fd.name)
                if sub_src is None or sub_dst_fd is None or sub_dst_fd.message_type is None:
                    raise invalid_argument(f"mask path {path!r} does not name a nested field", "mask")
                sub_dst = getattr(entity, fd.name)
                apply_mask(sub_dst, sub_src, field_mask_pb2.FieldMask(paths=[rest]), replace=True)
                continue
            clear_fields(entity, [fd.name])
            copy_matching(changes, entity, only=[fd.name])
        return
    if replace:
        clear_fields(entity, [f.name for f in cdesc.fields if f.name in entity.DESCRIPTOR.fields_by_name])
    copy_matching(changes, entity)


# -- entity shape ---------------------------------------------------------------------------------------


class Shape:
    """What the sandbox needs to know about an entity type, read once from its descriptor."""

    def __init__(self, desc: Any) -> None:
        self.desc = desc
        self.cls = _message_class(desc)
        f = desc.fields_by_name
        self.key_field: str | None = None
        self.key_is_kv = False
        for name in ("key", "id"):
            fd = f.get(name)
            if fd is not None and not is_repeated(fd):
                if fd.message_type is None and fd.cpp_type == FieldDescriptor.CPPTYPE_STRING:
                    self.key_field = name
                    break
                if fd.message_type is not None and fd.message_type.full_name == "kernel.KeyVersion":
                    self.key_field, self.key_is_kv = name, True
                    break
        if self.key_field is None:
            for fd in desc.fields:
                if (
                    fd.name.endswith("_id")
                    and fd.message_type is None
                    and not is_repeated(fd)
                    and fd.cpp_type == FieldDescriptor.CPPTYPE_STRING
                ):
                    self.key_field = fd.name
                    break
        self.stamp = "concurrency_stamp" in f
        self.created = _ts_field(f, "created_at")
        self.updated = _ts_field(f, "updated_at")
        self.audit = "audit" in f and f["audit"].message_type.full_name == "kernel.CreateUpdateAuditInfo"
        self.edit_state = "edit_state" in f
        self.frozen = "frozen" in f and f["frozen"].type == FieldDescriptor.TYPE_BOOL
        self.frozen_at = _ts_field(f, "frozen_at")

    def key_of(self, msg: Any) -> str:
        if self.key_field is None:
            return ""
        v = getattr(msg, self.key_field)
        return str(v.key if self.key_is_kv else v)

    def set_key(self, msg: Any, key: str) -> None:
        if self.key_field is None:
            return
        if self.key_is_kv:
            kv = getattr(msg, self.key_field)
            kv.key = key
            kv.version = max(1, kv.version)
            if not kv.version_id:
                kv.version_id = uuid.uuid4().hex
        else:
            setattr(msg, self.key_field, key)

    def touch(self, msg: Any, *, created: bool) -> None:
        ts = now_ts()
        if self.stamp:
            msg.concurrency_stamp = new_stamp()
        if created and self.created:
            msg.created_at.CopyFrom(ts)
        if self.updated:
            msg.updated_at.CopyFrom(ts)
        if self.audit:
            if created:
                msg.audit.creation_info.created_at.CopyFrom(ts)
            msg.audit.last_modification_time.CopyFrom(ts)
        if self.key_is_kv and not created:
            kv = getattr(msg, self.key_field or "id")
            kv.version += 1
            kv.version_id = uuid.uuid4().hex
        if created and self.edit_state and not msg.edit_state:
            msg.edit_state = 1  # EDIT_STATE_DRAFT

    def is_frozen(self, msg: Any) -> bool:
        if self.frozen and msg.frozen:
            return True
        return bool(self.edit_state and msg.edit_state == 3)  # EDIT_STATE_FROZEN

    def freeze(self, msg: Any) -> None:
        if self.frozen:
            msg.frozen = True
        if self.edit_state:
            msg.edit_state = 3
        if self.frozen_at:
            msg.frozen_at.CopyFrom(now_ts())


def _ts_field(fields: Any, name: str) -> bool:
    fd = fields.get(name)
    return (
        fd is not None
        and fd.message_type is not None
        and fd.message_type.full_name == "google.protobuf.Timestamp"
    )


def _message_class(desc: Any) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)


def get_attr(entity: Record, name: str) -> Any:
    """The attribute a filter or sort rule names, for a stored record."""
    msg = entity.msg
    if name in entity.extra:
        return entity.extra[name]
    fd = msg.DESCRIPTOR.fields_by_name.get(name)
    if fd is not None:
        if fd.message_type is not None and not is_repeated(fd) and not msg.HasField(name):
            return None
        return getattr(msg, name)
    if name == "key":
        return entity.key
    if name == "created_at" and "audit" in msg.DESCRIPTOR.fields_by_name:
        return msg.audit.creation_info.created_at
    if name == "updated_at" and "audit" in msg.DESCRIPTOR.fields_by_name:
        return msg.audit.last_modification_time
    if name == "sequence_id":
        return entity.seq
    return listing.find_value(msg, name)


def response_entity_field(desc: Any) -> Any:
    """The one singular message field of a response that carries an entity (``details``, ``plan``…)."""
    msgs = [f for f in desc.fields if f.message_type is not None and not is_repeated(f)]
    others = [f for f in desc.fields if f.message_type is None or is_repeated(f)]
    if len(msgs) == 1 and all(f.name in ("client_id", "client_secret", "exact_match") for f in others):
        return msgs[0]
    return None


def _request_ident(request: Any, shape: Shape | None) -> tuple[str, str] | None:
    """``(field path, value)`` addressing an entity in a request, or ``None`` when it has no address."""
    f = request.DESCRIPTOR.fields_by_name
    for name in ("key", "id"):
        fd = f.get(name)
        if fd is not None and fd.message_type is None and not is_repeated(fd):
            return name, str(getattr(request, name))
    inp = f.get("input")
    if inp is not None and inp.message_type is not None and "id" in inp.message_type.fields_by_name:
        return "input.id", str(request.input.id)
    if shape is not None and shape.key_field and shape.key_field in f:
        return shape.key_field, str(getattr(request, shape.key_field))
    ids = [
        fd.name
        for fd in request.DESCRIPTOR.fields
        if fd.name.endswith("_id") and fd.message_type is None and not is_repeated(fd)
    ]
    if len(ids) == 1:
        return ids[0], str(getattr(request, ids[0]))
    return None


def _required_key(request: Any, shape: Shape) -> str:
    """The key a request of an addressed method names; INVALID_ARGUMENT when it is empty."""
    ident = _request_ident(request, shape)
    assert ident is not None  # the method was classified as addressed
    path, key = ident
    if not key:
        raise invalid_argument(f"{path} is required", path, reason="MISSING_FIELD")
    return key


def _addressed(records: dict[str, Record], request: Any, shape: Shape, what: str) -> Record:
    """The record a request of an addressed method names (NOT_FOUND when unknown)."""
    key = _required_key(request, shape)
    rec = records.get(key)
    if rec is None:
        raise not_found(what, key)
    return rec


# -- the generic service --------------------------------------------------------------------------------


class GenericService:
    """Builds a handler for each RPC of one service from the conventions above."""

    def __init__(self, svc: ServiceInfo) -> None:
        self.svc = svc
        self.shapes: dict[str, Shape] = {}
        self.primary: Shape | None = None
        for name in ("Get", "Create", "Update"):
            m = svc.methods.get(name)
            if m is not None:
                ef = response_entity_field(m.response_class.DESCRIPTOR)
                if ef is not None:
                    self.primary = self.shape(ef.message_type)
                    break
        if self.primary is None:
            for m in svc.methods.values():
                items = m.response_class.DESCRIPTOR.fields_by_name.get("items")
                if items is not None and items.message_type is not None:
                    self.primary = self.shape(items.message_type)
                    break

    def shape(self, desc: Any) -> Shape:
        s = self.shapes.get(desc.full_name)
        if s is None:
            s = self.shapes[desc.full_name] = Shape(desc)
        return s

    def coll_name(self, shape: Shape) -> str:
        return f"{self.svc.full_name}:{shape.desc.full_name}"

    def build(self, m: MethodInfo) -> Handler:
        try:
            return self._build(m)
        except _Unsupported as exc:
            why = str(exc)
            full = m.full_name

            def unsupported(ctx: CallContext, request: Any) -> Any:
                raise unimplemented(full, why)

            return unsupported

    def _build(self, m: MethodInfo) -> Handler:
        req_desc = m.request_class.DESCRIPTOR
        resp_desc = m.response_class.DESCRIPTOR
        name = m.name
        rf = resp_desc.fields_by_name
        if m.is_streaming:
            return self._stream(m)
        if name.startswith("Bulk"):
            if "items" in rf and is_repeated(rf["items"]):
                return self._bulk(m)
            raise _Unsupported("bulk RPC without per-item results")
        if (
            "items" in rf
            and is_repeated(rf["items"])
            and rf["items"].message_type is not None
            and ("total_count" in rf or "pagination" in req_desc.fields_by_name or name.startswith("List"))
        ):
            return self._list(m)
        if name == "Clone":
            return self._clone(m)
        if name in ("Freeze",):
            return self._freeze(m)
        if name.startswith(("Delete", "Destroy")):
            return self._delete(m)
        ef = response_entity_field(resp_desc)
        if name.startswith("Create"):
            return self._create(m, ef)
        if name.startswith("Update"):
            if ef is None:
                raise _Unsupported("update RPC without an entity in its response")
            return self._update(m, ef)
        if name.startswith("Get") and ef is not None:
            return self._get(m, ef)
        raise _Unsupported(f"{name} is an operation without a generic in-memory meaning")

    # -- list -------------------------------------------------------------------------------------------
    def _list(self, m: MethodInfo) -> Handler:
        resp_cls: Any = m.response_class
        items_fd = resp_cls.DESCRIPTOR.fields_by_name["items"]
        item_desc = items_fd.message_type
        known = self._entity_types()
        shape = (
            self.shape(item_desc) if item_desc.full_name in known or self.primary is None else self.primary
        )
        item_cls: Any = _message_class(item_desc)
        same = shape.desc.full_name == item_desc.full_name
        coll = self.coll_name(shape)
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        has_filter = "filter" in req_fields and req_fields["filter"].message_type is not None
        cursor_fd = resp_cls.DESCRIPTOR.fields_by_name.get("next_page_cursor")
        wrapper_cursor = cursor_fd is not None and cursor_fd.message_type is not None
        has_total = "total_count" in resp_cls.DESCRIPTOR.fields_by_name
        full = m.full_name
        evaluator = listing.FilterEval(get_attr, full)

        def handler(ctx: CallContext, request: Any) -> Any:
            flt = request.filter if has_filter and request.HasField("filter") else None
            srt = request.sort if "sort" in req_fields and request.HasField("sort") else None
            pag = (
                request.pagination if "pagination" in req_fields and request.HasField("pagination") else None
            )
            with ctx.store.lock:
                records = list(ctx.store.coll(ctx.org, coll).values())
            records = filter_records(records, flt, evaluator, request, req_fields)
            listing.sort_items(records, srt, get_attr)
            query = listing.query_fingerprint(flt, srt)
            page = listing.paginate(records, pag, ctx.sandbox.cursors, f"{ctx.org}|{full}", query)
            out = resp_cls()
            items = out.items
            for r in page.items:
                if same:
                    items.add().CopyFrom(r.msg)
                else:
                    items.append(convert(r.msg, item_cls))
            if has_total:
                out.total_count = page.total
            if page.next_cursor:
                if wrapper_cursor:
                    out.next_page_cursor.value = page.next_cursor
                elif cursor_fd is not None:
                    out.next_page_cursor = page.next_cursor
            return out

        return handler

    def _entity_types(self) -> set[str]:
        out: set[str] = set()
        for m in self.svc.methods.values():
            ef: Any = response_entity_field(m.response_class.DESCRIPTOR)
            if ef is not None:
                out.add(ef.message_type.full_name)
        return out

    # -- get --------------------------------------------------------------------------------------------
    def _get(self, m: MethodInfo, ef: FieldDescriptor) -> Handler:
        shape = self.shape(ef.message_type)
        coll = self.coll_name(shape)
        resp_cls: Any = m.response_class
        out_name = ef.name
        has_ident = _request_ident(m.request_class(), shape) is not None
        what = shape.desc.name

        def handler(ctx: CallContext, request: Any) -> Any:
            out = resp_cls()
            with ctx.store.lock:
                c = ctx.store.coll(ctx.org, coll)
                if not has_ident:  # a per-organization singleton (settings, profile…)
                    rec = c.get("")
                    if rec is not None:
                        getattr(out, out_name).CopyFrom(rec.msg)
                    else:
                        getattr(out, out_name).SetInParent()
                    return out
                getattr(out, out_name).CopyFrom(_addressed(c, request, shape, what).msg)
            return out

        return handler

    # -- create -----------------------------------------------------------------------------------------
    def _create(self, m: MethodInfo, ef: FieldDescriptor | None) -> Handler:
        shape = self.shape(ef.message_type) if ef is not None else self.primary
        if shape is None:
            raise _Unsupported("create RPC whose response carries no entity")
        coll = self.coll_name(shape)
        resp_cls: Any = m.response_class
        out_name = ef.name if ef is not None else None
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        source = _source_field(req_fields)
        has_key = "key" in req_fields and req_fields["key"].message_type is None
        freeze_flag = "freeze_immediately" in req_fields
        what = shape.desc.name

        def handler(ctx: CallContext, request: Any) -> Any:
            entity = shape.cls()
            src = getattr(request, source) if source else request
            if isinstance(src, Message):
                copy_matching(src, entity)
            with ctx.store.lock:
                c = ctx.store.coll(ctx.org, coll)
                key = request.key if has_key and request.key else ""
                if key and key in c:
                    raise Fault(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"{what} {key!r} already exists",
                        reason="ALREADY_EXISTS",
                        metadata={"key": key},
                    )
                if not key:
                    key = shape.key_of(entity) if shape.key_field and shape.key_field != "id" else ""
                    if not key or key in c:
                        key = uuid.uuid4().hex
                shape.set_key(entity, key)
                shape.touch(entity, created=True)
                if freeze_flag and request.freeze_immediately:
                    shape.freeze(entity)
                rec = Record(key, entity, ctx.store.next_seq())
                c[key] = rec
                out = resp_cls()
                if out_name is not None:
                    getattr(out, out_name).CopyFrom(entity)
            return out

        return handler

    # -- update -----------------------------------------------------------------------------------------
    def _update(self, m: MethodInfo, ef: FieldDescriptor) -> Handler:
        shape = self.shape(ef.message_type)
        coll = self.coll_name(shape)
        resp_cls: Any = m.response_class
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        source = _source_field(req_fields)
        has_stamp = "concurrency_stamp" in req_fields
        mask_name = next((n for n in ("mask", "update_mask") if n in req_fields), None)
        singleton = _request_ident(m.request_class(), shape) is None
        out_name = ef.name
        replace = source == "changes"
        what = shape.desc.name

        def handler(ctx: CallContext, request: Any) -> Any:
            with ctx.store.lock:
                c = ctx.store.coll(ctx.org, coll)
                if singleton:
                    rec = c.get("")
                    if rec is None:
                        rec = c[""] = Record("", shape.cls(), ctx.store.next_seq())
                        shape.touch(rec.msg, created=True)
                else:
                    rec = _addressed(c, request, shape, what)
                check_stamp(request, rec.msg, has_stamp and shape.stamp)
                if shape.is_frozen(rec.msg):
                    raise frozen_fault(what, rec.key)
                entity = shape.cls()
                entity.CopyFrom(rec.msg)
                src = getattr(request, source) if source else request
                mask = getattr(request, mask_name) if mask_name and request.HasField(mask_name) else None
                if source:
                    apply_mask(entity, src, mask, replace=replace)
                else:
                    copy_matching(
                        src, entity, only=[f for f in req_fields if f not in ("concurrency_stamp", "mask")]
                    )
                shape.set_key(entity, rec.key)
                shape.touch(entity, created=False)
                rec.msg = entity
                out = resp_cls()
                getattr(out, out_name).CopyFrom(entity)
            return out

        return handler

    # -- delete -----------------------------------------------------------------------------------------
    def _delete(self, m: MethodInfo) -> Handler:
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        resp_cls: Any = m.response_class
        ef = response_entity_field(resp_cls.DESCRIPTOR)
        shape = self.shape(ef.message_type) if ef is not None else self._named_shape(m.name)
        if shape is None:
            raise _Unsupported("delete RPC of a service without an entity type")
        coll = self.coll_name(shape)
        keys_field = "keys" if "keys" in req_fields and is_repeated(req_fields["keys"]) else None
        if keys_field is None and _request_ident(m.request_class(), shape) is None:
            raise _Unsupported("delete RPC without keys")
        what = shape.desc.name
        echo_id = "id" in resp_cls.DESCRIPTOR.fields_by_name and ef is None

        def handler(ctx: CallContext, request: Any) -> Any:
            if keys_field:
                keys = list(getattr(request, keys_field))
                if not keys:
                    raise invalid_argument(
                        "keys must name at least one entity", "keys", reason="MISSING_FIELD"
                    )
            else:
                keys = [_required_key(request, shape)]
            out = resp_cls()
            with ctx.store.lock:
                c = ctx.store.coll(ctx.org, coll)
                for k in keys:
                    rec = c.get(k)
                    if rec is None:
                        raise not_found(what, k)
                    if shape.is_frozen(rec.msg):
                        raise frozen_fault(what, k)
                removed = [c.pop(k) for k in keys]
                if ef is not None:
                    rec = removed[-1]
                    getattr(out, ef.name).CopyFrom(rec.msg)
                elif echo_id:
                    out.id = keys[0]
            return out

        return handler

    def _named_shape(self, name: str) -> Shape | None:
        """``DeleteAddOn`` with an empty response deletes what ``GetAddOn`` returns (else the primary)."""
        for prefix in ("Delete", "Destroy"):
            noun = name.removeprefix(prefix)
            get = self.svc.methods.get(f"Get{noun}") if noun and noun != name else None
            ef = response_entity_field(get.response_class.DESCRIPTOR) if get is not None else None
            if ef is not None:
                return self.shape(ef.message_type)
        return self.primary

    # -- freeze / clone / bulk --------------------------------------------------------------------------
    def _freeze(self, m: MethodInfo) -> Handler:
        ef = response_entity_field(m.response_class.DESCRIPTOR)
        if ef is None:
            raise _Unsupported("freeze RPC without an entity in its response")
        shape = self.shape(ef.message_type)
        coll = self.coll_name(shape)
        resp_cls: Any = m.response_class
        has_stamp = "concurrency_stamp" in m.request_class.DESCRIPTOR.fields_by_name
        what = shape.desc.name

        def handler(ctx: CallContext, request: Any) -> Any:
            with ctx.store.lock:
                rec = ctx.store.coll(ctx.org, coll).get(request.key)
                if rec is None:
                    raise not_found(what, request.key)
                check_stamp(request, rec.msg, has_stamp and shape.stamp)
                if shape.is_frozen(rec.msg):
                    raise Fault(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"{what} {request.key!r} is already frozen",
                        reason="ALREADY_FROZEN",
                        metadata={"key": request.key},
                    )
                entity = shape.cls()
                entity.CopyFrom(rec.msg)
                shape.freeze(entity)
                shape.touch(entity, created=False)
                rec.msg = entity
                out = resp_cls()
                getattr(out, ef.name).CopyFrom(entity)
            return out

        return handler

    def _clone(self, m: MethodInfo) -> Handler:
        ef = response_entity_field(m.response_class.DESCRIPTOR)
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        if ef is None or "source_key" not in req_fields:
            raise _Unsupported("clone RPC of an unexpected shape")
        shape = self.shape(ef.message_type)
        coll = self.coll_name(shape)
        resp_cls: Any = m.response_class
        what = shape.desc.name

        def handler(ctx: CallContext, request: Any) -> Any:
            with ctx.store.lock:
                c = ctx.store.coll(ctx.org, coll)
                src = c.get(request.source_key)
                if src is None:
                    raise not_found(what, request.source_key)
                key = getattr(request, "new_key", "") or uuid.uuid4().hex
                if key in c:
                    raise Fault(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"{what} {key!r} already exists",
                        reason="ALREADY_EXISTS",
                    )
                entity = shape.cls()
                entity.CopyFrom(src.msg)
                if shape.edit_state:
                    entity.edit_state = 1
                if shape.frozen:
                    entity.frozen = False
                if shape.frozen_at:
                    entity.ClearField("frozen_at")
                if "regulation_metadata" in shape.desc.fields_by_name:
                    entity.ClearField("regulation_metadata")
                shape.set_key(entity, key)
                shape.touch(entity, created=True)
                c[key] = Record(key, entity, ctx.store.next_seq())
                out = resp_cls()
                getattr(out, ef.name).CopyFrom(entity)
            return out

        return handler

    def _stream(self, m: MethodInfo) -> Handler:
        """``ListStream``/``GetStream``: the unary answer as one message, then the stream ends;
        ``StreamCreate``/``StreamFreeze``/``StreamUpdate``: one ``BulkItemResult`` per request."""
        if m.server_streaming and not m.client_streaming and m.name.endswith("Stream"):
            unary = m.name.removesuffix("Stream")
        elif m.client_streaming and m.name.startswith("Stream"):
            unary = m.name.removeprefix("Stream")
        else:
            raise _Unsupported("a streaming operation without a unary counterpart")
        op = self.svc.methods.get(unary)
        if op is None or op.is_streaming:
            raise _Unsupported(f"streaming RPC without a unary {unary}")
        single = self.build(op)
        op_cls: Any = op.request_class
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        resp_cls: Any = m.response_class
        rf = resp_cls.DESCRIPTOR.fields_by_name
        wrapped = next(
            (
                n
                for n in ("request", "item")
                if n in req_fields
                and getattr(req_fields[n].message_type, "full_name", None) == op_cls.DESCRIPTOR.full_name
            ),
            None,
        )

        def unwrap(request: Any) -> Any:
            if wrapped is not None:
                return getattr(request, wrapped)
            sub = op_cls()
            copy_matching(request, sub)
            return sub

        if not m.client_streaming:

            def server_stream(ctx: CallContext, request: Any) -> Any:
                res = single(ctx, unwrap(request))
                out = resp_cls()
                if "initial" in rf:
                    out.initial.CopyFrom(res)
                else:
                    copy_matching(res, out)
                return [out]

            return server_stream
        if "result" not in rf:
            raise _Unsupported("bidirectional stream without per-item results")
        err_desc = rf["result"].message_type.fields_by_name["error"].message_type

        def bidi(ctx: CallContext, requests: Any) -> Any:
            for request in requests:
                sub = unwrap(request)
                out = resp_cls()
                try:
                    res = single(ctx, sub)
                    ef = response_entity_field(res.DESCRIPTOR)
                    key = self.shape(ef.message_type).key_of(getattr(res, ef.name)) if ef is not None else ""
                    out.result.success_key = key or str(getattr(sub, "key", ""))
                except Fault as f:
                    copy_matching(_error_msg(err_desc, f), out.result.error)
                yield out

        return bidi

    def _bulk(self, m: MethodInfo) -> Handler:
        """``Bulk<Op>``: run ``<Op>`` per item and report ``BulkItemResult {index, success_key | error}``."""
        op = self.svc.methods.get(m.name.removeprefix("Bulk"))
        item_desc: Any = m.response_class.DESCRIPTOR.fields_by_name["items"].message_type
        if op is None or "success_key" not in item_desc.fields_by_name:
            raise _Unsupported("bulk RPC without a matching single-item RPC or per-item results")
        single = self.build(op)
        req_fields = m.request_class.DESCRIPTOR.fields_by_name
        op_cls: Any = op.request_class
        resp_cls: Any = m.response_class
        err_desc = (
            item_desc.fields_by_name["error"].message_type if "error" in item_desc.fields_by_name else None
        )

        def handler(ctx: CallContext, request: Any) -> Any:
            if "items" in req_fields:
                subs = list(request.items)
            else:
                subs = [
                    op_cls(keys=[k]) if "keys" in op_cls.DESCRIPTOR.fields_by_name else op_cls(key=k)
                    for k in request.keys
                ]
            out = resp_cls()
            for i, sub in enumerate(subs):
                item = out.items.add()
                item.index = i
                try:
                    res = single(ctx, sub)
                    key = ""
                    ef = response_entity_field(res.DESCRIPTOR)
                    if ef is not None:
                        key = self.shape(ef.message_type).key_of(getattr(res, ef.name))
                    elif "keys" in sub.DESCRIPTOR.fields_by_name:
                        key = sub.keys[0]
                    item.success_key = key or getattr(sub, "key", "")
                except Fault as f:
                    if err_desc is not None:
                        copy_matching(_error_msg(err_desc, f), item.error)
            return out

        return handler


def _error_msg(desc: Any, fault: Fault) -> Any:
    cls = _message_class(desc)
    msg = cls()
    fields = desc.fields_by_name
    for name, value in (("code", fault.code.name), ("message", fault.message)):
        fd = fields.get(name)
        if fd is None:
            continue
        if fd.cpp_type == FieldDescriptor.CPPTYPE_STRING:
            setattr(msg, name, value)
        elif name == "code" and fd.cpp_type in (
            FieldDescriptor.CPPTYPE_INT32,
            FieldDescriptor.CPPTYPE_UINT32,
        ):
            setattr(msg, name, fault.code.value[0])
    return msg


class _Unsupported(Exception):
    pass


def _source_field(fields: Any) -> str | None:
    for name in ("changes", "input", "event", "item"):
        fd = fields.get(name)
        if fd is not None and fd.message_type is not None and not is_repeated(fd):
            return name
    return None


def check_stamp(request: Any, entity: Any, enabled: bool) -> None:
    if not enabled:
        return
    stamp = request.concurrency_stamp
    if not stamp:
        raise invalid_argument("concurrency_stamp is required", "concurrency_stamp", reason="MISSING_FIELD")
    if stamp != entity.concurrency_stamp:
        raise Fault(
            grpc.StatusCode.ABORTED,
            "concurrency_stamp does not match the current version: reload the entity and retry",
            reason="CONCURRENCY_STAMP_MISMATCH",
            metadata={"current_stamp": entity.concurrency_stamp},
        )


def frozen_fault(what: str, key: str) -> Fault:
    return Fault(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"{what} {key!r} is frozen and can no longer be changed; issue a credit or debit note instead",
        reason="DOCUMENT_FROZEN",
        metadata={"key": key},
    )


def filter_records(
    records: list[Record],
    flt: Any,
    evaluator: listing.FilterEval,
    request: Any,
    req_fields: Any,
    texts: Callable[[Record], Iterable[str]] | None = None,
) -> list[Record]:
    """Apply ``filter`` (part + text_search) and a top-level ``text_search`` of the request."""
    needles: list[str] = []
    part = None
    if flt is not None:
        fdesc = flt.DESCRIPTOR.fields_by_name
        if "text_search" in fdesc and flt.text_search:
            needles.append(flt.text_search)
        if "part" in fdesc and flt.HasField("part"):
            part = flt.part
    if "text_search" in req_fields and request.text_search:
        needles.append(request.text_search)
    out = records
    if part is not None:
        out = [r for r in out if evaluator(part, r)]
    for n in needles:
        corpus = texts or (lambda r: listing.strings_of(r.msg))
        out = [r for r in out if listing.text_matches(corpus(r), n)]
    return out
