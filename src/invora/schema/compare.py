"""Wire-fact comparison of two schemas: the one implementation behind every schema check.

Two uses, one comparator (:func:`diff_messages`, a by-name recursive diff of descriptor protos):

- **Files** (:func:`diff_sets`): ``protos/`` must compile to exactly the vendor's image
  (``codegen/wirecheck.py``, ``tests/test_schema_wire.py``).
- **Services** (:func:`diff_services`): the compiled-in schema against a server's (reflection) or an
  image's, for every service both have — its methods (names, types, streaming, HTTP rules, scopes) and
  every message and enum its requests and responses reach (field names, numbers, types, labels, oneofs,
  ``proto3_optional``, enum values). File layout, source info and default JSON names do not count.

Options (HTTP rules, scopes, field behaviour) are compared as canonical bytes, re-parsed in this process
so a known extension and the same extension kept as unknown bytes compare equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

__all__ = ["SchemaDiff", "diff_messages", "diff_services", "diff_sets"]

_ServiceLike = descriptor_pb2.ServiceDescriptorProto
_Type = descriptor_pb2.DescriptorProto | descriptor_pb2.EnumDescriptorProto


def _canonical_options(m: Message) -> bytes:
    return type(m).FromString(m.SerializeToString()).SerializeToString(deterministic=True)


def diff_messages(expected: Message, actual: Message, path: str) -> Iterable[str]:
    """Yield ``path: what differs`` for every field where two messages differ, recursing by name."""
    if type(expected) is not type(actual):
        yield f"{path}: type {type(expected).__name__} != {type(actual).__name__}"
        return
    if expected.DESCRIPTOR.full_name.endswith("Options"):
        # Options mix known extensions and unknown ones (kernel.options); compare the canonical bytes.
        if _canonical_options(expected) != _canonical_options(actual):
            yield f"{path}: options differ: expected {expected!s:.200} / got {actual!s:.200}".replace(
                "\n", " "
            )
        return
    for fd in expected.DESCRIPTOR.fields:
        name = fd.name
        ev, av = getattr(expected, name), getattr(actual, name)
        if fd.is_repeated:
            if fd.type == fd.TYPE_MESSAGE:
                yield from _diff_repeated(list(ev), list(av), f"{path}.{name}")
            elif list(ev) != list(av):
                yield f"{path}.{name}: expected {list(ev)} got {list(av)}"
        elif fd.type == fd.TYPE_MESSAGE:
            if expected.HasField(name) != actual.HasField(name):
                yield f"{path}.{name}: present={expected.HasField(name)} expected, got {actual.HasField(name)}"
            elif expected.HasField(name):
                yield from diff_messages(ev, av, f"{path}.{name}")
        else:
            has_e = expected.HasField(name) if fd.has_presence else ev != fd.default_value
            has_a = actual.HasField(name) if fd.has_presence else av != fd.default_value
            if ev != av or has_e != has_a:
                yield f"{path}.{name}: expected {ev!r} got {av!r}"


def _diff_repeated(expected: list[Message], actual: list[Message], path: str) -> Iterable[str]:
    def key(m: Message) -> str | None:
        return getattr(m, "name", None) if "name" in m.DESCRIPTOR.fields_by_name else None

    e_names = [key(m) for m in expected]
    a_names = [key(m) for m in actual]
    if None in e_names or len(set(e_names)) != len(e_names):
        # Unnamed or duplicated entries (e.g. reserved ranges): compare positionally.
        if len(expected) != len(actual):
            yield f"{path}: {len(expected)} entries expected, got {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from diff_messages(e, a, f"{path}[{i}]")
        return
    for name in e_names:
        if name not in a_names:
            yield f"{path}[{name}]: missing"
    for name in a_names:
        if name not in e_names:
            yield f"{path}[{name}]: unexpected"
    common_e = [n for n in e_names if n in a_names]
    common_a = [n for n in a_names if n in e_names]
    if common_e != common_a:
        yield f"{path}: order differs: expected {common_e} got {common_a}"
    by_name = dict(zip(a_names, actual, strict=False))
    for name, e in zip(e_names, expected, strict=False):
        if name in by_name:
            yield from diff_messages(e, by_name[name], f"{path}[{name}]")


def _without_source_info(f: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(f)
    out.ClearField("source_code_info")
    return out


def diff_sets(
    expected: descriptor_pb2.FileDescriptorSet,
    actual: descriptor_pb2.FileDescriptorSet,
) -> list[str]:
    """Differences for every file of ``expected``; a file missing from ``actual`` is one difference."""
    got = {f.name: f for f in actual.file}
    problems: list[str] = []
    for f in expected.file:
        if f.name not in got:
            problems.append(f"{f.name}: not produced by protos/")
            continue
        problems.extend(diff_messages(_without_source_info(f), _without_source_info(got[f.name]), f.name))
    return problems


# -- services ------------------------------------------------------------------------------------------------
class _Index:
    """Services, messages and enums of a descriptor set by full name (``pkg.Name``, no leading dot)."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.services: dict[str, _ServiceLike] = {}
        self.types: dict[str, _Type] = {}
        for f in fds.file:
            prefix = f"{f.package}." if f.package else ""
            for s in f.service:
                self.services[prefix + s.name] = s
            for m in f.message_type:
                self._add(prefix + m.name, m)
            for e in f.enum_type:
                self.types[prefix + e.name] = e

    def _add(self, full: str, m: descriptor_pb2.DescriptorProto) -> None:
        self.types[full] = m
        for n in m.nested_type:
            self._add(f"{full}.{n.name}", n)
        for e in m.enum_type:
            self.types[f"{full}.{e.name}"] = e

    def reached(self, service: _ServiceLike) -> set[str]:
        seen: set[str] = set()
        todo = [t.lstrip(".") for m in service.method for t in (m.input_type, m.output_type)]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            found = self.types.get(name)
            if isinstance(found, descriptor_pb2.DescriptorProto):
                todo.extend(fl.type_name.lstrip(".") for fl in found.field if fl.type_name)
        return seen


