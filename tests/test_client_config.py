"""Configuration and input validation: everything here fails before any network traffic."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

import invora
from invora._target import is_loopback, parse_target

# A port nothing listens on: a test that reached the network would see UNAVAILABLE, not the error asserted.
DEAD = "127.0.0.1:1"


@pytest.mark.parametrize(
    ("target", "address", "secure"),
    [
        ("gateway.invora.app:443", "gateway.invora.app:443", True),
        ("https://stg-gateway.invora.app", "stg-gateway.invora.app:443", True),
        ("https://stg-gateway.invora.app/", "stg-gateway.invora.app:443", True),
        ("https://example.com:8443", "example.com:8443", True),
        ("http://127.0.0.1:50051", "127.0.0.1:50051", False),
        ("127.0.0.1:50051", "127.0.0.1:50051", False),
        ("localhost:50051", "localhost:50051", False),
        ("[::1]:50051", "[::1]:50051", False),
        ("10.0.0.5:443", "10.0.0.5:443", True),
    ],
)
def test_targets_are_normalised(target: str, address: str, secure: bool) -> None:
    client = invora.Client(target)
    assert client.target == address
    assert client._settings.config.secure is secure


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("gateway.invora.app", "has no port"),
        ("ftp://gateway.invora.app", "unsupported scheme"),
        ("grpc://gateway.invora.app:443", "unsupported scheme"),
        ("https://gateway.invora.app/api/v1", "has a path"),
        ("https://user:pw@gateway.invora.app", "credentials"),
        ("gateway.invora.app:99999", "invalid port"),
        ("gateway.invora.app:http", "invalid port"),
        ("bad host:443", "invalid host"),
        ("[::1:443", "invalid IPv6"),
        ("", "non-empty"),
        ("   ", "non-empty"),
    ],
)
def test_bad_targets_are_rejected_clearly(target: str, message: str) -> None:
    with pytest.raises(invora.ConfigurationError, match=message) as info:
        invora.Client(target)
    assert str(info.value).startswith(("invalid", "unsupported", "target", "https", "target must"))
    assert "port" in str(info.value) or message == "non-empty"


def test_environments() -> None:
    assert invora.Client(environment="staging").target == "stg-gateway.invora.app:443"
    assert invora.Client().target == "gateway.invora.app:443"
    with pytest.raises(invora.ConfigurationError, match="unknown environment"):
        invora.Client(environment="dev")
    with pytest.raises(invora.ConfigurationError, match="not both"):
        invora.Client("a:1", environment="staging")


def test_bearer_tokens_refused_on_plaintext_to_remote_hosts() -> None:
    with pytest.raises(invora.ConfigurationError, match="plaintext") as info:
        invora.Client("gateway.invora.app:443", tls=False, credentials=invora.StaticToken("pat-secret"))
    assert "pat-secret" not in str(info.value)
    with pytest.raises(invora.ConfigurationError, match="plaintext"):
        invora.Client("http://api.example.com:8080", credentials="pat-secret")
    # loopback plaintext is fine, and so is plaintext without credentials
    invora.Client("127.0.0.1:5000", credentials="pat")
    invora.Client("[::1]:5000", credentials="pat")
    invora.Client("localhost:5000", credentials="pat")
    invora.Client("10.1.2.3:5000", tls=False)
    with pytest.raises(invora.ConfigurationError, match="tls=False"):
        invora.Client("https://gateway.invora.app", tls=False)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.5.6.7", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."]
)
def test_loopback_detection(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "128.0.0.1", "localhost.example.com", "::2", "gateway.invora.app", "a.localhost"]
)
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("org", ["", " ", "org 1", "org\t1", "org\n1", "örg", "org\x00", "x" * 300, " org"])
def test_bad_org_ids_raise_before_network(org: str) -> None:
    with pytest.raises(ValueError, match="invalid org id"):
        invora.Client(DEAD, org_id=org)
    client = invora.Client(DEAD, timeout=0.5, retry=None)
    with pytest.raises(ValueError, match="invalid org id"):
        client.with_org(org)
    with pytest.raises(ValueError, match="invalid org id"):
        client.simple.invoices.get(key="k", org_id=org)
    with pytest.raises(ValueError, match="invalid org id"):
        client.simple.invoices.list(org_id=org)


def test_org_header_validation() -> None:
    assert invora.Client(DEAD, org_header="X-Invora-Org-Id")._settings.org_header == "x-invora-org-id"
    for bad in ("", "has space", "grpc-status", "x-org-bin", "ünïcode"):
        with pytest.raises(invora.ConfigurationError, match="org_header"):
            invora.Client(DEAD, org_header=bad)


def test_other_bad_inputs() -> None:
    with pytest.raises(invora.ConfigurationError, match="unknown transport"):
        invora.Client(DEAD, transport="carrier-pigeon")
    with pytest.raises(invora.ConfigurationError, match="timeout"):
        invora.Client(DEAD, timeout=0)
    with pytest.raises(invora.ConfigurationError, match="retry"):
        invora.Client(DEAD, retry=3)
    with pytest.raises(invora.ConfigurationError, match="credentials"):
        invora.Client(DEAD, credentials=object())  # type: ignore[arg-type]
    with pytest.raises(invora.ConfigurationError, match="root_certificates"):
        invora.Client("example.com:443", root_certificates="/nonexistent/ca.pem")
    with pytest.raises(ValueError):
        invora.Retry(attempts=0)
    client = invora.Client(DEAD, retry=None)
    with pytest.raises(ValueError, match="timeout"):
        client.simple.invoices.get(key="k", timeout=-1)
    with pytest.raises(TypeError, match="either a request message or keyword fields"):
        req = client.simple.invoices._bind("Get").request_class(key="a")
        client.simple.invoices.get(req, key="b")
    with pytest.raises(TypeError, match=r"takes a invora\.simple\.invoices\.v1\.GetRequest"):
        client.simple.invoices.get(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="has no field 'nope'"):
        client.invoke("simple.invoices.get", {"nope": 1})
    with pytest.raises(invora.ConfigurationError, match="no method"):
        client.invoke("simple.invoices.thaw", {})
    with pytest.raises(TypeError, match="not paginated"):
        client.invoke("simple.invoices.get", {"key": "k"}, page_size=5)
    with pytest.raises(ValueError, match="page_size"):
        client.simple.invoices.list(page_size=0)
    with pytest.raises(ValueError, match="cursor"):
        client.simple.invoices.list(pagination={"cursor": "bad\ncursor"})
    with pytest.raises(TypeError, match="client-streaming"):
        client.documents.stream_create(None)  # type: ignore[arg-type]


def test_requests_from_dicts_and_json_forms() -> None:
    client = invora.Client(DEAD)
    binding = client.simple.invoices._bind("List")
    req = binding.build(
        None, {"pagination": {"limit": 5, "cursor": "c1"}, "mask": "key,frozen", "filter": None}
    )
    assert req.pagination.limit.value == 5 and req.pagination.cursor == "c1"
    assert list(req.mask.paths) == ["key", "frozen"]
    native = binding.build({"pagination": {"cursor": "c2"}}, {"mask": {"paths": ["key"]}})
    assert native.pagination.cursor == "c2" and list(native.mask.paths) == ["key"]


def test_request_id_filled_without_mutating_the_callers_message() -> None:
    client = invora.Client(DEAD)
    binding = client.simple.invoices._bind("Freeze")
    template = binding.request_class(key="INV-1", concurrency_stamp="s")
    built = binding.build(template, None)
    assert built is not template and template.request_id == ""
    assert len(built.request_id) == 36 and built.key == "INV-1"
    explicit = binding.build(None, {"key": "INV-1", "request_id": "mine"})
    assert explicit.request_id == "mine"
    assert binding.idempotent
    update = client.simple.invoices._bind("Update")
    assert not update.idempotent and not update.fill_request_id
    assert client.simple.invoices._bind("Get").idempotent


def test_import_invora_is_cheap() -> None:
    code = (
        "import sys, invora\n"
        "c = invora.Client('127.0.0.1:1'); c.simple.invoices; c.billing.plans\n"
        "bad = [m for m in sys.modules if m.endswith('_pb2') and m.startswith('invora.')]\n"
        "assert not bad, bad\n"
        "assert 'httpx' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_public_names() -> None:
    for name in ("Client", "AsyncClient", "ClientCredentials", "StaticToken", "Retry", "AuthMetadataPlugin",
                 "InvoraError", "Pager", "AsyncPager", "RawResponse", "DEFAULT"):  # fmt: skip
        assert hasattr(invora, name), name
    from invora._service import DEFAULT, AsyncServiceClient, Namespace, RetryArg, ServiceClient  # noqa: F401
    from invora.pagination import AsyncPager, Pager  # noqa: F401

    assert repr(DEFAULT) == "DEFAULT"
    # decimal helpers resolve lazily (they import the generated kernel module only when used)
    assert str(invora.to_decimal(invora.from_decimal("12.50"))) == "12.5"
    assert isinstance(invora.from_decimal(3), invora.DecimalValue)
    with pytest.raises(AttributeError):
        _ = invora.NoSuchThing  # type: ignore[attr-defined]


def test_with_org_is_a_lightweight_view() -> None:
    client = invora.Client(DEAD, org_id="org-a", metadata={"x-app": "test"})
    view = client.with_org("org-b")
    assert view._scope.core is client._scope.core
    assert view.org_id == "org-b" and client.org_id == "org-a"
    assert view._scope.org_md == (("x-target-org-id", "org-b"), ("x-app", "test"))
    assert client.with_org(None)._scope.org_md == (("x-app", "test"),)
    assert isinstance(view, invora.Client)
    view.close()  # a view does not own the channel
    assert not client._scope.core.closed
    assert parse_target("https://a.b").port == 443


def test_service_tree_and_typed_methods_exist() -> None:
    client = invora.Client(DEAD)
    assert client.simple.invoices is client.simple.invoices
    assert callable(client.simple.invoices.create) and callable(client.billing.plans.get)
    aclient = invora.AsyncClient(DEAD)
    assert type(aclient.simple.invoices).__name__ == "AsyncSimpleInvoiceService"
    assert grpc.StatusCode.OK  # grpc imported by the client anyway


def test_closed_clients_fail_clearly() -> None:
    client = invora.Client(DEAD)
    view = client.with_org("org-1")
    client.close()
    for c in (client, view):
        with pytest.raises(invora.ClientClosedError, match="closed"):
            c.simple.invoices.get(key="k")
        with pytest.raises(invora.ClientClosedError):
            c.invoke("billing.plans.get", {})


async def test_closed_async_client_fails_clearly() -> None:
    async with invora.AsyncClient(DEAD) as client:
        pass
    with pytest.raises(invora.ClientClosedError):
        await client.simple.invoices.get(key="k")
