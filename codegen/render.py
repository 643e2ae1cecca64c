"""Render ``.proto`` source text from compiled descriptors.

The vendor publishes its schema only as a comment-free ``FileDescriptorSet``. This module turns each
``FileDescriptorProto`` back into proto3 source that compiles to the *same* descriptor (checked by
``codegen/wirecheck.py``), so ``protos/`` can be read, diffed and fed to protoc like hand-written files.

What it covers is what the Invora schema uses: messages (nested, maps, oneofs, proto3 ``optional``),
enums (with ``allow_alias``), services (streaming flags), ``google.api.http`` rules, ``google.api.field_behavior``,
Invora's ``kernel.options`` scope extension (53036) and extension declarations. Anything outside that
raises ``UnsupportedDescriptor`` instead of rendering something subtly different.

Type references are written as short as protoc's scoping rules allow: a candidate name is used only if
resolving it from the reference's scope (innermost first, as protoc does) lands on the intended type.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Iterable

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

from invora._rules import SCOPE_EXTENSION, decode_scope

FDP = descriptor_pb2.FieldDescriptorProto


_SCALARS = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}

_HTTP_VERBS = ("get", "put", "post", "delete", "patch")


class UnsupportedDescriptor(ValueError):
    """The descriptor uses a feature this renderer does not reproduce faithfully."""


def default_json_name(name: str) -> str:
    """protoc's default lowerCamelCase JSON name for a field."""
    out, upper = [], False
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


