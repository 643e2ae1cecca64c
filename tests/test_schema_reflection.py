"""Knowing the server's schema: reflection pull, wire-fact check, the client guard and runtime RPCs.

Real servers on loopback ports: the sandbox (reflection v1 and v1alpha), and small gRPC servers built
here from a *modified* copy of the compiled-in descriptors — one field renumbered, one RPC added, or no
reflection at all. Those servers use grpcio-reflection's own servicer (v1alpha only), so the client's
fallback from v1 is exercised too, and they record every call so "raised before the request left" is
checked on the server's side.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from _tools import buf
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

import invora
from invora.cli import main as cli_main
from invora.schema import ReflectionUnavailable, RuntimeSchema, SchemaMismatch, compiled_set, pull
from invora.schema.compare import diff_services

SIMPLE = "invora.simple.invoices.v1.SimpleInvoiceService"
INVOICE = "invora.simple.invoices.v1.Invoice"
ROOT = Path(__file__).resolve().parents[1]
CHANGES = {
    "currency_code": "SAR",
    "buyer": {"name": "Najd Foods"},
    "lines": [{"description": "Consulting", "quantity": {"units": 3}, "unit_price": {"units": 250},
               "tax_rate": {"units": 15}}],
}  # fmt: skip


# -- a gRPC server built from a descriptor set -------------------------------------------------------------
class SchemaServer:
    """Serves every RPC of ``fds`` with ``respond(method, request) -> response dict`` and records calls."""

    def __init__(
        self,
        fds: descriptor_pb2.FileDescriptorSet,
        respond: Callable[[str, Any], dict[str, Any]] | None = None,
        *,
        reflection: bool = True,
        fail_first: int = 0,
    ) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            self.pool.Add(f)
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._respond = respond or (lambda _m, _r: {})
        self._fail_first = fail_first
        self._lock = threading.Lock()
        handlers = []
        names = []
        for f in fds.file:
            for s in f.service:
                full = f"{f.package}.{s.name}"
                names.append(full)
                methods = {m.name: self._handler(full, m) for m in s.method}
                handlers.append(grpc.method_handlers_generic_handler(full, methods))
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=handlers)
        if reflection:
            from grpc_reflection.v1alpha import reflection as refl

            refl.enable_server_reflection([*names, refl.SERVICE_NAME], self.server, pool=self.pool)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.target = f"127.0.0.1:{self.port}"

    def cls(self, name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(name))

    def _handler(self, service: str, m: descriptor_pb2.MethodDescriptorProto) -> Any:
        req_cls, resp_cls = self.cls(m.input_type[1:]), self.cls(m.output_type[1:])
        path = f"{service}/{m.name}"

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls.append(
                    (path, {k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
                )
                failing = self._fail_first > 0
                self._fail_first -= 1
            if failing:
                context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            return json_format.ParseDict(self._respond(path, request), resp_cls())

        return grpc.unary_unary_rpc_method_handler(unary, req_cls.FromString, resp_cls.SerializeToString)

    def stop(self) -> None:
        self.server.stop(None).wait()


def _simple_set() -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.CopyFrom(compiled_set([SIMPLE]))
    return fds


def _message(fds: descriptor_pb2.FileDescriptorSet, full: str) -> descriptor_pb2.DescriptorProto:
    package, _, name = full.rpartition(".")
    return next(m for f in fds.file if f.package == package for m in f.message_type if m.name == name)


def _renumbered() -> descriptor_pb2.FileDescriptorSet:
    """Our Simple schema with ``Invoice.currency_code`` moved from field 12 to field 77."""
    fds = _simple_set()
    field = next(f for f in _message(fds, INVOICE).field if f.name == "currency_code")
    assert field.number == 12
    field.number = 77
    return fds


def _with_archive() -> descriptor_pb2.FileDescriptorSet:
    """Our Simple schema plus two RPCs this SDK was not built with: a write (Archive) and a read."""
    fds = _simple_set()
    f = next(f for f in fds.file if any(s.name == "SimpleInvoiceService" for s in f.service))
    req = f.message_type.add(name="ArchiveRequest")
    req.field.add(name="key", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, json_name="key")
    req.field.add(
        name="reason", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, json_name="reason"
    )
    svc = next(s for s in f.service if s.name == "SimpleInvoiceService")
    svc.method.add(
        name="Archive", input_type=".invora.simple.invoices.v1.ArchiveRequest", output_type=f".{INVOICE}"
    )
    svc.method.add(
        name="GetArchived", input_type=".invora.simple.invoices.v1.ArchiveRequest", output_type=f".{INVOICE}"
    )
    return fds


@pytest.fixture
def server_factory() -> Iterator[Callable[..., SchemaServer]]:
    started: list[SchemaServer] = []

    def make(*args: Any, **kw: Any) -> SchemaServer:
        s = SchemaServer(*args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def _sandbox_client(sb: Any, **kw: Any) -> invora.Client:
    creds = invora.ClientCredentials(sb.client_id, sb.client_secret, sb.token_url)
    return invora.Client(sb.grpc_target, credentials=creds, org_id=sb.org_id, **kw)


def _cli_args(sb: Any) -> list[str]:
    return [
        "--target", sb.grpc_target, "--token-url", sb.token_url, "--client-id", sb.client_id,
        "--client-secret", sb.client_secret, "--org-id", sb.org_id,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_invora_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("INVORA_"):
            monkeypatch.delenv(key)


# -- the sandbox ------------------------------------------------------------------------------------------
def test_sandbox_schema_check_exits_0(invora_sandbox: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["schema", "check", *_cli_args(invora_sandbox)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "compared 48 services" in out and out.rstrip().endswith("compatible")


def test_sandbox_serves_reflection_v1_and_v1alpha(invora_sandbox: Any) -> None:
    from invora.schema.reflection import PATHS, _fetch

    with grpc.insecure_channel(invora_sandbox.grpc_target) as channel:
        for path in PATHS:
            fds = _fetch(channel, path, (), 30.0, [SIMPLE])
            assert any(s.name == "SimpleInvoiceService" for f in fds.file for s in f.service), path


def test_schema_pull_writes_a_set_a_third_party_can_call_with(
    invora_sandbox: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sandbox.binpb"
    assert cli_main(["schema", "pull", *_cli_args(invora_sandbox), "-o", str(out)]) == 0
    assert "services" in capsys.readouterr().err
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    # A fresh pool, plain protobuf: every file resolves from the set alone (imports first, none missing).
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    assert len([s for f in fds.file for s in f.service]) == 48
    # ... and drives a call with nothing from this SDK's generated code.
    svc = pool.FindServiceByName(SIMPLE)
    method = svc.methods_by_name["List"]
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    creds = invora.ClientCredentials(
        invora_sandbox.client_id, invora_sandbox.client_secret, invora_sandbox.token_url
    )
    md = (*creds.metadata(), ("x-target-org-id", invora_sandbox.org_id))
    with grpc.insecure_channel(invora_sandbox.grpc_target) as channel:
        call = channel.unary_unary(
            f"/{SIMPLE}/List",
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        response = call(req_cls(), metadata=md, timeout=10)
    assert response.DESCRIPTOR.full_name == "invora.simple.invoices.v1.ListResponse"


def test_buf_curl_uses_the_pulled_set(invora_sandbox: Any, tmp_path: Path) -> None:
    out = tmp_path / "sandbox.binpb"
    assert cli_main(["schema", "pull", *_cli_args(invora_sandbox), "-o", str(out)]) == 0
    creds = invora.ClientCredentials(
        invora_sandbox.client_id, invora_sandbox.client_secret, invora_sandbox.token_url
    )
    token = dict(creds.metadata())["authorization"]
    result = subprocess.run(
        [
            buf(), "curl", "--schema", str(out), "--protocol", "grpc", "--http2-prior-knowledge",
            "-H", f"authorization: {token}", "-H", f"x-target-org-id: {invora_sandbox.org_id}",
            "-d", "{}", f"http://{invora_sandbox.grpc_target}/{SIMPLE}/List",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)


def test_runtime_rules_match_the_compiled_catalog_for_every_rpc(invora_sandbox: Any) -> None:
    """The same rules at run time: reads, idempotency keys, pages, HTTP rules and scopes agree."""
    from invora import _catalog

    with _sandbox_client(invora_sandbox) as client:
        runtime = RuntimeSchema(pull(client))
    compared = 0
    for svc in _catalog.services():
        theirs = runtime.services[svc.full_name]
        assert theirs.accessor == svc.accessor
        for m in svc.methods.values():
            r = theirs.methods[m.name]
            for attr in ("attr", "input_type", "output_type", "client_streaming", "server_streaming", "http",
                         "scope", "read", "has_request_id", "idempotency_key", "page"):  # fmt: skip
                assert getattr(r, attr) == getattr(m, attr), (m.full_name, attr)
            compared += 1
    assert compared > 400


def test_runtime_list_paginates_like_a_compiled_one(invora_sandbox: Any) -> None:
    tenant = invora_sandbox.create_tenant("Runtime Pages Co")
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, invora_sandbox.token_url)
    with invora.Client(invora_sandbox.grpc_target, credentials=creds) as client:
        for n in range(3):
            client.simple.invoices.create(changes=dict(CHANGES, note=f"n{n}"))
        info = RuntimeSchema(pull(client, services=[SIMPLE])).method(f"{SIMPLE}/List")
        pager = client.invoke(info, {}, page_size=1)
        items = list(pager)
        compiled = next(iter(client.simple.invoices.list(page_size=1)))
    assert len(items) == 3
    assert items[0].DESCRIPTOR.full_name == "invora.simple.invoices.v1.InvoiceSummary"
    assert type(items[0]) is not type(compiled)  # a message class of the runtime pool


# -- a server whose schema differs in one field number -------------------------------------------------------
def test_check_names_the_service_message_and_field(
    server_factory: Callable[..., SchemaServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_factory(_renumbered())
    code = cli_main(["schema", "check", "--target", server.target, "--service", SIMPLE])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"{SIMPLE}: 1 difference" in out
    assert f"{INVOICE}.field[currency_code].number: expected 12 got 77" in out
    assert "INCOMPATIBLE" in out

    assert cli_main(["schema", "check", "--target", server.target, "--output", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["compatible"] is False
    assert report["differences"] == {SIMPLE: [f"{INVOICE}.field[currency_code].number: expected 12 got 77"]}
    assert "invora.documents.v2.DocumentsService" in report["only_in_sdk"]  # listed, not a failure
    assert server.calls == []


def test_check_against_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "renumbered.binpb"
    image.write_bytes(_renumbered().SerializeToString())
    assert cli_main(["schema", "check", "--image", str(image)]) == 1
    assert "expected 12 got 77" in capsys.readouterr().out
    good = tmp_path / "ours.binpb"
    good.write_bytes(_simple_set().SerializeToString())
    assert cli_main(["schema", "check", "--image", str(good)]) == 0
    assert cli_main(["schema", "check", "--image", str(tmp_path / "missing.binpb")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_strict_raises_before_the_request_leaves(server_factory: Callable[..., SchemaServer]) -> None:
    server = server_factory(_renumbered())
    with invora.Client(server.target, schema_check="strict") as client:
        with pytest.raises(SchemaMismatch) as caught:
            client.simple.invoices.get(key="k1")
        assert caught.value.service == SIMPLE
        assert "currency_code" in str(caught.value) and caught.value.request_not_sent
        with pytest.raises(SchemaMismatch):  # every later call too, still without a request
            list(client.invoke(f"{SIMPLE}/List", {}))  # a pager: the first page is fetched here
        with pytest.raises(SchemaMismatch):
            client.raw(f"{SIMPLE}/Get", {"key": "k1"})
    assert server.calls == []


async def test_strict_async_raises_before_the_request_leaves(
    server_factory: Callable[..., SchemaServer],
) -> None:
    server = server_factory(_renumbered())
    async with invora.AsyncClient(server.target, schema_check="strict") as client:
        with pytest.raises(SchemaMismatch):
            await client.simple.invoices.get(key="k1")
    assert server.calls == []


def test_warn_logs_exactly_once_per_channel(
    server_factory: Callable[..., SchemaServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(_renumbered())
    caplog.set_level(logging.WARNING, logger="invora")
    with invora.Client(server.target, schema_check="warn") as client:
        for _ in range(3):
            client.simple.invoices.get(key="k1")
        client.simple.invoices.freeze(key="k1")
        client.with_org("org-2").simple.invoices.get(key="k1")  # a view shares the channel: no new check
    warnings = [r for r in caplog.records if r.name == "invora" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert SIMPLE in warnings[0].getMessage() and "currency_code" in warnings[0].getMessage()
    assert len(server.calls) == 5  # the calls went through


def test_off_and_matching_servers_are_silent(
    server_factory: Callable[..., SchemaServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="invora")
    renumbered = server_factory(_renumbered())
    with invora.Client(renumbered.target) as client:  # default: off
        client.simple.invoices.get(key="k1")
    matching = server_factory(_simple_set())
    with invora.Client(matching.target, schema_check="strict") as client:
        client.simple.invoices.get(key="k1")
    assert [r for r in caplog.records if r.name == "invora" and r.levelno >= logging.DEBUG] == []
    assert len(renumbered.calls) == 1 and len(matching.calls) == 1


def test_bad_schema_check_value_is_a_configuration_error() -> None:
    with pytest.raises(invora.ConfigurationError, match="schema_check must be one of off, warn, strict"):
        invora.Client("127.0.0.1:1", schema_check="loud")


def test_reflection_needs_the_grpc_transport(server_factory: Callable[..., SchemaServer]) -> None:
    server = server_factory(_with_archive(), _archive)
    with invora.Client(f"http://{server.target}", transport="rest") as client:
        with pytest.raises(invora.ConfigurationError, match="reflection is a gRPC service"):
            pull(client)
        with pytest.raises(LookupError, match="over REST, pass Client"):
            client.invoke(f"{SIMPLE}/Archive", {"key": "k1"})
    assert server.calls == []


# -- a server without reflection ------------------------------------------------------------------------------
def test_pull_without_reflection_is_a_clear_error(
    server_factory: Callable[..., SchemaServer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = server_factory(_simple_set(), reflection=False)
    code = cli_main(["schema", "pull", "--target", server.target, "-o", str(tmp_path / "x.binpb")])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not offer gRPC server reflection" in err and "Traceback" not in err
    assert not (tmp_path / "x.binpb").exists()
    assert cli_main(["schema", "check", "--target", server.target]) == 1
    with invora.Client(server.target) as client, pytest.raises(ReflectionUnavailable):
        pull(client)


def test_guard_without_reflection_notes_it_once_at_debug(
    server_factory: Callable[..., SchemaServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(_simple_set(), reflection=False)
    caplog.set_level(logging.DEBUG, logger="invora")
    with invora.Client(server.target, schema_check="strict") as client:
        client.simple.invoices.get(key="k1")
        client.simple.invoices.get(key="k2")
    notes = [r for r in caplog.records if r.name == "invora" and "no server reflection" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.DEBUG
    assert len(server.calls) == 2


# -- RPCs the SDK was not built with --------------------------------------------------------------------------
def _archive(path: str, request: Any) -> dict[str, Any]:
    return {"key": request.key, "note": f"{path.rsplit('/', 1)[1]}: {request.reason}"}


def test_invoke_an_rpc_missing_from_the_catalog_through_reflection(
    server_factory: Callable[..., SchemaServer],
) -> None:
    server = server_factory(_with_archive(), _archive)
    with invora.Client(server.target, credentials="tok-123", org_id="org-7") as client:
        response = client.invoke(f"{SIMPLE}/Archive", {"key": "k9", "reason": "closed"})
        again = client.invoke(f"/{SIMPLE}/Archive", {"key": "k10"})
    assert response.DESCRIPTOR.full_name == INVOICE
    assert json_format.MessageToDict(response) == {"key": "k9", "note": "Archive: closed"}
    assert again.key == "k10"
    path, md = server.calls[0]
    assert path == f"{SIMPLE}/Archive"
    assert md["authorization"] == "Bearer tok-123" and md["x-target-org-id"] == "org-7"
    assert len(server.calls) == 2  # one pull for the service, not one per call


def test_invoke_with_a_given_schema_and_no_reflection(
    server_factory: Callable[..., SchemaServer], tmp_path: Path
) -> None:
    server = server_factory(_with_archive(), _archive, reflection=False)
    path = tmp_path / "archive.binpb"
    path.write_bytes(_with_archive().SerializeToString())
    for schema in (path, str(path), _with_archive()):
        with invora.Client(server.target, schema=schema) as client:
            assert client.invoke(f"{SIMPLE}/Archive", {"key": "k1"}).key == "k1"
    with invora.Client(server.target) as client, pytest.raises(LookupError, match="offers no reflection"):
        client.invoke(f"{SIMPLE}/Archive", {"key": "k1"})
    with pytest.raises(invora.ConfigurationError, match="not a FileDescriptorSet"):
        invora.Client(server.target, schema=b"\xff\xff not a set")


def test_runtime_rpcs_retry_only_reads(server_factory: Callable[..., SchemaServer]) -> None:
    fast = invora.Retry(initial=0.01, maximum=0.02)
    write = server_factory(_with_archive(), _archive, fail_first=1)
    with (
        invora.Client(write.target, retry=fast, schema=_with_archive()) as client,
        pytest.raises(invora.errors.Unavailable),
    ):
        client.invoke(f"{SIMPLE}/Archive", {"key": "k1"})
    assert len(write.calls) == 1  # a write is not repeated
    read = server_factory(_with_archive(), _archive, fail_first=1)
    with invora.Client(read.target, retry=fast, schema=_with_archive()) as client:
        assert client.invoke(f"{SIMPLE}/GetArchived", {"key": "k1"}).key == "k1"
    assert len(read.calls) == 2  # a read is


def test_invora_call_an_rpc_missing_from_the_catalog(
    server_factory: Callable[..., SchemaServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_factory(_with_archive(), _archive)
    args = ["call", f"{SIMPLE}/Archive", "--target", server.target, "--data", '{"key": "k5", "reason": "x"}']
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"key": "k5", "note": "Archive: x"}
    offline = server_factory(_with_archive(), _archive, reflection=False)
    image = tmp_path / "a.binpb"
    image.write_bytes(_with_archive().SerializeToString())
    args = ["call", f"{SIMPLE}/Archive", "--target", offline.target, "--data", '{"key": "k6"}']
    assert cli_main([*args, "--schema", str(image)]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == "k6"
    assert cli_main(args) == 2
    assert "offers no reflection" in capsys.readouterr().err
    missing = ["call", "invora.nope.v1.NopeService/Get", "--target", server.target, "--data", "{}"]
    code = cli_main(missing)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "unknown method 'invora.nope.v1.NopeService/Get'" in err and "does not serve" in err


def test_adopt_records_the_build(tmp_path: Path) -> None:
    import generate

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "images.json").write_text(
        json.dumps({"base": "invora.binpb", "build": "1.3", "overlays": []})
    )
    image = tmp_path / "newer.binpb"
    image.write_bytes(compiled_set(["invora.billing.plans.v2.PlansService"]).SerializeToString())
    name = generate.adopt(image, ["invora/billing/"], upstream, build="1.4")
    manifest = json.loads((upstream / "images.json").read_text())
    assert manifest["overlays"] == [{"image": name, "replace": ["invora/billing/"], "build": "1.4"}]


# -- the comparator ------------------------------------------------------------------------------------------
def test_diff_services_reports_each_kind_of_difference() -> None:
    ours = _simple_set()
    theirs = _simple_set()
    f = next(f for f in theirs.file if any(s.name == "SimpleInvoiceService" for s in f.service))
    svc = next(s for s in f.service if s.name == "SimpleInvoiceService")
    svc.method[0].server_streaming = True
    svc.method[1].options.Clear()
    invoice = _message(theirs, INVOICE)
    next(
        fl for fl in invoice.field if fl.name == "note"
    ).type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    invoice.field.add(name="added", number=99, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    other = theirs.file.add(name="extra.proto", package="extra")
    other.service.add(name="ExtraService")
    report = diff_services(ours, theirs)
    lines = report.differences[SIMPLE]
    text = "\n".join(lines)
    assert f"service {SIMPLE}.method[{svc.method[0].name}].server_streaming: expected False got True" in text
    assert f"method[{svc.method[1].name}].options" in text
    assert f"{INVOICE}.field[note].type: expected 9 got 12" in text
    assert f"{INVOICE}.field[added]: unexpected" in text
    assert report.only_theirs == ["extra.ExtraService"] and not report.compatible
    assert diff_services(ours, _simple_set()).compatible


# -- provenance ---------------------------------------------------------------------------------------------
def test_catalog_records_provenance_per_file_and_service() -> None:
    from invora import _catalog
    from invora._proto.catalog import FILES

    reconstructed = sorted(f for f, p in FILES.items() if p == "reconstructed")
    assert reconstructed == [
        "invora/simple/credit_notes/v1/service.proto",
        "invora/simple/debit_notes/v1/service.proto",
        "invora/simple/invoices/v1/service.proto",
        "oasis/names/specification/ubl/schema/xsd/commonaggregatecomponents_2/models.proto",
    ]
    assert FILES["invora/regulations/zatca/v1/models.proto"] == "1.0.0"
    assert {p for f, p in FILES.items() if f not in reconstructed and "zatca/v1/models" not in f} == {"1.3"}
    assert _catalog.service("simple.invoices").reconstructed == ("invora/simple/invoices/v1/service.proto",)
    docs = _catalog.service("documents")
    assert docs.provenance == "1.3" and docs.reconstructed == (reconstructed[-1],)
    assert _catalog.service("billing.plans").reconstructed == ()
    assert _catalog.service("regulations.zatca").depends == {
        "1.0.0": ("invora/regulations/zatca/v1/models.proto",)
    }


def test_describe_shows_provenance(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["describe", "documents"]) == 0
    out = capsys.readouterr().out
    assert "wire facts: vendor build 1.3 + reconstructed types" in out
    assert cli_main(["describe", "invora.simple.invoices.v1.Invoice"]) == 0
    assert "wire facts: reconstructed" in capsys.readouterr().out
    assert (
        cli_main(["describe", "--output", "json", "invora.regulations.zatca.v1.ZatcaRegulationService"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["depends"] == {
        "1.0.0": ["invora/regulations/zatca/v1/models.proto"]
    }


def test_provenance_of_overlays_and_older_files() -> None:
    import provenance

    manifest = {
        "build": "1.3",
        "file_builds": {"a/old.proto": "1.0.0"},
        "overlays": [
            {"image": "overlay-b.binpb", "replace": ["b/"], "build": "1.4"},
            {"image": "o.binpb", "replace": ["c/"]},
        ],
    }
    files = provenance.file_provenance(
        manifest,
        [
            "a/old.proto",
            "a/new.proto",
            "b/x.proto",
            "c/y.proto",
            "invora/simple/z.proto",
            "google/protobuf/any.proto",
        ],
    )
    assert files == {
        "a/new.proto": "1.3",
        "a/old.proto": "1.0.0",
        "b/x.proto": "1.4",
        "c/y.proto": "o.binpb",
        "invora/simple/z.proto": "reconstructed",
    }