def _wire_view(t: _Type) -> Any:
    """A type's own wire facts: nested types are compared on their own, default JSON names filled in."""
    out: Any = type(t)()
    out.CopyFrom(t)
    if isinstance(out, descriptor_pb2.DescriptorProto):
        out.ClearField("nested_type")
        out.ClearField("enum_type")
        for fl in out.field:
            if not fl.json_name:
                fl.json_name = _default_json_name(fl.name)
    return out


def _default_json_name(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


@dataclass
class SchemaDiff:
    """The outcome of :func:`diff_services`. ``compatible`` when no service both sides have differs."""

    #: Service full name -> ``where: what differs`` lines (only services with differences).
    differences: dict[str, list[str]] = field(default_factory=dict)
    common: list[str] = field(default_factory=list)
    only_ours: list[str] = field(default_factory=list)
    only_theirs: list[str] = field(default_factory=list)
    #: Service -> types one side refers to but does not define (a set without its imports).
    unverified: dict[str, list[str]] = field(default_factory=dict)

    @property
    def compatible(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, object]:
        return {
            "compatible": self.compatible,
            "services_compared": len(self.common),
            "differences": self.differences,
            "only_in_sdk": self.only_ours,
            "only_on_server": self.only_theirs,
            "unverified": self.unverified,
        }


def diff_services(
    ours: descriptor_pb2.FileDescriptorSet,
    theirs: descriptor_pb2.FileDescriptorSet,
    services: Iterable[str] | None = None,
) -> SchemaDiff:
    """Compare every service both sets have (or just ``services``) on wire facts.

    "expected" in a difference is ours (the compiled-in schema), "got" is theirs.
    """
    a, b = _Index(ours), _Index(theirs)
    wanted = set(services) if services is not None else None
    report = SchemaDiff()
    for name in sorted(set(a.services) | set(b.services)):
        if wanted is not None and name not in wanted:
            continue
        if name not in b.services:
            report.only_ours.append(name)
            continue
        if name not in a.services:
            report.only_theirs.append(name)
            continue
        report.common.append(name)
        problems = list(diff_messages(a.services[name], b.services[name], f"service {name}"))
        ra, rb = a.reached(a.services[name]), b.reached(b.services[name])
        for t in sorted(ra | rb):
            ta, tb = a.types.get(t), b.types.get(t)
            if ta is not None and tb is not None:
                problems.extend(diff_messages(_wire_view(ta), _wire_view(tb), t))
            elif t in ra and t in rb:  # else: one side's method refers elsewhere, already reported
                if ta is None and tb is None:
                    continue
                # A set need not carry its imports (an image without well-known types): unknown, not wrong.
                report.unverified.setdefault(name, []).append(t)
        if problems:
            report.differences[name] = problems
    return report