class SymbolTable:
    """Every fully-qualified name the descriptor set defines (packages, messages, enums, enum values)."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]):
        self.names: set[str] = {"google", "google.protobuf", "google.api", "google.type", "google.rpc"}
        for f in files:
            parts = f.package.split(".") if f.package else []
            for i in range(1, len(parts) + 1):
                self.names.add(".".join(parts[:i]))
            for m in f.message_type:
                self._add_message(f.package, m)
            for e in f.enum_type:
                self._add_enum(f.package, e)

    def _add_message(self, scope: str, m: descriptor_pb2.DescriptorProto) -> None:
        full = f"{scope}.{m.name}" if scope else m.name
        self.names.add(full)
        for n in m.nested_type:
            self._add_message(full, n)
        for e in m.enum_type:
            self._add_enum(full, e)

    def _add_enum(self, scope: str, e: descriptor_pb2.EnumDescriptorProto) -> None:
        full = f"{scope}.{e.name}" if scope else e.name
        self.names.add(full)
        for v in e.value:  # enum values live in the enum's parent scope
            self.names.add(f"{scope}.{v.name}" if scope else v.name)

    def resolve(self, name: str, scope: str) -> str | None:
        """Resolve ``name`` from ``scope`` the way protoc does: first component, innermost scope first."""
        first, _, rest = name.partition(".")
        parts = scope.split(".") if scope else []
        for i in range(len(parts), -1, -1):
            prefix = ".".join(parts[:i])
            candidate = f"{prefix}.{first}" if prefix else first
            if candidate in self.names or self._is_google(candidate):
                return f"{candidate}.{rest}" if rest else candidate
        return None

    @staticmethod
    def _is_google(candidate: str) -> bool:
        return candidate == "google" or candidate.startswith("google.")

    def shortest(self, target: str, scope: str) -> str:
        """The shortest suffix of ``target`` that still resolves to it from ``scope``."""
        target = target.lstrip(".")
        parts = target.split(".")
        for i in range(len(parts) - 1, -1, -1):
            candidate = ".".join(parts[i:])
            if self.resolve(candidate, scope) == target:
                return candidate
        return "." + target


class FileRenderer:
    def __init__(self, f: descriptor_pb2.FileDescriptorProto, symbols: SymbolTable, header: str):
        self.f = f
        self.symbols = symbols
        self.header = header
        self.lines: list[str] = []

    # -- output helpers -------------------------------------------------------------------------
    def emit(self, depth: int, text: str = "") -> None:
        self.lines.append(("  " * depth + text) if text else "")

    def type_ref(self, type_name: str, scope: str) -> str:
        return self.symbols.shortest(type_name, scope)

    # -- file ------------------------------------------------------------------------------------
    def render(self) -> str:
        f = self.f
        if f.syntax != "proto3":
            raise UnsupportedDescriptor(f"{f.name}: syntax {f.syntax!r}")
        if f.public_dependency or f.weak_dependency:
            raise UnsupportedDescriptor(f"{f.name}: public/weak imports")
        if f.options.ByteSize():
            raise UnsupportedDescriptor(f"{f.name}: file options")
        for line in self.header.rstrip("\n").splitlines():
            self.emit(0, f"// {line}".rstrip())
        self.emit(0)
        self.emit(0, 'syntax = "proto3";')
        self.emit(0)
        if f.package:
            self.emit(0, f"package {f.package};")
            self.emit(0)
        if f.dependency:
            for dep in f.dependency:
                self.emit(0, f'import "{dep}";')
            self.emit(0)
        for ext in f.extension:
            self.render_extension(0, ext, f.package)
        for e in f.enum_type:
            self.render_enum(0, e)
        for m in f.message_type:
            self.render_message(0, m, f.package)
        for s in f.service:
            self.render_service(s)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"

    def render_extension(self, depth: int, ext: descriptor_pb2.FieldDescriptorProto, scope: str) -> None:
        self.emit(depth, f"extend {self.type_ref(ext.extendee, scope)} {{")
        self.emit(depth + 1, self.field_line(ext, scope, None))
        self.emit(depth, "}")
        self.emit(depth)

    # -- enums ----------------------------------------------------------------------------------
    def render_enum(self, depth: int, e: descriptor_pb2.EnumDescriptorProto) -> None:
        opts = descriptor_pb2.EnumOptions()
        opts.CopyFrom(e.options)
        alias = opts.HasField("allow_alias")
        opts.ClearField("allow_alias")
        if opts.ByteSize() or e.reserved_range or e.reserved_name:
            raise UnsupportedDescriptor(f"{self.f.name}: enum {e.name} options/reserved")
        self.emit(depth, f"enum {e.name} {{")
        if alias:
            self.emit(depth + 1, f"option allow_alias = {'true' if e.options.allow_alias else 'false'};")
        for v in e.value:
            if v.options.ByteSize():
                raise UnsupportedDescriptor(f"{self.f.name}: enum value {v.name} options")
            self.emit(depth + 1, f"{v.name} = {v.number};")
        self.emit(depth, "}")
        self.emit(depth)

    # -- messages -------------------------------------------------------------------------------
    def render_message(self, depth: int, m: descriptor_pb2.DescriptorProto, scope: str) -> None:
        if m.options.ByteSize() or m.extension_range or m.extension or m.reserved_name:
            raise UnsupportedDescriptor(f"{self.f.name}: message {m.name} uses unsupported features")
        full = f"{scope}.{m.name}" if scope else m.name
        maps = {n.name: n for n in m.nested_type if n.options.map_entry}
        self.emit(depth, f"message {m.name} {{")
        inner = depth + 1
        for rr in m.reserved_range:
            end = rr.end - 1
            self.emit(inner, f"reserved {rr.start};" if end == rr.start else f"reserved {rr.start} to {end};")
        for e in m.enum_type:
            self.render_enum(inner, e)
        for n in m.nested_type:
            if not n.options.map_entry:
                self.render_message(inner, n, full)

        real_oneofs = {
            i
            for i in range(len(m.oneof_decl))
            if any(
                fl.HasField("oneof_index") and fl.oneof_index == i and not fl.proto3_optional
                for fl in m.field
            )
        }
        open_oneof: int | None = None
        seen_oneofs: set[int] = set()
        for fl in m.field:
            idx = fl.oneof_index if fl.HasField("oneof_index") and fl.oneof_index in real_oneofs else None
            if idx != open_oneof:
                if open_oneof is not None:
                    self.emit(inner, "}")
                if idx is not None:
                    if idx in seen_oneofs:
                        raise UnsupportedDescriptor(
                            f"{self.f.name}: {m.name} oneof fields are not contiguous"
                        )
                    seen_oneofs.add(idx)
                    self.emit(inner, f"oneof {m.oneof_decl[idx].name} {{")
                open_oneof = idx
            self.emit(inner + (1 if idx is not None else 0), self.field_line(fl, full, maps))
        if open_oneof is not None:
            self.emit(inner, "}")
        if self.lines[-1] == "":
            self.lines.pop()
        self.emit(depth, "}")
        self.emit(depth)

    def field_line(
        self,
        fl: descriptor_pb2.FieldDescriptorProto,
        scope: str,
        maps: dict[str, descriptor_pb2.DescriptorProto] | None,
    ) -> str:
        if fl.HasField("default_value"):
            raise UnsupportedDescriptor(f"{self.f.name}: default on {fl.name}")
        entry = None
        if maps and fl.type == FDP.TYPE_MESSAGE and fl.label == FDP.LABEL_REPEATED:
            entry = maps.get(fl.type_name.rsplit(".", 1)[-1])
            if entry is not None and not fl.type_name.endswith(f"{scope}.{entry.name}"):
                entry = None
        if entry is not None:
            key, value = entry.field[0], entry.field[1]
            decl = (
                f"map<{self.type_name(key, scope)}, {self.type_name(value, scope)}> {fl.name} = {fl.number}"
            )
        else:
            label = ""
            if fl.label == FDP.LABEL_REPEATED:
                label = "repeated "
            elif fl.proto3_optional:
                label = "optional "
            elif fl.label == FDP.LABEL_REQUIRED:
                raise UnsupportedDescriptor(f"{self.f.name}: required field {fl.name}")
            decl = f"{label}{self.type_name(fl, scope)} {fl.name} = {fl.number}"
        opts = self.field_options(fl)
        return f"{decl}{' [' + ', '.join(opts) + ']' if opts else ''};"

    def type_name(self, fl: descriptor_pb2.FieldDescriptorProto, scope: str) -> str:
        if fl.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
            return self.type_ref(fl.type_name, scope)
        if fl.type == FDP.TYPE_GROUP:
            raise UnsupportedDescriptor(f"{self.f.name}: group {fl.name}")
        return _SCALARS[fl.type]

    def field_options(self, fl: descriptor_pb2.FieldDescriptorProto) -> list[str]:
        opts: list[str] = []
        if fl.json_name and fl.json_name != default_json_name(fl.name):
            opts.append(f'json_name = "{fl.json_name}"')
        o = descriptor_pb2.FieldOptions()
        o.CopyFrom(fl.options)
        behaviors = list(o.Extensions[field_behavior_pb2.field_behavior])
        o.ClearExtension(field_behavior_pb2.field_behavior)
        if o.HasField("packed"):
            opts.append(f"packed = {'true' if o.packed else 'false'}")
            o.ClearField("packed")
        if o.ByteSize():
            raise UnsupportedDescriptor(f"{self.f.name}: field options on {fl.name}: {o}")
        if behaviors:
            names = [field_behavior_pb2.FieldBehavior.Name(b) for b in behaviors]
            value = names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"
            opts.append(f"(google.api.field_behavior) = {value}")
        return opts

    # -- services -------------------------------------------------------------------------------
    def render_service(self, s: descriptor_pb2.ServiceDescriptorProto) -> None:
        if s.options.ByteSize():
            raise UnsupportedDescriptor(f"{self.f.name}: service options on {s.name}")
        self.emit(0, f"service {s.name} {{")
        for i, meth in enumerate(s.method):
            if i:
                self.emit(0)
            cs = "stream " if meth.client_streaming else ""
            ss = "stream " if meth.server_streaming else ""
            head = (
                f"rpc {meth.name}({cs}{self.type_ref(meth.input_type, self.f.package)}) "
                f"returns ({ss}{self.type_ref(meth.output_type, self.f.package)})"
            )
            body = self.method_options(meth)
            if not body:
                self.emit(1, head + ";")
                continue
            self.emit(1, head + " {")
            for line in body:
                self.emit(2, line)
            self.emit(1, "}")
        self.emit(0, "}")
        self.emit(0)

    def method_options(self, meth: descriptor_pb2.MethodDescriptorProto) -> list[str]:
        o = descriptor_pb2.MethodOptions()
        o.CopyFrom(meth.options)
        lines: list[str] = []
        if o.HasExtension(annotations_pb2.http):
            rule = o.Extensions[annotations_pb2.http]
            lines.append("option (google.api.http) = {")
            lines.extend("  " + ln for ln in http_rule_lines(rule))
            lines.append("};")
            o.ClearExtension(annotations_pb2.http)
        scope = decode_scope(o)
        unknown = [u.field_number for u in UnknownFieldSet(o)]
        if scope is not None:
            lines.append(f'option (kernel.options) = {{scope: "{scope}"}};')
            unknown.remove(SCOPE_EXTENSION)
        if unknown or o.ListFields():
            raise UnsupportedDescriptor(f"{self.f.name}: method options on {meth.name}")
        return lines


def http_rule_lines(rule: http_pb2.HttpRule) -> list[str]:
    """Text-format body of an HttpRule, in the field order protoc users conventionally write."""
    out: list[str] = []
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        out.append(f'custom: {{kind: "{rule.custom.kind}" path: "{rule.custom.path}"}}')
    elif pattern:
        out.append(f'{pattern}: "{getattr(rule, pattern)}"')
    if rule.selector:
        out.insert(0, f'selector: "{rule.selector}"')
    if rule.body:
        out.append(f'body: "{rule.body}"')
    if rule.response_body:
        out.append(f'response_body: "{rule.response_body}"')
    for extra in rule.additional_bindings:
        out.append("additional_bindings {")
        out.extend("  " + ln for ln in http_rule_lines(extra))
        out.append("}")
    return out


DEFAULT_HEADER = """\
{name}
Part of invora-python's reconstruction of the Invora API ({package}).
Rendered from the vendor's published descriptor image by codegen/render.py: names, numbers and types
are the vendor's; this text and the layout are ours. Do not edit by hand; run `make protos`."""


def render_file(
    f: descriptor_pb2.FileDescriptorProto, symbols: SymbolTable, header: str | None = None
) -> str:
    text = (header or DEFAULT_HEADER).format(name=f.name, package=f.package or "no package")
    return FileRenderer(f, symbols, text).render()


def load_set(path: pathlib.Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("descriptor_sets", nargs="+", type=pathlib.Path, help="FileDescriptorSet files")
    p.add_argument("--out", type=pathlib.Path, required=True, help="root directory for .proto files")
    p.add_argument("--only", action="append", default=[], help="render only files with this path prefix")
    args = p.parse_args(argv)
    files = [f for path in args.descriptor_sets for f in load_set(path).file]
    symbols = SymbolTable(files)
    count = 0
    for f in files:
        if f.name.startswith("google/") or (args.only and not any(f.name.startswith(o) for o in args.only)):
            continue
        target = args.out / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_file(f, symbols))
        count += 1
    print(f"rendered {count} files into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
