"""Registration, connected businesses, rate limit and the fault knobs (billing: test_sandbox_billing)."""

from __future__ import annotations

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from invora.sandbox import Sandbox, Tenant
from invora.sandbox.testing import RawCaller


def token_for(sb: Sandbox, client_id: str, client_secret: str) -> str:
    r = httpx.post(
        sb.token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def details(err: grpc.RpcError, cls: type) -> list:  # type: ignore[type-arg]
    out = []
    for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            for d in status_pb2.Status.FromString(value).details:
                if d.Is(cls.DESCRIPTOR):  # type: ignore[attr-defined]
                    m = cls()
                    d.Unpack(m)
                    out.append(m)
    return out


def test_create_business_gives_the_caller_a_role_on_it(invora_sandbox: Sandbox) -> None:
    """No credentials come back from registration: the caller acts on the new business through the
    tenancy header; anybody else is refused."""
    sb = invora_sandbox
    owner = sb.create_tenant("Owner", country="EG")
    svc = "identity.public_registration"
    with RawCaller(sb.grpc_target, token=sb.mint_token(owner)) as raw:
        resp = raw.call(f"{svc}.create_business", business_name="  Cairo   Goods ")
        assert resp.org_id and resp.org_id != owner.org_id
        assert resp.org_name == "Cairo Goods" and resp.default_branch_country == "EG"
        assert not set(resp.DESCRIPTOR.fields_by_name) & {"client_id", "client_secret"}
        assert raw.call(f"{svc}.create_business").org_name == "Untitled business"  # the name is optional
        with pytest.raises(grpc.RpcError) as exc:
            raw.call(f"{svc}.create_business", business_name="x" * 201)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        plans = raw.call(f"{svc}.list_available_plans", org_id=resp.org_id).items
        assert [p.code for p in plans] == ["starter", "growth", "scale"] and plans[0].features
        picked = raw.call(f"{svc}.select_plan", plan_code=plans[0].code, org_id=resp.org_id)
        assert picked.subscription_id and picked.checklist.completion_ratio == pytest.approx(1.0)
        with pytest.raises(grpc.RpcError) as exc:
            raw.call(f"{svc}.select_plan", plan_code="nope", org_id=resp.org_id)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        # An Egyptian business's frozen invoice goes to the ETA, in the new organization only.
        line = {
            "description": "x",
            "quantity": {"units": 1},
            "unit_price": {"units": 10},
            "tax_rate": {"units": 14},
        }
        doc = raw.call(
            "simple.invoices.create",
            changes={"buyer": {"name": "B"}, "lines": [line]},
            freeze_immediately=True,
            org_id=resp.org_id,
        ).details
        assert doc.regulation_metadata.authority == "EGYPT_ETA" and doc.seller.name == "Cairo Goods"
        assert raw.call("simple.invoices.list").total_count == 0
        assert raw.call("simple.invoices.list", org_id=resp.org_id).total_count == 1
    stranger = sb.create_tenant("Stranger")
    with RawCaller(sb.grpc_target, token=sb.mint_token(stranger)) as raw:
        with pytest.raises(grpc.RpcError) as exc:
            raw.call("simple.invoices.list", org_id=resp.org_id)
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Over REST, as the API reference documents it.
    r = httpx.post(
        f"{sb.rest_url}/api/v2/identity/businesses",
        headers={"Authorization": f"Bearer {sb.mint_token(owner)}"},
        json={"businessName": "Alex Trading"},
    )
    assert r.status_code == 200 and r.json()["orgName"] == "Alex Trading" and r.json()["orgId"], r.text


def test_platform_manages_connected_businesses(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    platform = sb.create_tenant("Platform One", kind="platform", country="DE")
    svc = "identity.connected_business"
    with RawCaller(sb.grpc_target, token=sb.mint_token(platform)) as raw:
        made = raw.call(f"{svc}.create_connected_business", name="Shop A", admin_email="a@example.com")
        cb = made.connected_business
        assert cb.parent_tenant_id == platform.org_id and cb.status == 2 and made.client_secret
        raw.call(f"{svc}.create_connected_business", name="Shop B")
        lst = raw.call(f"{svc}.list_connected_businesses")
        assert lst.total_count == 2 and {i.name for i in lst.items} == {"Shop A", "Shop B"}
        found = raw.call(f"{svc}.list_connected_businesses", filter={"text_search": "shop a"})
        assert [i.tenant_id for i in found.items] == [cb.tenant_id]
        assert (
            raw.call(f"{svc}.get_connected_business", tenant_id=cb.tenant_id).connected_business.name
            == "Shop A"
        )
        branches = raw.call(f"{svc}.list_connected_business_branches", tenant_id=cb.tenant_id)
        assert branches.items[0].is_primary and branches.items[0].country == "DE"

        # The platform acts for its business via the tenancy header; a PEPPOL country here.
        line = {"description": "x", "quantity": {"units": 2}, "unit_price": {"units": 10}}
        doc = raw.call(
            "simple.invoices.create",
            org_id=cb.tenant_id,
            changes={"buyer": {"name": "B"}, "lines": [line]},
            freeze_immediately=True,
        ).details
        assert doc.seller.name == "Shop A" and doc.regulation_metadata.authority == "PEPPOL"

        # The business's own credentials work until rotated, then only the new ones do.
        old_token = token_for(sb, made.client_id, made.client_secret)
        rotated = raw.call(f"{svc}.rotate_credentials", tenant_id=cb.tenant_id)
        r = httpx.post(
            sb.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": made.client_id,
                "client_secret": made.client_secret,
            },
        )
        assert r.status_code == 401
        new_token = token_for(sb, rotated.client_id, rotated.client_secret)
        with RawCaller(sb.grpc_target, token=new_token) as biz:
            assert biz.call("simple.invoices.list").total_count == 1
            # Suspension locks out the business and the platform acting for it.
            raw.call(f"{svc}.suspend_connected_business", tenant_id=cb.tenant_id, reason="unpaid")
            with pytest.raises(grpc.RpcError) as exc:
                biz.call("simple.invoices.list")
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as exc:
                raw.call("simple.invoices.list", org_id=cb.tenant_id)
            assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as exc:
                raw.call(f"{svc}.suspend_connected_business", tenant_id=cb.tenant_id)
            assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            raw.call(f"{svc}.reactivate_connected_business", tenant_id=cb.tenant_id)
            assert biz.call("simple.invoices.list").total_count == 1
        assert old_token  # issued before the rotation; tokens stay valid until they expire

        raw.call(f"{svc}.delete_connected_business", tenant_id=cb.tenant_id)
        with pytest.raises(grpc.RpcError) as exc:
            raw.call(f"{svc}.get_connected_business", tenant_id=cb.tenant_id)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

    # A plain business is no platform, and cannot see another platform's businesses.
    biz = sb.create_tenant("Plain")
    with RawCaller(sb.grpc_target, token=sb.mint_token(biz)) as raw:
        with pytest.raises(grpc.RpcError) as exc:
            raw.call(f"{svc}.list_connected_businesses")
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    other_platform = sb.create_tenant("Platform Two", kind="platform")
    with RawCaller(sb.grpc_target, token=sb.mint_token(other_platform)) as raw:
        b = raw.call(f"{svc}.list_connected_businesses")
        assert b.total_count == 0


def test_connect_business_helper(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    platform = sb.create_tenant("P", kind="platform")
    child = sb.connect_business(platform, "C")
    assert child.kind == "connected" and child.org_id != platform.org_id
    with pytest.raises(ValueError):
        sb.connect_business(sb.create_tenant("not a platform"), "x")


def test_rate_limit_resource_exhausted_with_retry_info() -> None:
    with Sandbox(rate_limit=2.0) as sb:
        other = sb.create_tenant("Other org")
        with RawCaller(sb.grpc_target, token=sb.mint_token(sb.tenant)) as raw:
            codes = []
            err = None
            for _ in range(6):
                try:
                    raw.call("simple.invoices.list")
                    codes.append("ok")
                except grpc.RpcError as e:
                    codes.append(e.code().name)
                    err = e
            assert "ok" in codes and "RESOURCE_EXHAUSTED" in codes
            assert err is not None
            info = details(err, error_details_pb2.RetryInfo)[0]
            assert info.retry_delay.seconds > 0 or info.retry_delay.nanos > 0
            # Per organization: another org still has its budget.
            raw.call("simple.invoices.list", token=sb.mint_token(other))
        r = httpx.post(
            f"{sb.rest_url}/api/v1/simple/invoices/list",
            json={},
            headers={"Authorization": f"Bearer {sb.mint_token(sb.tenant)}"},
        )
        if r.status_code == 429:  # the bucket may have refilled in between
            assert int(r.headers["Retry-After"]) >= 1
            assert any(d["@type"].endswith("RetryInfo") for d in r.json()["details"])


def test_inject_error(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    t = sb.create_tenant("Faulty")
    token = sb.mint_token(t)
    sb.inject_error("simple.invoices.list", grpc.StatusCode.UNAVAILABLE, times=2, retry_delay=1.5)
    with RawCaller(sb.grpc_target, token=token) as raw:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as exc:
                raw.call("simple.invoices.list")
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
            assert exc.value.details() == "injected fault"
            delay = details(exc.value, error_details_pb2.RetryInfo)[0].retry_delay
            assert (delay.seconds, delay.nanos) == (1, 500_000_000)
        raw.call("simple.invoices.list")
    assert [c.code for c in sb.calls[-3:]] == [grpc.StatusCode.UNAVAILABLE] * 2 + [grpc.StatusCode.OK]
    # Same knob over REST, by full method name: the HTTP status of the table.
    sb.inject_error(
        "invora.simple.invoices.v1.SimpleInvoiceService/Get", grpc.StatusCode.NOT_FOUND, message="gone"
    )
    r = httpx.get(f"{sb.rest_url}/api/v1/simple/invoices/k", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404 and r.json()["message"] == "gone"
    assert sb.calls[-1].transport == "rest"
    with pytest.raises(LookupError):
        sb.inject_error("simple.invoices.nope", grpc.StatusCode.INTERNAL)


def test_latency_and_error_rate() -> None:
    with Sandbox(seed=1) as sb:
        token = sb.mint_token(sb.tenant)
        with RawCaller(sb.grpc_target, token=token) as raw:
            sb.set_latency(1.0, "simple.invoices.list")
            with pytest.raises(grpc.RpcError) as exc:
                raw.call("simple.invoices.list", timeout=0.2)
            assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            sb.set_latency(0, "simple.invoices.list")
            raw.call("simple.invoices.list", timeout=5)
            sb.set_error_rate(1.0, code=grpc.StatusCode.INTERNAL)
            with pytest.raises(grpc.RpcError) as exc:
                raw.call("simple.invoices.list")
            assert exc.value.code() == grpc.StatusCode.INTERNAL
            sb.set_error_rate(0.5, "simple.invoices.list")
            sb.set_error_rate(0)  # the global rate off; the method's remains
            outcomes = []
            for _ in range(40):
                try:
                    raw.call("simple.invoices.list")
                    outcomes.append(True)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE
                    outcomes.append(False)
            assert 0 < sum(outcomes) < 40
            with pytest.raises(ValueError):
                sb.set_error_rate(1.5)


def test_sandbox_tenant_contract(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    assert isinstance(sb.tenant, Tenant) and sb.tenant.kind == "business"
    assert (sb.client_id, sb.client_secret, sb.org_id) == (
        sb.tenant.client_id,
        sb.tenant.client_secret,
        sb.tenant.org_id,
    )
    assert sb.token_url == sb.rest_url + "/oauth/v2/token" and sb.issuer == sb.rest_url
    assert sb.grpc_target.startswith("127.0.0.1:") and sb.rest_url.startswith("http://127.0.0.1:")
    assert sb.client_secret not in repr(sb) and sb.client_secret not in repr(sb.tenant)
