"""One client-level suite, run over both transports (gRPC, REST) and both flavours (sync, asyncio).

Every test talks to the sandbox over real sockets and checks, through the sandbox's call records, that the
transport under test carried the calls. The tests are written once, as coroutines; ``Api`` awaits what the
async client returns and passes the sync client's results through, so the assertions are shared verbatim.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

import invora
from invora.sandbox import Sandbox, Tenant

FAST = invora.Retry(attempts=4, initial=0.01, maximum=0.05, deadline=20)
GET = "invora.simple.invoices.v1.SimpleInvoiceService/Get"
UPDATE = "invora.simple.invoices.v1.SimpleInvoiceService/Update"
_names = itertools.count()


def invoice(buyer: str = "Acme Trading", lines: int = 1) -> dict[str, Any]:
    return {
        "currency_code": "SAR",
        "issue_date": {"year": 2026, "month": 3, "day": 1},
        "buyer": {"name": buyer, "vat_number": "300000000000003"},
        "lines": [
            {
                "description": f"Item {i}",
                "quantity": {"units": 2},
                "unit_price": {"units": 50},
                "tax_rate": {"units": 15},
            }
            for i in range(lines)
        ],
    }


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(grpc_port=0, http_port=0) as box:
        yield box


class Api:
    """The client under test plus what the assertions need to know about it."""

    def __init__(self, sb: Sandbox, tenant: Tenant, transport: str, asynchronous: bool, **kw: Any) -> None:
        self.sb, self.tenant, self.transport, self.asynchronous = sb, tenant, transport, asynchronous
        target = sb.grpc_target if transport == "grpc" else sb.rest_url
        creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, token_url=sb.token_url)
        kw.setdefault("retry", FAST)
        kw.setdefault("org_id", tenant.org_id)
        cls = invora.AsyncClient if asynchronous else invora.Client
        self.client: Any = cls(target=target, transport=transport, credentials=creds, **kw)

    async def __call__(self, result: Any) -> Any:
        return await result if inspect.isawaitable(result) else result

    async def items(self, pager: Any) -> list[Any]:
        if self.asynchronous:
            return [x async for x in pager]
        return list(pager)

    async def pages(self, pager: Any) -> list[Any]:
        if self.asynchronous:
            return [p async for p in pager.pages]
        return list(pager.pages)

    def calls(self, method: str | None = None) -> list[Any]:
        return [
            c
            for c in self.sb.calls
            if c.org_id == self.tenant.org_id
            and c.transport == self.transport
            and (method is None or c.method == method)
        ]

    async def close(self) -> None:
        await self(self.client.close())


@pytest.fixture(params=["grpc", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def asynchronous(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def api(sb: Sandbox, transport: str, asynchronous: bool) -> AsyncIterator[Api]:
    tenant = sb.create_tenant(f"Conformance {next(_names)}")
    a = Api(sb, tenant, transport, asynchronous)
    yield a
    await a.close()


async def test_crud_lifecycle(api: Api) -> None:
    inv = api.client.simple.invoices
    created = (await api(inv.create(changes=invoice(), request_id=None))).details
    assert created.key and not created.frozen
    assert str(invora.to_decimal(created.totals.payable_amount)) in ("115", "115.00", "115.0")

    got = (await api(inv.get(key=created.key))).details
    assert got.concurrency_stamp == created.concurrency_stamp

    updated = (
        await api(
            inv.update(
                key=created.key,
                concurrency_stamp=created.concurrency_stamp,
                mask={"paths": ["note"]},
                changes={"note": "updated"},
            )
        )
    ).details
    assert updated.note == "updated" and updated.concurrency_stamp != created.concurrency_stamp

    with pytest.raises(invora.Aborted):  # stale stamp
        await api(
            inv.update(key=created.key, concurrency_stamp=created.concurrency_stamp, changes={"note": "x"})
        )

    frozen = (await api(inv.freeze(key=created.key, concurrency_stamp=updated.concurrency_stamp))).details
    assert frozen.frozen and frozen.number.startswith("INV-") and frozen.regulation_metadata.authority

    with pytest.raises(invora.FailedPrecondition) as info:
        await api(
            inv.update(key=created.key, concurrency_stamp=frozen.concurrency_stamp, changes={"note": "y"})
        )
    assert info.value.http_status == 400

    draft = (await api(inv.create(changes=invoice()))).details
    await api(inv.delete(keys=[draft.key]))
    with pytest.raises(invora.NotFound) as missing:
        await api(inv.get(key=draft.key))
    assert missing.value.code == grpc.StatusCode.NOT_FOUND and missing.value.http_status == 404

    assert api.calls(GET), "the sandbox saw no Get over the transport under test"


async def test_pagination_prefetch_resume_and_filters(api: Api) -> None:
    inv = api.client.simple.invoices
    for i in range(7):
        await api(inv.create(changes=invoice(buyer=f"Buyer {i} {'Falcon' if i % 2 else 'Oryx'}")))

    pager = inv.list(page_size=3)
    items = await api.items(pager)
    assert len(items) == 7 and pager.total_count == 7
    assert len({x.key for x in items}) == 7

    pages = await api.pages(inv.list(page_size=3))
    assert [len(p.items) for p in pages] == [3, 3, 1]

    limited = await api.items(inv.list(page_size=2, max_items=3))
    assert len(limited) == 3

    # Resume from the cursor of the first page in a fresh pager.
    first = pages[0]
    resumed = await api.items(inv.list(pagination={"cursor": first.next_page_cursor, "limit": 3}))
    assert {x.key for x in resumed} == {x.key for x in items} - {x.key for x in first.items}

    falcons = await api.items(inv.list(filter={"text_search": "Falcon"}, page_size=10))
    assert len(falcons) == 3 and all("Falcon" in x.buyer_name for x in falcons)

    with pytest.raises(invora.OutOfRange) as bad:
        await api.items(inv.list(pagination={"cursor": "not-a-cursor"}))
    assert "cursor" in str(bad.value).lower()


async def test_validation_errors_carry_details(api: Api) -> None:
    bad = invoice()
    bad["lines"] = []
    with pytest.raises(invora.InvalidArgument) as info:
        await api(api.client.simple.invoices.create(changes=bad))
    err = info.value
    assert err.http_status == 400
    assert err.field_violations and any("lines" in v.field for v in err.field_violations)
    assert err.validation_errors and err.error_info is not None


async def test_retries_transient_errors_and_honours_retry_info(api: Api) -> None:
    inv = api.client.simple.invoices
    created = (await api(inv.create(changes=invoice()))).details
    before = len(api.calls(GET))
    api.sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=2)
    assert (await api(inv.get(key=created.key))).details.key == created.key
    assert len(api.calls(GET)) - before == 3

    api.sb.inject_error(GET, grpc.StatusCode.RESOURCE_EXHAUSTED, times=1, retry_delay=0.05)
    assert (await api(inv.get(key=created.key))).details.key == created.key


async def test_unsafe_write_is_not_retried(api: Api) -> None:
    inv = api.client.simple.invoices
    created = (await api(inv.create(changes=invoice()))).details
    before = len(api.calls(UPDATE))
    api.sb.inject_error(UPDATE, grpc.StatusCode.UNAVAILABLE, times=1)
    with pytest.raises(invora.Unavailable):
        await api(
            inv.update(key=created.key, concurrency_stamp=created.concurrency_stamp, changes={"note": "n"})
        )
    assert len(api.calls(UPDATE)) - before == 1


async def test_tenancy_connected_business_and_foreign_org(
    sb: Sandbox, transport: str, asynchronous: bool
) -> None:
    platform = sb.create_tenant(f"Platform {next(_names)}", kind="platform")
    business = sb.connect_business(platform, f"Shop {next(_names)}")
    stranger = sb.create_tenant(f"Stranger {next(_names)}")
    api = Api(sb, platform, transport, asynchronous)
    try:
        made = (
            await api(api.client.simple.invoices.create(changes=invoice(), org_id=business.org_id))
        ).details
        scoped = api.client.with_org(business.org_id)
        assert (await api(scoped.simple.invoices.get(key=made.key))).details.key == made.key
        seen = [c for c in sb.calls if c.method == GET and c.transport == transport][-1]
        assert seen.org_id == business.org_id
        with pytest.raises(invora.NotFound):  # the platform's own org does not hold the business's data
            await api(api.client.simple.invoices.get(key=made.key))
        with pytest.raises(invora.PermissionDenied) as denied:
            await api(api.client.simple.invoices.get(key=made.key, org_id=stranger.org_id))
        assert denied.value.http_status == 403
    finally:
        await api.close()


async def test_auth_refresh_after_revocation_and_expiry(
    sb: Sandbox, transport: str, asynchronous: bool
) -> None:
    tenant = sb.create_tenant(f"Auth {next(_names)}")
    api = Api(sb, tenant, transport, asynchronous)
    try:
        inv = api.client.simple.invoices
        created = (await api(inv.create(changes=invoice()))).details
        grants = sb.token_requests
        sb.revoke_tokens(tenant)
        assert (await api(inv.get(key=created.key))).details.key == created.key
        assert sb.token_requests == grants + 1  # refreshed exactly once
    finally:
        await api.close()

    # The sandbox's exp is whole seconds (int(now) + ttl): a 3 s token lives at least 2 s, time enough for
    # the creates below (a 1 s token could expire before its first call reached the server, its refresh too).
    with Sandbox(grpc_port=0, http_port=0, token_ttl=3.0) as short:
        api = Api(short, short.tenant, transport, asynchronous)
        try:
            for _ in range(3):
                await api(api.client.simple.invoices.create(changes=invoice()))
            import asyncio

            await asyncio.sleep(3)  # the token expires; the client refreshes ahead or on UNAUTHENTICATED
            await api(api.client.simple.invoices.create(changes=invoice()))
            assert short.token_requests >= 2
        finally:
            await api.close()


# -- billing (the current /api/billing/v2 API: flat requests, string ids) --------------------------------
EVENT_CREATE = "invora.billing.events.v2.EventsService/Create"
CUSTOMER_CREATE = "invora.billing.customers.v2.CustomersService/Create"


async def test_billing_crud_and_pagination(api: Api) -> None:
    customers = api.client.billing.customers
    made = []
    for i in range(5):
        c = await api(
            customers.create(external_id=f"cust-{i}", name=f"Customer {i} Najd", currency="CURRENCY_ENUM_SAR")
        )
        made.append(c.customer)
    assert all(c.id for c in made) and len({c.id for c in made}) == 5

    pages = await api.pages(customers.list(page_size=2))
    assert [len(p.items) for p in pages] == [2, 2, 1] and pages[0].total_count == 5
    listed = await api.items(customers.list(page_size=2))
    assert {c.id for c in listed} == {c.id for c in made}

    got = (await api(customers.get(id=made[0].id))).customer
    assert got.external_id == "cust-0" and got.name == "Customer 0 Najd"
    renamed = (await api(customers.update(id=made[0].id, external_id="cust-0", name="Renamed"))).customer
    assert renamed.id == made[0].id and renamed.name == "Renamed"

    await api(customers.delete(id=made[1].id))
    with pytest.raises(invora.NotFound) as missing:
        await api(customers.get(id=made[1].id))
    assert missing.value.http_status == 404

    plan = (
        await api(
            api.client.billing.plans.create(
                code=f"pro-{next(_names)}",
                name="Pro",
                amount_cents=50000,
                amount_currency="CURRENCY_ENUM_SAR",
                interval="PLAN_INTERVAL_MONTHLY",
            )
        )
    ).plan
    assert (await api(api.client.billing.plans.get(id=plan.id))).plan.code == plan.code
    assert api.calls("invora.billing.customers.v2.CustomersService/Get"), "no billing Get over this transport"


async def test_usage_events_are_retried_on_their_idempotency_key(api: Api) -> None:
    events = api.client.billing.events
    before = len(api.calls(EVENT_CREATE))
    # ABORTED is retried only for idempotent calls: a usage event is one, through its transaction_id.
    api.sb.inject_error(EVENT_CREATE, grpc.StatusCode.ABORTED, times=1)
    await api(
        events.create(
            transaction_id=f"tx-{next(_names)}",
            external_subscription_id="sub-1",
            code="api_calls",
            properties={"count": 1},
        )
    )
    assert len(api.calls(EVENT_CREATE)) - before == 2

    # A billing write without an idempotency key is not repeated.
    before = len(api.calls(CUSTOMER_CREATE))
    api.sb.inject_error(CUSTOMER_CREATE, grpc.StatusCode.ABORTED, times=1)
    with pytest.raises(invora.Aborted):
        await api(api.client.billing.customers.create(external_id=f"c-{next(_names)}", name="Once"))
    assert len(api.calls(CUSTOMER_CREATE)) - before == 1
