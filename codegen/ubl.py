"""Build UBL proto file descriptors from the OASIS UBL XSDs.

The vendor's image carries every UBL file but one (CommonAggregateComponents).  This module reproduces the
mapping the published files follow, so the missing file can be generated with the same shapes:

* one package per schema namespace, file ``<package as path>/models.proto``;
* one message ``<Name>Type`` per complex type (names normalised: ``UBLVersionIDType`` -> ``UblVersionIdType``);
* aggregate types: fields 1..n in XSD sequence order, snake_case element names, ``repeated`` when
  ``maxOccurs="unbounded"``, typed by the referenced element's type;
* ``ext:UBLExtensions`` is a repeated ``UblExtensionType`` (the container type is flattened);
* a field would repeat its message's name gets the suffix ``_property``: in every schema when the element's
  name + "Type" is the message's name (``DutyType.duty_property``, the only case in the aggregate
  library), and in document schemas also when the element's name is the message's name
  (``ManifestType.manifest_type_property``). The published files and the vendor's account of the missing
  one show no suffix for the second form inside the library (``CertificateType.certificate_type``), so
  it is not applied there;
* basic components (``simpleContent`` extensions of unqualified data types) copy the data type's message.

``tests/test_ubl_generator.py`` proves the rules by regenerating published files and comparing descriptors.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2

XSD = "{http://www.w3.org/2001/XMLSchema}"
EXT_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"

_F = descriptor_pb2.FieldDescriptorProto


def snake(name: str) -> str:
    """``UBLVersionID`` -> ``ubl_version_id``; ``UUID`` -> ``uuid``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def message_name(type_name: str) -> str:
    """XSD complex type name -> proto message name (``IDType`` -> ``IdType``)."""
    base = type_name[: -len("Type")] if type_name.endswith("Type") else type_name
    return "".join(part.capitalize() for part in snake(base).split("_")) + "Type"


def json_name(name: str) -> str:
    """protoc's default json_name: drop underscores, capitalise the letter after each."""
    out, upper = [], False
    for ch in name:
        if ch == "_":
            upper = True
        else:
            out.append(ch.upper() if upper else ch)
            upper = False
    return "".join(out)


def package_of(namespace: str, library: bool) -> str:
    """Schema namespace -> proto package.

    Shared libraries (the schemas under ``common/``) keep one-word lowercase names
    (``commonbasiccomponents_2``); document schemas are snake_cased (``self_billed_invoice_2``).
    """
    parts = namespace.removeprefix("urn:").split(":")
    name, _, version = parts[-1].rpartition("-")
    last = name.lower() if library else snake(name)
    return ".".join([*parts[:-1], f"{last}_{version}"]).lower()


def file_of(package: str) -> str:
    return package.replace(".", "/") + "/models.proto"


@dataclass
class Schema:
    path: Path
    namespace: str
    prefixes: dict[str, str]
    root: ET.Element
    imports: dict[str, Path] = field(default_factory=dict)

    @property
    def library(self) -> bool:
        """Shared component libraries live under ``common/``; document schemas under ``maindoc/``."""
        return self.path.parent.name == "common"

    @property
    def package(self) -> str:
        return package_of(self.namespace, library=self.library)

    def resolve(self, qname: str) -> tuple[str, str]:
        prefix, _, local = qname.rpartition(":")
        return self.prefixes[prefix], local


class Loader:
    """Parses XSDs on demand, keyed by namespace, following ``xsd:import`` locations."""

    def __init__(self) -> None:
        self.by_ns: dict[str, Schema] = {}

    def load(self, path: Path) -> Schema:
        prefixes: dict[str, str] = {}
        for _event, (prefix, uri) in ET.iterparse(path, events=["start-ns"]):  # type: ignore[misc]
            prefixes.setdefault(prefix, uri)
        root = ET.parse(path).getroot()
        schema = Schema(path, root.get("targetNamespace", ""), prefixes, root)
        for imp in root.iter(XSD + "import"):
            loc = imp.get("schemaLocation")
            if loc:
                schema.imports[imp.get("namespace", "")] = (path.parent / loc).resolve()
        self.by_ns.setdefault(schema.namespace, schema)
        return schema

    def schema(self, namespace: str, via: Schema) -> Schema:
        if namespace not in self.by_ns:
            self.load(via.imports[namespace])
        return self.by_ns[namespace]


