"""Security as the gateway does it: token endpoint, JWT checks, scopes, tenancy — over gRPC and REST."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import grpc
import httpx
import jwt
import pytest
from google.rpc import error_details_pb2, status_pb2

from invora.sandbox import Sandbox, Tenant
from invora.sandbox.testing import RawCaller


def error_info(err: grpc.RpcError) -> Any:
    for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            for d in status_pb2.Status.FromString(value).details:
                if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    d.Unpack(info)
                    return info
    raise AssertionError("no ErrorInfo")


def fails(raw: RawCaller, method: str = "simple.invoices.list", **kw: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        raw.call(method, **kw)
    return exc.value


@pytest.fixture
def tenant(invora_sandbox: Sandbox) -> Tenant:
    return invora_sandbox.create_tenant("Auth Co")


def token_request(sb: Sandbox, **form: str) -> httpx.Response:
    return httpx.post(sb.token_url, data=form, timeout=10)


# -- token endpoint -------------------------------------------------------------------------------------


def test_client_credentials_grant(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    before = sb.token_requests
    r = token_request(
        sb,
        grant_type="client_credentials",
        client_id=tenant.client_id,
        client_secret=tenant.client_secret,
        scope="openid",
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 43200
    assert sb.token_requests == before + 1
    # HTTP Basic works too.
    basic = base64.b64encode(f"{tenant.client_id}:{tenant.client_secret}".encode()).decode()
    r2 = httpx.post(
        sb.token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert r2.status_code == 200 and r2.json()["access_token"] != body["access_token"]
    # The JWT carries the documented claims.
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert (
        claims["aud"] == "invora" and claims["sub"] == tenant.client_id and claims["org_id"] == tenant.org_id
    )
    assert claims["iss"] == sb.issuer and claims["exp"] - claims["iat"] == 43200
    assert {"jti", "roles", "scope"} <= set(claims) and tenant.org_id in claims["roles"]
    with RawCaller(sb.grpc_target, token=body["access_token"]) as raw:
        assert raw.call("simple.invoices.list").total_count == 0


def test_discovery_and_jwks_verify_tokens(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    disc = httpx.get(sb.issuer + "/.well-known/openid-configuration").json()
    assert disc["issuer"] == sb.issuer and disc["token_endpoint"] == sb.token_url
    jwks = httpx.get(disc["jwks_uri"]).json()
    key = jwt.PyJWK(jwks["keys"][0])
    token = sb.mint_token(tenant)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="invora", issuer=sb.issuer)
    assert claims["org_id"] == tenant.org_id
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            sb.mint_token(tenant, bad_signature=True), key.key, algorithms=["RS256"], audience="invora"
        )


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "password", "username": "u", "password": "p"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_id": "sbx-unknown", "client_secret": "x"},
            401,
            "invalid_client",
        ),
    ],
)
def test_token_endpoint_errors(
    invora_sandbox: Sandbox, tenant: Tenant, form: dict[str, str], status: int, error: str
) -> None:
    form = dict(form)
    form.setdefault("client_id", tenant.client_id)
    r = token_request(invora_sandbox, **form)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error and body["error_description"]
    assert tenant.client_secret not in r.text


def test_token_faults(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    form = {
        "grant_type": "client_credentials",
        "client_id": tenant.client_id,
        "client_secret": tenant.client_secret,
    }
    sb.inject_token_fault("status500")
    assert token_request(sb, **form).status_code == 500
    sb.inject_token_fault("garbage", times=2)
    for _ in range(2):
        r = token_request(sb, **form)
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
    sb.inject_token_fault("no_access_token")
    r = token_request(sb, **form)
    assert r.status_code == 200 and "access_token" not in r.json() and r.json()["token_type"] == "Bearer"
    sb.inject_token_fault("slow")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sb.token_url, data=form, timeout=0.3)
    # Faults are consumed: the next request works.
    assert "access_token" in token_request(sb, **form).json()
    with pytest.raises(ValueError):
        sb.inject_token_fault("nonsense")


# -- JWT checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "TOKEN_MISSING"),
        ("expired", "TOKEN_EXPIRED"),
        ("bad_signature", "TOKEN_INVALID"),
        ("garbage", "TOKEN_INVALID"),
    ],
)
def test_unauthenticated(invora_sandbox: Sandbox, tenant: Tenant, kind: str, reason: str) -> None:
    sb = invora_sandbox
    token = {
        "missing": None,
        "expired": sb.mint_token(tenant, expired=True),
        "bad_signature": sb.mint_token(tenant, bad_signature=True),
        "garbage": "not-a-jwt",
    }[kind]
    with RawCaller(sb.grpc_target, token=token) as raw:
        err = fails(raw)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(err)
    assert info.reason == reason and info.domain == "invora.app"
    # Same over REST: 401 with the status JSON.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(f"{sb.rest_url}/api/v1/simple/invoices/list", json={}, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == 16
    assert r.json()["details"][0]["reason"] == reason
    if token:
        assert token not in r.text and token not in (err.details() or "")


def test_short_lived_token_expires(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    token = sb.mint_token(tenant, ttl=2)  # exp is whole seconds (int(now) + 2): valid for 1 to 2 s
    with RawCaller(sb.grpc_target, token=token) as raw:
        raw.call("simple.invoices.list")  # valid now (and cached)
        time.sleep(2)  # past its exp, however late in its second it was minted
        err = fails(raw)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(err).reason == "TOKEN_EXPIRED"


def test_revoke_tokens(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    other = sb.create_tenant("Not revoked")
    t1, t2 = sb.mint_token(tenant), sb.mint_token(other)
    with RawCaller(sb.grpc_target, token=t1) as raw:
        raw.call("simple.invoices.list")
        sb.revoke_tokens(tenant)
        err = fails(raw)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and error_info(err).reason == "TOKEN_REVOKED"
        # The other tenant is unaffected; new tokens of the revoked tenant work.
        raw.call("simple.invoices.list", token=t2)
        raw.call("simple.invoices.list", token=sb.mint_token(tenant))


def test_missing_scope(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    reader = sb.create_tenant(
        "Reader", scopes=["openid", "Invora.Simple.Invoices.v1.List", "Invora.Simple.Invoices.v1.Get"]
    )
    form = {
        "grant_type": "client_credentials",
        "client_id": reader.client_id,
        "client_secret": reader.client_secret,
    }
    token = token_request(sb, **form).json()["access_token"]
    with RawCaller(sb.grpc_target, token=token) as raw:
        raw.call("simple.invoices.list")
        err = fails(raw, "simple.invoices.create")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        info = error_info(err)
        assert (
            info.reason == "MISSING_SCOPE"
            and info.metadata["scope"] == "Invora.Simple.Invoices.v1.Modify.Create"
        )
        # A prefix wildcard covers a whole area.
        wide = sb.mint_token(reader, scopes=["Invora.Simple.*"])
        line = {"description": "x", "quantity": {"units": 1}, "unit_price": {"units": 5}}
        doc = raw.call(
            "simple.invoices.create", token=wide, changes={"buyer": {"name": "b"}, "lines": [line]}
        )
        assert doc.details.key
        err = fails(raw, "documents.list", token=wide)
        assert error_info(err).reason == "MISSING_SCOPE"


# -- tenancy --------------------------------------------------------------------------------------------


def test_tenancy_header(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    platform = sb.create_tenant("Platform", kind="platform")
    child = sb.connect_business(platform, "Child")
    stranger = sb.create_tenant("Stranger")
    with RawCaller(sb.grpc_target, token=sb.mint_token(platform)) as raw:
        # Acting for its connected business: data lands in the child's partition.
        created = raw.call(
            "simple.invoices.create",
            org_id=child.org_id,
            changes={
                "buyer": {"name": "B"},
                "lines": [{"description": "x", "quantity": {"units": 1}, "unit_price": {"units": 2}}],
            },
        ).details
        assert raw.call("simple.invoices.list", org_id=child.org_id).total_count == 1
        assert raw.call("simple.invoices.list", org_id=None).total_count == 0
        assert sb.calls[-1].org_id == platform.org_id
        # Every accepted key name works.
        for key in ("x-invora-org-id", "x-zitadel-orgid"):
            got = raw.call(
                "simple.invoices.get", org_id=None, key=created.key, metadata=[(key, child.org_id)]
            )
            assert got.details.key == created.key
        # A business that is not its own is forbidden.
        err = fails(raw, org_id=stranger.org_id)
        assert (
            err.code() == grpc.StatusCode.PERMISSION_DENIED and error_info(err).reason == "TENANT_FORBIDDEN"
        )
        # Unknown and malformed org ids are clear errors.
        err = fails(raw, org_id="123456789012345678")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and error_info(err).reason == "UNKNOWN_ORG"
        err = fails(raw, org_id="not-an-org")
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and error_info(err).reason == "INVALID_ORG_ID"
    # The child cannot act for its platform, nor a business for another business.
    with RawCaller(sb.grpc_target, token=sb.mint_token(child)) as raw:
        assert raw.call("simple.invoices.list").total_count == 1
        assert error_info(fails(raw, org_id=platform.org_id)).reason == "TENANT_FORBIDDEN"
    with RawCaller(sb.grpc_target, token=sb.mint_token(tenant)) as raw:
        assert error_info(fails(raw, org_id=child.org_id)).reason == "TENANT_FORBIDDEN"
    # REST honours the header as well (403 for a foreign org).
    r = httpx.post(
        f"{sb.rest_url}/api/v1/simple/invoices/list",
        json={},
        headers={"Authorization": f"Bearer {sb.mint_token(tenant)}", "X-Target-Org-Id": child.org_id},
    )
    assert r.status_code == 403 and r.json()["details"][0]["reason"] == "TENANT_FORBIDDEN"


def test_calls_redact_authorization(invora_sandbox: Sandbox, tenant: Tenant) -> None:
    sb = invora_sandbox
    token = sb.mint_token(tenant)
    sb.clear_calls()
    with RawCaller(sb.grpc_target, token=token) as raw:
        raw.call("simple.invoices.list")
    rec = sb.calls[-1]
    assert rec.method == "invora.simple.invoices.v1.SimpleInvoiceService/List"
    assert rec.transport == "grpc" and rec.code == grpc.StatusCode.OK and rec.org_id == tenant.org_id
    assert rec.metadata["authorization"] == "Bearer ***"
    assert token not in repr(sb.calls) and tenant.client_secret not in repr(tenant)
