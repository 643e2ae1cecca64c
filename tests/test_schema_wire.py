"""protos/ must compile to exactly the vendor's published schema (wire compatibility)."""

from __future__ import annotations

import pathlib

import pytest
from google.protobuf import descriptor_pb2

import generate
import render
import wirecheck

ROOT = pathlib.Path(__file__).resolve().parents[1]

UPSTREAM = ROOT / "codegen" / "upstream" / "invora.binpb"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path_factory.mktemp("wire") / "protos.binpb"
    return generate.compile_descriptor_set(ROOT / "protos", out)


@pytest.fixture(scope="module")
def upstream() -> descriptor_pb2.FileDescriptorSet:
    return render.load_set(UPSTREAM)


def test_every_published_file_is_wire_identical(upstream, compiled) -> None:
    assert len(upstream.file) == 178
    problems = wirecheck.diff_sets(upstream, compiled)
    assert problems == [], "\n".join(problems[:200])


def test_published_counts_hold(compiled) -> None:
    services = [s for f in compiled.file if f.name.startswith("invora/") for s in f.service]
    simple = [s for s in services if s.name.startswith("Simple")]
    assert len(services) == 45 + 3 and len(simple) == 3
    assert sum(len(s.method) for s in services) == 390 + 18


def test_wirecheck_reports_each_kind_of_difference(upstream) -> None:
    """The checker itself must fail on real differences, or a green run means nothing."""
    changed = descriptor_pb2.FileDescriptorSet()
    changed.CopyFrom(upstream)
    by_name = {f.name: f for f in changed.file}
    query = by_name["kernel/query.proto"]
    pagination = next(m for m in query.message_type if m.name == "PaginationInfo")
    pagination.field[0].number = 9
    svc = by_name["invora/documents/v2/service.proto"].service[0]
    svc.method[0].server_streaming = True
    svc.method[1].options.Clear()
    del changed.file[-1]
    problems = wirecheck.diff_sets(upstream, changed)
    text = "\n".join(problems)
    assert "kernel/query.proto.message_type[PaginationInfo].field[limit].number: expected 1 got 9" in text
    assert f"method[{svc.method[0].name}].server_streaming" in text
    assert f"method[{svc.method[1].name}].options" in text
    assert f"{upstream.file[-1].name}: not produced by protos/" in text


def test_rendered_text_carries_our_comments_and_options() -> None:
    text = (ROOT / "protos" / "invora" / "documents" / "v2" / "service.proto").read_text()
    assert text.startswith("// invora/documents/v2/service.proto\n// Part of invora-python")
    assert 'option (kernel.options) = {scope: "Invora.Documents.v2.Modify.Create"};' in text
    assert 'post: "/api/v2/documents/list"' in text


def test_shortest_type_names_respect_protoc_scoping() -> None:
    f = descriptor_pb2.FileDescriptorProto(name="a/b.proto", package="a.b", syntax="proto3")
    outer = f.message_type.add(name="Outer")
    outer.nested_type.add(name="Bar")
    f.message_type.add(name="Bar")
    symbols = render.SymbolTable([f])
    # From inside Outer, plain "Bar" means Outer.Bar, so the top-level Bar needs qualification.
    assert symbols.shortest(".a.b.Bar", "a.b.Outer") == "b.Bar"
    assert symbols.shortest(".a.b.Outer.Bar", "a.b.Outer") == "Bar"
    assert symbols.shortest(".a.b.Bar", "a.b") == "Bar"


def test_field_behavior_and_http_bindings_render() -> None:
    """Features the 2026-05 image does not use but newer builds do (billing-next has OUTPUT_ONLY)."""
    from google.api import annotations_pb2, field_behavior_pb2

    f = descriptor_pb2.FileDescriptorProto(name="x/y.proto", package="x", syntax="proto3")
    f.dependency.extend(["google/api/annotations.proto", "google/api/field_behavior.proto"])
    m = f.message_type.add(name="M")
    fl = m.field.add(
        name="id",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="id",
    )
    fl.options.Extensions[field_behavior_pb2.field_behavior].append(field_behavior_pb2.OUTPUT_ONLY)
    s = f.service.add(name="S")
    meth = s.method.add(name="Get", input_type=".x.M", output_type=".x.M")
    rule = meth.options.Extensions[annotations_pb2.http]
    rule.get = "/v1/{id}"
    rule.additional_bindings.add(post="/v1/{id}:get", body="*")
    text = render.render_file(f, render.SymbolTable([f]))
    assert "string id = 1 [(google.api.field_behavior) = OUTPUT_ONLY];" in text
    assert 'additional_bindings {\n        post: "/v1/{id}:get"\n        body: "*"\n      }' in text


def test_protos_tree_matches_the_schema_paths() -> None:
    names = {p.relative_to(ROOT / "protos").as_posix() for p in (ROOT / "protos").rglob("*.proto")}
    upstream_names = {f.name for f in render.load_set(UPSTREAM).file}
    assert upstream_names <= names
    assert generate.CAC_FILE in names
    extra = names - upstream_names - {generate.CAC_FILE}
    assert extra == {
        f"invora/simple/{k}/v1/service.proto" for k in ("invoices", "credit_notes", "debit_notes")
    }
