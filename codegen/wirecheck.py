"""Compare two descriptor sets file by file and list every wire-relevant difference.

Used by the test suite to prove that ``protos/`` compiles to exactly the vendor's published schema:
packages, imports, messages, fields (names, numbers, types, labels, oneofs, json names,
``proto3_optional``), enums, services, methods, streaming flags and method/field options (HTTP rules,
scopes). Source info and comments are ignored; they are ours.

    python codegen/wirecheck.py codegen/upstream/invora.binpb build/protos.binpb
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Iterable

from google.api import annotations_pb2, field_behavior_pb2  # noqa: F401  (registers extensions)
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

from invora._pbcompat import is_repeated  # FieldDescriptor.is_repeated is missing before protobuf 6.31


def _canonical(f: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(f)
    out.ClearField("source_code_info")
    return out


def diff_messages(expected: Message, actual: Message, path: str) -> Iterable[str]:
    """Yield ``path: what differs`` for every field where two messages differ, recursing by name."""
    if type(expected) is not type(actual):
        yield f"{path}: type {type(expected).__name__} != {type(actual).__name__}"
        return
    if expected.DESCRIPTOR.full_name.endswith("Options"):
        # Options mix known extensions and unknown ones (kernel.options); compare the canonical bytes.
        e, a = expected.SerializeToString(deterministic=True), actual.SerializeToString(deterministic=True)
        if e != a:
            yield f"{path}: options differ: expected {expected!s:.200} / got {actual!s:.200}".replace(
                "\n", " "
            )
        return
    for field in expected.DESCRIPTOR.fields:
        name = field.name
        ev, av = getattr(expected, name), getattr(actual, name)
        if is_repeated(field):
            if field.type == field.TYPE_MESSAGE:
                yield from _diff_repeated(list(ev), list(av), f"{path}.{name}")
            elif list(ev) != list(av):
                yield f"{path}.{name}: expected {list(ev)} got {list(av)}"
        elif field.type == field.TYPE_MESSAGE:
            if expected.HasField(name) != actual.HasField(name):
                yield f"{path}.{name}: present={expected.HasField(name)} expected, got {actual.HasField(name)}"
            elif expected.HasField(name):
                yield from diff_messages(ev, av, f"{path}.{name}")
        else:
            has_e = expected.HasField(name) if field.has_presence else ev != field.default_value
            has_a = actual.HasField(name) if field.has_presence else av != field.default_value
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
        problems.extend(diff_messages(_canonical(f), _canonical(got[f.name]), f.name))
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("expected", type=pathlib.Path)
    p.add_argument("actual", type=pathlib.Path)
    args = p.parse_args(argv)
    load = descriptor_pb2.FileDescriptorSet.FromString
    problems = diff_sets(load(args.expected.read_bytes()), load(args.actual.read_bytes()))
    for line in problems:
        print(line)
    print(f"{len(problems)} differences", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