def _element_type(loader: Loader, schema: Schema, ref: str) -> tuple[str, str]:
    """``cbc:ID`` -> (package, message) of the element's declared type."""
    ns, local = schema.resolve(ref)
    target = schema if ns == schema.namespace else loader.schema(ns, schema)
    for el in target.root.findall(XSD + "element"):
        if el.get("name") == local:
            type_ns, type_local = target.resolve(el.get("type", ""))
            type_schema = target if type_ns == target.namespace else loader.schema(type_ns, target)
            return type_schema.package, message_name(type_local)
    raise KeyError(f"{ref}: no element declaration in {target.path.name}")


def _aggregate(loader: Loader, schema: Schema, ctype: ET.Element) -> descriptor_pb2.DescriptorProto:
    msg = descriptor_pb2.DescriptorProto(name=message_name(ctype.get("name", "")))
    seq = ctype.find(XSD + "sequence")
    elements = [] if seq is None else seq.findall(XSD + "element")
    for number, el in enumerate(elements, start=1):
        ref = el.get("ref", "")
        ns, local = schema.resolve(ref)
        name = snake(local)
        if ns == EXT_NS and local == "UBLExtensions":
            package, type_name, repeated = loader.schema(ns, schema).package, "UblExtensionType", True
        else:
            package, type_name = _element_type(loader, schema, ref)
            repeated = el.get("maxOccurs") == "unbounded"
        if msg.name == message_name(local + "Type") or (
            not schema.library and msg.name == message_name(local)
        ):
            name += "_property"
        msg.field.add(
            name=name,
            number=number,
            label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            type=_F.TYPE_MESSAGE,
            type_name=f".{package}.{type_name}",
            json_name=json_name(name),
        )
    return msg


def _basic(
    loader: Loader, schema: Schema, ctype: ET.Element, published: dict[str, descriptor_pb2.DescriptorProto]
) -> descriptor_pb2.DescriptorProto:
    """A basic component copies the published message of the data type it derives from.

    Qualified data types are followed down to their unqualified base, which the image publishes.
    """
    derivation = ctype.find(f"{XSD}simpleContent/*")
    if derivation is None:
        raise ValueError(f"{ctype.get('name')}: expected simpleContent")
    base_ns, base_local = schema.resolve(derivation.get("base", ""))
    base_schema = loader.schema(base_ns, schema)
    key = f"{base_schema.package}.{message_name(base_local)}"
    if key in published:
        msg = descriptor_pb2.DescriptorProto()
        msg.CopyFrom(published[key])
    else:
        base_type = next(
            (c for c in base_schema.root.findall(XSD + "complexType") if c.get("name") == base_local), None
        )
        if base_type is None:
            raise KeyError(f"{ctype.get('name')}: base {base_local} is neither published nor defined")
        msg = _basic(loader, base_schema, base_type, published)
    msg.name = message_name(ctype.get("name", ""))
    return msg


def _file_outside_image(full_name: str) -> str:
    """Where a type the image does not define lives: Google's well-known files are one message per file
    (``google.type.TimeOfDay`` -> ``google/type/timeofday.proto``); UBL packages use ``models.proto``
    (this covers the aggregate components themselves, which the image lacks)."""
    package, _, name = full_name.rpartition(".")
    if package.startswith("google."):
        return f"{package.replace('.', '/')}/{name.lower()}.proto"
    return file_of(package)


def build_file(
    xsd_root: Path, xsd_file: str, upstream: descriptor_pb2.FileDescriptorSet
) -> descriptor_pb2.FileDescriptorProto:
    """Build the proto file for one UBL schema (aggregate, basic-component or document schema).

    ``upstream`` supplies the published data-type messages that basic components copy and the file
    names of dependencies.
    """
    loader = Loader()
    schema = loader.load(Path(xsd_root) / xsd_file)
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    file_of_message: dict[str, str] = {}
    for f in upstream.file:
        for m in f.message_type:
            messages[f"{f.package}.{m.name}"] = m
            file_of_message[f"{f.package}.{m.name}"] = f.name

    fd = descriptor_pb2.FileDescriptorProto(
        name=file_of(schema.package), package=schema.package, syntax="proto3"
    )
    deps: set[str] = set()
    for ctype in schema.root.findall(XSD + "complexType"):
        if ctype.find(XSD + "simpleContent") is not None:
            msg = _basic(loader, schema, ctype, messages)
        else:
            msg = _aggregate(loader, schema, ctype)
        fd.message_type.append(msg)
        for f in msg.field:
            if f.type_name:
                pkg = f.type_name[1:].rpartition(".")[0]
                if pkg != schema.package:
                    deps.add(file_of_message.get(f.type_name[1:]) or _file_outside_image(f.type_name[1:]))
    fd.dependency.extend(sorted(deps))
    return fd
