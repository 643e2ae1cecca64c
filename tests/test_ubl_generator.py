"""The UBL generator follows the published mapping exactly, so the one file it reconstructs is trustworthy.

The vendor's image lacks CommonAggregateComponents; codegen/ubl.py builds it from the OASIS XSDs.  Its rules
are proven here by regenerating every published UBL file that has an XSD (93 documents + the basic
components) and comparing descriptors field by field, then by resolving the whole image against the
reconstructed file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
from google.type import date_pb2, timeofday_pb2

import render
import ubl

ROOT = Path(__file__).resolve().parents[1]
XSD_ROOT = ROOT / "codegen" / "upstream" / "ubl-xsd" / "2.4"
CAC_XSD = "common/UBL-CommonAggregateComponents-2.4.xsd"
CAC_PACKAGE = "oasis.names.specification.ubl.schema.xsd.commonaggregatecomponents_2"


@pytest.fixture(scope="module")
def upstream() -> descriptor_pb2.FileDescriptorSet:
    return render.load_set(ROOT / "codegen" / "upstream" / "invora.binpb")


@pytest.fixture(scope="module")
def cac(upstream: descriptor_pb2.FileDescriptorSet) -> descriptor_pb2.FileDescriptorProto:
    return ubl.build_file(XSD_ROOT, CAC_XSD, upstream)


def _published_inputs() -> list[str]:
    docs = sorted(p.relative_to(XSD_ROOT).as_posix() for p in (XSD_ROOT / "maindoc").glob("*.xsd"))
    return [*docs, "common/UBL-CommonBasicComponents-2.4.xsd"]


def test_inputs_cover_every_document_type() -> None:
    assert len(_published_inputs()) == 93 + 1


@pytest.mark.parametrize("xsd", _published_inputs())
def test_regenerates_published_file_exactly(upstream: descriptor_pb2.FileDescriptorSet, xsd: str) -> None:
    built = ubl.build_file(XSD_ROOT, xsd, upstream)
    published = {f.name: f for f in upstream.file}
    assert built.name in published, f"{xsd} maps to {built.name}, which the image does not carry"
    expected = published[built.name]
    # Field-level comparison first: a failure names the first message that differs.
    assert [m.name for m in built.message_type] == [m.name for m in expected.message_type]
    for got, want in zip(built.message_type, expected.message_type, strict=False):
        assert got == want, f"{built.name}: message {want.name} differs"
    assert built == expected


def test_naming_rules() -> None:
    assert ubl.snake("UBLVersionID") == "ubl_version_id"
    assert ubl.snake("UUID") == "uuid"
    assert ubl.message_name("UBLVersionIDType") == "UblVersionIdType"
    assert ubl.json_name("ubl_version_id") == "ublVersionId"
    assert ubl.package_of(
        "urn:oasis:names:specification:ubl:schema:xsd:SelfBilledInvoice-2", library=False
    ) == ("oasis.names.specification.ubl.schema.xsd.self_billed_invoice_2")


def test_aggregate_file_shape(cac: descriptor_pb2.FileDescriptorProto) -> None:
    assert cac.name == "oasis/names/specification/ubl/schema/xsd/commonaggregatecomponents_2/models.proto"
    assert cac.package == CAC_PACKAGE
    assert list(cac.dependency) == [
        "oasis/names/specification/ubl/schema/xsd/commonbasiccomponents_2/models.proto",
        "oasis/names/specification/ubl/schema/xsd/commonextensioncomponents_2/models.proto",
    ]
    party = next(m for m in cac.message_type if m.name == "PartyType")
    first = party.field[0]
    assert (first.name, first.number, first.label) == ("ubl_extensions", 1, first.LABEL_REPEATED)
    assert first.type_name.endswith("commonextensioncomponents_2.UblExtensionType")
    assert [f.number for f in party.field] == list(range(1, len(party.field) + 1))

    # The _property rule fires exactly once in the aggregate library; names that merely end in "property"
    # (meter_property from MeterProperty) come from their elements and keep their own type.
    def renamed_by_rule(m: descriptor_pb2.DescriptorProto, f: descriptor_pb2.FieldDescriptorProto) -> bool:
        if not f.name.endswith("_property"):
            return False
        element = "".join(p.capitalize() for p in f.name.removesuffix("_property").split("_"))
        return f.type_name.rsplit(".", 1)[1] == ubl.message_name(element + "Type") and m.name in (
            element,
            element + "Type",
        )

    renamed = [(m.name, f.name) for m in cac.message_type for f in m.field if renamed_by_rule(m, f)]
    assert renamed == [("DutyType", "duty_property")]
    certificate = next(m for m in cac.message_type if m.name == "CertificateType")
    assert "certificate_type" in [f.name for f in certificate.field]


def test_reconstructed_file_satisfies_every_reference(
    upstream: descriptor_pb2.FileDescriptorSet, cac: descriptor_pb2.FileDescriptorProto
) -> None:
    """Every type the published files expect from the aggregate library exists, and the whole image
    (with well-known dependencies) builds into one pool."""
    defined = {m.name for m in cac.message_type}
    wanted: set[str] = set()

    def walk(msg: descriptor_pb2.DescriptorProto) -> None:
        for f in msg.field:
            if f.type_name.startswith(f".{CAC_PACKAGE}."):
                wanted.add(f.type_name.rsplit(".", 1)[1])
        for nested in msg.nested_type:
            walk(nested)

    for f in upstream.file:
        for m in f.message_type:
            walk(m)
    assert wanted and wanted <= defined, sorted(wanted - defined)

    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, date_pb2, timeofday_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    by_name = {f.name: f for f in upstream.file}
    assert cac.name not in by_name
    by_name[cac.name] = cac
    done = {"google/protobuf/timestamp.proto", "google/type/date.proto", "google/type/timeofday.proto"}

    def add(name: str) -> None:  # dependency order
        if name not in done:
            for dep in by_name[name].dependency:
                add(dep)
            pool.Add(by_name[name])
            done.add(name)

    for name in sorted(n for n in by_name if n.startswith("oasis/")):
        add(name)
    invoice = pool.FindMessageTypeByName("oasis.names.specification.ubl.schema.xsd.invoice_2.InvoiceType")
    line = invoice.fields_by_name["invoice_line"].message_type
    assert line.full_name == f"{CAC_PACKAGE}.InvoiceLineType"
    assert line.fields_by_name["item"].message_type.name == "ItemType"


def test_generate_uses_this_builder() -> None:
    """protos/ carries exactly what the builder produces (make generate is the only writer)."""
    path = (
        ROOT / "protos" / "oasis/names/specification/ubl/schema/xsd/commonaggregatecomponents_2/models.proto"
    )
    body = path.read_text()
    assert "message DutyType" in body and "duty_property = 3;" in body
