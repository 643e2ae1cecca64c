"""Billing in the sandbox: the flows users test before going live, over gRPC with the SDK and over REST."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import timestamp_pb2

import invora
from invora import from_decimal, to_decimal
from invora._catalog import services
from invora.sandbox import Sandbox
from invora.sandbox.domain import overrides
from invora.sandbox.testing import RawCaller

SAR = "CURRENCY_ENUM_SAR"
MONTHLY = "PLAN_INTERVAL_MONTHLY"


@pytest.fixture
def client(invora_sandbox: Sandbox) -> Iterator[invora.Client]:
    """A client for a fresh organization: every test starts from an empty billing account."""
    sb = invora_sandbox
    t = sb.create_tenant(f"Billing {uuid.uuid4().hex[:6]}")
    creds = invora.ClientCredentials(t.client_id, t.client_secret, sb.token_url)
    with invora.Client(sb.grpc_target, credentials=creds, timeout=10) as c:
        yield c


def metric(client: invora.Client, code: str, agg: str, field: str = "") -> Any:
    kw = {"field_name": field} if field else {}
    return client.billing.metrics.create(
        code=code, name=code.replace("_", " "), aggregation_type=f"AGGREGATION_TYPE_{agg}_AGG", **kw
    ).billable_metric


def standard(metric_id: str, amount: str) -> dict[str, Any]:
    return {
        "billable_metric_id": metric_id,
        "charge_model": "CHARGE_MODEL_STANDARD",
        "properties": {"amount": from_decimal(amount)},
    }


def plan(client: invora.Client, code: str, cents: int, charges: list[dict[str, Any]] = (), **kw: Any) -> Any:  # type: ignore[assignment]
    return client.billing.plans.create(
        code=code,
        name=code.title(),
        amount_cents=cents,
        amount_currency=SAR,
        interval=MONTHLY,
        charges=list(charges),
        **kw,
    ).plan


def violations(exc: invora.RpcError) -> set[str]:
    return {v.field for v in exc.field_violations}


def test_every_override_names_a_current_rpc() -> None:
    known = {m.full_name for s in services() for m in s.methods.values()}
    assert sorted(set(overrides()) - known) == []


def test_plans_with_charges_add_ons_and_features(client: invora.Client) -> None:
    calls = metric(client, "api_calls", "COUNT")
    storage = metric(client, "storage_gb", "MAX", "gb")
    add_on = client.billing.plans.create_add_on(
        code="setup", name="Setup", amount_cents=20000, amount_currency=SAR
    ).add_on
    feature = client.billing.plans.create_feature(
        code="seats",
        name="Seats",
        privileges=[
            {"code": "max", "value_type": "PRIVILEGE_VALUE_TYPE_ENUM_INTEGER"},
            {
                "code": "tier",
                "value_type": "PRIVILEGE_VALUE_TYPE_ENUM_SELECT",
                "config": {"select_options": ["a", "b"]},
            },
        ],
    ).feature
    assert (
        feature.id
        and [p.code for p in feature.privileges] == ["max", "tier"]
        and all(p.id for p in feature.privileges)
    )
    assert client.billing.plans.get_feature(code="seats").feature.id == feature.id

    made = plan(
        client,
        "pro",
        50000,
        [standard(calls.id, "0.05"), standard(storage.id, "2")],
        fixed_charges=[{"add_on_id": add_on.id, "units": "2"}],
        entitlements=[{"feature_code": "seats", "privileges": [{"privilege_code": "max", "value": "10"}]}],
        pay_in_advance=True,
    )
    assert made.id and made.charges_count == 2 and made.has_charges and made.pay_in_advance
    assert [ch.billable_metric.code for ch in made.charges] == ["api_calls", "storage_gb"]
    assert all(ch.id and ch.invoiceable for ch in made.charges)
    assert to_decimal(made.charges[0].properties.amount) == to_decimal(from_decimal("0.05"))
    assert made.fixed_charges[0].add_on.code == "setup" and to_decimal(made.fixed_charges[0].units) == 2
    assert made.entitlements[0].code == "seats" and made.entitlements[0].privileges[0].value == "10"
    assert client.billing.plans.get(id=made.id).plan == made
    assert [p.code for p in client.billing.plans.list()] == ["pro"]

    # Update: a new name, the charges replaced (a charge keeps its id when the input names it).
    upd = client.billing.plans.update(
        id=made.id,
        name="Pro 2",
        charges=[{**standard(calls.id, "0.04"), "id": made.charges[0].id}],
        mask={"paths": ["name", "charges"]},
    ).plan
    assert upd.name == "Pro 2" and upd.code == "pro" and upd.amount_cents == 50000
    assert [ch.id for ch in upd.charges] == [made.charges[0].id] and upd.charges_count == 1

    with pytest.raises(invora.AlreadyExists):
        plan(client, "pro", 1)
    with pytest.raises(invora.NotFound):
        plan(client, "basic", 1, [standard("no-such-metric", "1")])
    with pytest.raises(invora.InvalidArgument) as exc:
        client.billing.plans.create(amount_cents=1)
    assert violations(exc.value) == {"code", "name", "interval", "amount_currency"}
    with pytest.raises(invora.InvalidArgument) as exc:
        plan(client, "basic", 1, [{"billable_metric_id": calls.id, "charge_model": "CHARGE_MODEL_STANDARD"}])
    assert violations(exc.value) == {"charges[0].properties.amount"}
    with pytest.raises(invora.InvalidArgument):  # "ten" is no integer
        plan(
            client,
            "basic",
            1,
            entitlements=[
                {"feature_code": "seats", "privileges": [{"privilege_code": "max", "value": "ten"}]}
            ],
        )
    with pytest.raises(invora.InvalidArgument):
        plan(
            client,
            "basic",
            1,
            entitlements=[
                {"feature_code": "seats", "privileges": [{"privilege_code": "tier", "value": "c"}]}
            ],
        )
    with pytest.raises(invora.NotFound):
        plan(client, "basic", 1, entitlements=[{"feature_code": "nope"}])

    assert [a.code for a in client.billing.plans.list_add_ons()] == ["setup"]
    client.billing.plans.delete_add_on(id=add_on.id)
    with pytest.raises(invora.NotFound):
        client.billing.plans.get_add_on(id=add_on.id)
    client.billing.plans.delete(id=made.id)
    with pytest.raises(invora.NotFound):
        client.billing.plans.get(id=made.id)


def test_metrics_aggregations_the_sandbox_does_not_compute_are_refused(client: invora.Client) -> None:
    with pytest.raises(invora.InvalidArgument) as exc:
        client.billing.metrics.create(code="gb", name="GB", aggregation_type="AGGREGATION_TYPE_SUM_AGG")
    assert violations(exc.value) == {"field_name"}
    with pytest.raises(invora.Unimplemented) as un:
        metric(client, "w", "WEIGHTED_SUM", "x")
    assert "count, sum, max, unique count and latest" in un.value.message
    metric(client, "gb", "SUM", "gb")
    with pytest.raises(invora.AlreadyExists):
        metric(client, "gb", "COUNT")


def test_subscription_lifecycle_upgrade_downgrade_terminate(client: invora.Client) -> None:
    basic, pro = plan(client, "basic", 10000), plan(client, "pro", 50000)
    cust = client.billing.customers.create(external_id="acme", name="Acme", currency=SAR).customer
    assert cust.id and cust.display_name == "Acme" and cust.sequential_id
    with pytest.raises(invora.AlreadyExists):
        client.billing.customers.create(external_id="acme")
    assert client.billing.customers.get(external_id="acme").customer.id == cust.id

    with pytest.raises(invora.NotFound):
        client.billing.subscriptions.create(customer_id="nobody", plan_id=basic.id)
    with pytest.raises(invora.NotFound):
        client.billing.subscriptions.create(customer_id=cust.id, plan_id="no-plan")
    with pytest.raises(invora.InvalidArgument) as exc:
        client.billing.subscriptions.create()
    assert violations(exc.value) == {"customer_id", "plan_id"}

    sub = client.billing.subscriptions.create(
        customer_id=cust.id, plan_id=basic.id, external_id="acme-main", billing_time="BILLING_TIME_CALENDAR"
    ).subscription
    assert sub.status == 1  # ACTIVE
    start = sub.current_billing_period_started_at.ToDatetime()
    end = sub.current_billing_period_ending_at.ToDatetime()
    assert start <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) < end and end.day >= 28
    assert sub.plan.code == "basic" and sub.customer.external_id == "acme"
    with pytest.raises(invora.AlreadyExists):
        client.billing.subscriptions.create(customer_id=cust.id, plan_id=pro.id, external_id="acme-main")
    assert client.billing.plans.get(id=basic.id).plan.active_subscriptions_count == 1
    assert client.billing.customers.get(id=cust.id).customer.active_subscriptions_count == 1
    with pytest.raises(invora.FailedPrecondition) as held:
        client.billing.plans.delete(id=basic.id)
    assert held.value.reason == "PLAN_HAS_SUBSCRIPTIONS" and held.value.error_info is not None
    assert held.value.error_info.metadata["plan_id"] == basic.id

    # Upgrade: at once; the new subscription keeps the external id (usage keeps flowing to it).
    up = client.billing.subscriptions.create(
        customer_id=cust.id, plan_id=pro.id, subscription_id=sub.id
    ).subscription
    old = client.billing.subscriptions.get(id=sub.id).subscription
    assert up.status == 1 and up.external_id == "acme-main" and up.plan.code == "pro"
    assert old.status == 4 and old.HasField("terminated_at") and old.next_plan.code == "pro"
    assert old.next_subscription_type == 2  # UPGRADE
    assert client.billing.subscriptions.get(external_id="acme-main").subscription.id == up.id

    # Downgrade: pending until the current period ends; the active one announces its next plan.
    down = client.billing.subscriptions.create(
        customer_id=cust.id, plan_id=basic.id, subscription_id=up.id
    ).subscription
    cur = client.billing.subscriptions.get(id=up.id).subscription
    assert down.status == 3 and cur.status == 1 and cur.next_plan.code == "basic"
    assert cur.next_subscription_type == 1 and cur.next_subscription.id == down.id
    assert down.subscription_at.ToDatetime() > dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with pytest.raises(invora.FailedPrecondition):
        client.billing.subscriptions.create(customer_id=cust.id, plan_id=pro.id, subscription_id=sub.id)

    statuses = {s.id: s.status for s in client.billing.subscriptions.list()}
    assert statuses == {sub.id: 4, up.id: 1, down.id: 3}
    pending = client.billing.subscriptions.list(filter={"part": {"status": {"in_values": [3]}}})
    assert [s.id for s in pending] == [down.id]
    assert [s.id for s in client.billing.subscriptions.list(filter={"part": {"plan_code": "pro"}})] == [up.id]

    with pytest.raises(invora.FailedPrecondition, match="has 2 active or pending") as held:
        client.billing.customers.delete(id=cust.id)
    assert held.value.reason == "CUSTOMER_HAS_SUBSCRIPTIONS"
    # Terminating the active subscription cancels the pending downgrade.
    ended = client.billing.subscriptions.terminate(id=up.id).subscription
    assert ended.status == 4 and ended.HasField("terminated_at")
    assert client.billing.subscriptions.get(id=down.id).subscription.status == 2  # CANCELED
    with pytest.raises(invora.FailedPrecondition):
        client.billing.subscriptions.terminate(id=up.id)
    client.billing.customers.delete(id=cust.id)
    with pytest.raises(invora.NotFound):
        client.billing.customers.get(id=cust.id)


def test_subscription_overrides_and_future_start(client: invora.Client) -> None:
    calls = metric(client, "calls", "COUNT")
    base = plan(client, "base", 10000, [standard(calls.id, "1")])
    cust = client.billing.customers.create(external_id="c").customer
    sub = client.billing.subscriptions.create(
        customer_id=cust.id,
        plan_id=base.id,
        plan_overrides={
            "amount_cents": 8000,
            "charges": [
                {
                    "id": base.charges[0].id,
                    "billable_metric_id": calls.id,
                    "properties": {"amount": from_decimal("0.5")},
                }
            ],
        },
    ).subscription
    assert sub.plan.is_overridden and sub.plan.parent.id == base.id and sub.plan.amount_cents == 8000
    assert to_decimal(sub.plan.charges[0].properties.amount) == to_decimal(from_decimal("0.5"))
    assert client.billing.plans.get(id=base.id).plan.amount_cents == 10000  # the plan itself is unchanged
    later = timestamp_pb2.Timestamp()
    later.FromDatetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3))
    future = client.billing.subscriptions.create(
        customer_id=cust.id, plan_id=base.id, subscription_at=later
    ).subscription
    assert future.status == 3 and not future.HasField("started_at")
    assert (
        client.billing.subscriptions.terminate(id=future.id).subscription.status == 2
    )  # a pending one is canceled


def test_entitlements_derive_from_the_plan(client: invora.Client) -> None:
    client.billing.plans.create_feature(
        code="seats",
        name="Seats",
        privileges=[{"code": "max", "value_type": "PRIVILEGE_VALUE_TYPE_ENUM_INTEGER"}],
    )
    client.billing.plans.create_feature(code="sso", name="SSO")
    p = plan(
        client,
        "team",
        1000,
        entitlements=[{"feature_code": "seats", "privileges": [{"privilege_code": "max", "value": "5"}]}],
    )
    cust = client.billing.customers.create(external_id="t").customer
    sub = client.billing.subscriptions.create(customer_id=cust.id, plan_id=p.id).subscription
    subs = client.billing.subscriptions

    listed = subs.list_entitlements(subscription_id=sub.id)
    assert [(e.code, e.privileges[0].value) for e in listed] == [("seats", "5")]
    got = subs.create_or_update_entitlement(
        subscription_id=sub.id,
        entitlement={"feature_code": "seats", "privileges": [{"privilege_code": "max", "value": "12"}]},
    ).entitlement
    assert got.privileges[0].value == "12"
    subs.create_or_update_entitlement(subscription_id=sub.id, entitlement={"feature_code": "sso"})
    assert (
        subs.get_entitlement(subscription_id=sub.id, feature_code="seats").entitlement.privileges[0].value
        == "12"
    )
    assert sorted(e.code for e in subs.list_entitlements(subscription_id=sub.id)) == ["seats", "sso"]
    assert subs.remove_entitlement(subscription_id=sub.id, feature_code="seats").feature_code == "seats"
    with pytest.raises(invora.NotFound):
        subs.get_entitlement(subscription_id=sub.id, feature_code="seats")
    with pytest.raises(invora.NotFound):
        subs.remove_entitlement(subscription_id=sub.id, feature_code="seats")
    with pytest.raises(invora.NotFound):
        subs.create_or_update_entitlement(subscription_id=sub.id, entitlement={"feature_code": "nope"})
    assert [e.code for e in subs.list_entitlements(subscription_id=sub.id)] == ["sso"]


def test_usage_events_dedup_and_aggregate_into_current_usage(client: invora.Client) -> None:
    calls = metric(client, "api_calls", "COUNT")
    gb = metric(client, "storage_gb", "MAX", "gb")
    tokens = metric(client, "tokens", "SUM", "n")
    users = metric(client, "active_users", "UNIQUE_COUNT", "user")
    package = {
        "billable_metric_id": tokens.id,
        "charge_model": "CHARGE_MODEL_PACKAGE",
        "properties": {"amount": from_decimal("2"), "package_size": 1000, "free_units": 100},
    }
    graduated = {
        "billable_metric_id": users.id,
        "charge_model": "CHARGE_MODEL_GRADUATED",
        "properties": {
            "graduated_ranges": [
                {
                    "from_value": from_decimal(0),
                    "to_value": from_decimal(1),
                    "per_unit_amount": from_decimal(0),
                    "flat_amount": from_decimal(0),
                },
                {
                    "from_value": from_decimal(2),
                    "per_unit_amount": from_decimal("3.5"),
                    "flat_amount": from_decimal(1),
                },
            ]
        },
    }
    p = plan(client, "metered", 0, [standard(calls.id, "0.05"), standard(gb.id, "1.25"), package, graduated])
    cust = client.billing.customers.create(external_id="m").customer
    sub = client.billing.subscriptions.create(
        customer_id=cust.id, plan_id=p.id, external_id="m-sub"
    ).subscription

    def ev(tx: str, code: str, **props: Any) -> dict[str, Any]:
        return {"transaction_id": tx, "external_subscription_id": "m-sub", "code": code, "properties": props}

    events = client.billing.events
    events.batch_create(
        events=[
            ev("c1", "api_calls"),
            ev("c2", "api_calls"),
            ev("c2", "api_calls"),  # a duplicate inside the batch
            ev("g1", "storage_gb", gb=3),
            ev("g2", "storage_gb", gb="7.5"),
            ev("g3", "storage_gb", gb=5),
            ev("t1", "tokens", n=1500),
            ev("t2", "tokens", n=600),
            ev("u1", "active_users", user="ana"),
            ev("u2", "active_users", user="ben"),
            ev("u3", "active_users", user="ana"),
            ev("u4", "active_users", user="cy"),
        ]
    )
    events.create(**ev("c1", "api_calls"))  # a retried delivery: same transaction_id
    events.create(**ev("c3", "api_calls"))
    old = timestamp_pb2.Timestamp()
    old.FromDatetime(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400))
    events.create(**ev("c0", "api_calls"), timestamp=old)  # before the subscription: not this period's usage
    stored = list(events.list())
    assert len(stored) == 13 and len({e.transaction_id for e in stored}) == 13
    one = next(e for e in stored if e.transaction_id == "g2")
    got = events.get(id=one.id).event
    assert got.payload["gb"] == "7.5" and got.match_billable_metric and got.match_subscription
    assert got.HasField("received_at") and got.billable_metric_name == "storage_gb".replace("_", " ")
    assert [e.transaction_id for e in events.list(filter={"part": {"code": "tokens"}})] == ["t1", "t2"]

    usage = client.billing.customers.get_usage(customer_id=cust.id, subscription_id=sub.id).customer_usage
    by_code = {u.billable_metric.code: u for u in usage.charges_usage}
    expect = {
        "api_calls": (3, 3, 15),  # 3 events x 0.05
        "storage_gb": (7.5, 3, 938),  # max 7.5 x 1.25 = 9.375 SAR
        "tokens": (2100, 2, 400),  # 2000 paid units -> 2 packages x 2
        "active_users": (3, 4, 800),  # 1 free user, then 2 x 3.5 + 1 flat
    }
    assert {
        k: (float(to_decimal(u.units)), u.events_count, u.amount_cents) for k, u in by_code.items()
    } == expect
    assert usage.amount_cents == usage.total_amount_cents == 15 + 938 + 400 + 800
    assert usage.currency == 110 and usage.from_datetime.ToDatetime() <= usage.to_datetime.ToDatetime()

    portal = client.billing.accounts.get_customer_usage(subscription_id=sub.id).customer_usage
    assert portal.amount_cents == usage.amount_cents
    projected = client.billing.customers.get_projected_usage(customer_id=cust.id, subscription_id=sub.id)
    assert projected.customer_projected_usage.projected_amount_cents >= usage.amount_cents

    other = client.billing.customers.create(external_id="o").customer
    with pytest.raises(invora.NotFound):
        client.billing.customers.get_usage(customer_id=other.id, subscription_id=sub.id)
    client.billing.subscriptions.terminate(id=sub.id)
    with pytest.raises(invora.FailedPrecondition):
        client.billing.customers.get_usage(customer_id=cust.id, subscription_id=sub.id)

    with pytest.raises(invora.InvalidArgument) as exc:
        events.create(transaction_id="x")
    assert violations(exc.value) == {"external_subscription_id", "code"}
    with pytest.raises(invora.InvalidArgument) as exc:
        events.batch_create(events=[ev("ok", "api_calls"), {"transaction_id": "y", "code": "api_calls"}])
    assert violations(exc.value) == {"events[1].external_subscription_id"}
    with pytest.raises(invora.InvalidArgument):
        events.batch_create(events=[ev(f"b{i}", "api_calls") for i in range(101)])


def test_wallets_top_up_and_balance(client: invora.Client) -> None:
    calls = metric(client, "calls", "COUNT")
    p = plan(client, "prepaid", 0, [standard(calls.id, "0.5")])
    cust = client.billing.customers.create(external_id="w", currency=SAR).customer
    wallets = client.billing.wallets
    with pytest.raises(invora.NotFound):
        wallets.create(customer_id="nobody", paid_credits="1")
    with pytest.raises(invora.InvalidArgument):
        wallets.create(customer_id=cust.id, paid_credits="lots")
    w = wallets.create(
        customer_id=cust.id, name="Main", rate_amount="1.5", paid_credits="10", granted_credits="5"
    ).wallet
    assert (
        w.status == 1
        and w.currency == 110
        and to_decimal(w.credits_balance) == 15
        and w.balance_cents == 2250
    )
    tx = wallets.create_transaction(wallet_id=w.id, paid_credits="5").transaction
    assert to_decimal(tx.credit_amount) == 5 and to_decimal(tx.amount) == to_decimal(from_decimal("7.5"))
    assert tx.transaction_type == 1 and tx.status == 3  # INBOUND, SETTLED
    wallets.create_transaction(wallet_id=w.id, voided_credits="3")
    got = wallets.get(id=w.id).wallet
    assert (
        to_decimal(got.credits_balance) == 17
        and got.balance_cents == 2550
        and got.ongoing_balance_cents == 2550
    )
    assert len(list(wallets.list_transactions(wallet_id=w.id))) == 4
    assert wallets.get_transaction(wallet_id=w.id, id=tx.id).transaction.id == tx.id
    with pytest.raises(invora.FailedPrecondition):
        wallets.create_transaction(wallet_id=w.id, voided_credits="100")
    with pytest.raises(invora.InvalidArgument):
        wallets.create_transaction(wallet_id=w.id)

    # Current usage draws on the ongoing balance.
    sub = client.billing.subscriptions.create(
        customer_id=cust.id, plan_id=p.id, external_id="w-sub"
    ).subscription
    client.billing.events.batch_create(
        events=[
            {"transaction_id": f"w{i}", "external_subscription_id": "w-sub", "code": "calls"}
            for i in range(4)
        ]
    )
    got = wallets.get(id=w.id).wallet
    assert (
        got.ongoing_usage_balance_cents == 200
        and got.ongoing_balance_cents == 2350
        and got.balance_cents == 2550
    )
    assert [x.id for x in wallets.list(filter={"part": {"customer_id": cust.id}})] == [w.id]
    assert client.billing.accounts.get_wallet(id=w.id).customer_portal_wallet.balance_cents == 2550
    client.billing.subscriptions.terminate(id=sub.id)

    assert wallets.terminate(id=w.id).wallet.status == 2
    with pytest.raises(invora.FailedPrecondition):
        wallets.create_transaction(wallet_id=w.id, granted_credits="1")


def test_coupons_applied_to_customers(client: invora.Client) -> None:
    coupons = client.billing.coupons
    fixed = coupons.create(
        name="Welcome",
        code="WELCOME",
        coupon_type="COUPON_TYPE_FIXED_AMOUNT",
        amount_cents=5000,
        amount_currency=SAR,
        frequency="COUPON_FREQUENCY_ONCE",
        expiration="COUPON_EXPIRATION_NO_EXPIRATION",
        reusable=False,
    ).coupon
    assert fixed.status == 1 and fixed.id
    with pytest.raises(invora.InvalidArgument):
        coupons.create(
            name="Bad",
            coupon_type="COUPON_TYPE_PERCENTAGE",
            percentage_rate=from_decimal("150"),
            frequency="COUPON_FREQUENCY_ONCE",
            expiration="COUPON_EXPIRATION_NO_EXPIRATION",
        )
    pct = coupons.create(
        name="Ten",
        code="TEN",
        coupon_type="COUPON_TYPE_PERCENTAGE",
        percentage_rate=from_decimal("10"),
        frequency="COUPON_FREQUENCY_RECURRING",
        frequency_duration=3,
        expiration="COUPON_EXPIRATION_NO_EXPIRATION",
    ).coupon
    a = client.billing.customers.create(external_id="a").customer
    b = client.billing.customers.create(external_id="b").customer
    applied = coupons.create_applied_coupon(coupon_id=fixed.id, customer_id=a.id).applied_coupon
    assert applied.status == 1 and applied.amount_cents == 5000 and applied.amount_cents_remaining == 5000
    assert applied.coupon.code == "WELCOME" and applied.customer.external_id == "a"
    with pytest.raises(invora.AlreadyExists):
        coupons.create_applied_coupon(coupon_id=fixed.id, customer_id=a.id)
    coupons.create_applied_coupon(coupon_id=fixed.id, customer_id=b.id)
    p2 = coupons.create_applied_coupon(
        coupon_id=pct.id, customer_id=a.id, frequency_duration=6
    ).applied_coupon
    assert p2.frequency_duration == 6 and p2.frequency_duration_remaining == 6
    with pytest.raises(invora.NotFound):
        coupons.create_applied_coupon(coupon_id=pct.id, customer_id="nobody")

    assert len(list(coupons.list_applied_coupons())) == 3
    mine = coupons.list_applied_coupons(filter={"part": {"external_customer_id": "a"}})
    assert sorted(x.coupon.code for x in mine) == ["TEN", "WELCOME"]
    welcome = coupons.list_applied_coupons(filter={"part": {"coupon_code": {"in_values": ["WELCOME"]}}})
    assert sorted(x.customer.external_id for x in welcome) == ["a", "b"]
    assert sorted(c.coupon.code for c in client.billing.customers.get(id=a.id).customer.applied_coupons) == [
        "TEN",
        "WELCOME",
    ]
    assert coupons.get(id=fixed.id).coupon.applied_coupons_count == 2

    assert coupons.terminate_applied_coupon(id=applied.id).applied_coupon.status == 2
    assert [c.coupon.code for c in client.billing.customers.get(id=a.id).customer.applied_coupons] == ["TEN"]
    assert coupons.terminate(id=pct.id).coupon.status == 2
    with pytest.raises(invora.FailedPrecondition):
        coupons.create_applied_coupon(coupon_id=pct.id, customer_id=b.id)
    with pytest.raises(invora.FailedPrecondition):
        coupons.terminate(id=pct.id)


def test_documented_rest_bodies_succeed_and_old_paths_are_gone(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    t = sb.create_tenant("REST billing")
    headers = {"Authorization": f"Bearer {sb.mint_token(t)}"}
    with httpx.Client(base_url=sb.rest_url, headers=headers, timeout=10) as http:
        r = http.post(
            "/api/billing/v2/billable-metrics",
            json={"code": "api_calls", "name": "API calls", "aggregationType": "AGGREGATION_TYPE_COUNT_AGG"},
        )
        assert r.status_code == 200, r.text
        metric_id = r.json()["billableMetric"]["id"]
        # The guide's plan body; "amount" is a kernel.DecimalValue ({units, nanos}) in the current schema.
        body = {
            "code": "business_pro",
            "name": "Business Pro",
            "amountCents": 50000,
            "amountCurrency": "CURRENCY_ENUM_SAR",
            "interval": "PLAN_INTERVAL_MONTHLY",
            "payInAdvance": True,
            "charges": [
                {
                    "billableMetricId": metric_id,
                    "chargeModel": "CHARGE_MODEL_STANDARD",
                    "properties": {"amount": {"units": "0", "nanos": 50000000}},
                }
            ],
        }
        r = http.post("/api/billing/v2/plans", json=body)
        assert r.status_code == 200, r.text
        created = r.json()["plan"]
        assert (
            created["code"] == "business_pro" and created["charges"][0]["billableMetric"]["id"] == metric_id
        )
        r = http.post("/api/billing/v2/customers", json={"externalId": "cust_abc", "name": "Acme"})
        assert r.status_code == 200, r.text
        customer_id = r.json()["customer"]["id"]
        r = http.post(
            "/api/billing/v2/subscriptions",
            json={"customerId": customer_id, "planId": created["id"], "billingTime": "BILLING_TIME_CALENDAR"},
        )
        assert r.status_code == 200, r.text
        sub = r.json()["subscription"]
        assert sub["status"] == "STATUS_TYPE_ACTIVE" and sub["billingTime"] == "BILLING_TIME_CALENDAR"
        r = http.post(
            "/api/billing/v2/events",
            json={"transactionId": "tx-1", "externalSubscriptionId": sub["externalId"], "code": "api_calls"},
        )
        assert r.status_code == 200, r.text
        r = http.get(f"/api/billing/v2/customers/{customer_id}/subscriptions/{sub['id']}/usage")
        assert r.status_code == 200 and r.json()["customerUsage"]["amountCents"] == "5", r.text
        assert http.get(f"/api/billing/v2/plans/{created['id']}").json()["plan"]["name"] == "Business Pro"
        r = http.post(
            "/api/billing/v2/subscriptions", json={"customerId": "cust_nobody", "planId": created["id"]}
        )
        assert r.status_code == 404 and r.json()["message"]
        # Release 1.0.0 paths are not routed any more.
        for verb, path in (
            ("POST", "/api/v2/billing/plans"),
            ("GET", "/api/v2/billing/customers"),
            ("POST", "/api/v2/billing/events"),
        ):
            assert http.request(verb, path, json={} if verb == "POST" else None).status_code == 404, path


def test_documents_request_id_returns_the_first_response(invora_sandbox: Sandbox) -> None:
    sb = invora_sandbox
    t = sb.create_tenant("Docs idempotency")
    with RawCaller(sb.grpc_target, token=sb.mint_token(t)) as raw:
        first = raw.call("documents.create", request_id="r-1").details
        again = raw.call("documents.create", request_id="r-1").details
        assert again.id.key == first.id.key and raw.call("documents.list").total_count == 1
        other = raw.call("documents.create", request_id="r-2").details
        assert other.id.key != first.id.key
        frozen = raw.call(
            "documents.freeze", key=first.id.key, concurrency_stamp=first.concurrency_stamp, request_id="f-1"
        )
        repeat = raw.call(
            "documents.freeze", key=first.id.key, concurrency_stamp=first.concurrency_stamp, request_id="f-1"
        )
        assert repeat == frozen and frozen.details.edit_state == 3
        with pytest.raises(grpc.RpcError) as exc:  # a new request id runs again: already frozen
            raw.call(
                "documents.freeze",
                key=first.id.key,
                concurrency_stamp=frozen.details.concurrency_stamp,
                request_id="f-2",
            )
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_generic_crud_on_id_keyed_billing_resources(client: invora.Client) -> None:
    """Resources without domain behaviour (taxes here) get the generic store: flat requests, ``id`` keys."""
    taxes = client.billing.taxes
    tax = taxes.create(code="vat", name="VAT", rate=from_decimal("15")).tax
    assert tax.id and tax.code == "vat" and to_decimal(tax.rate) == 15 and tax.HasField("created_at")
    assert taxes.get(id=tax.id).tax == tax
    upd = taxes.update(id=tax.id, name="VAT (KSA)").tax
    assert upd.name == "VAT (KSA)" and upd.code == "vat" and upd.id == tax.id
    assert [t.name for t in taxes.list()] == ["VAT (KSA)"]
    assert [t.id for t in taxes.list(filter={"text_search": "ksa"})] == [tax.id]
    taxes.delete(id=tax.id)
    with pytest.raises(invora.NotFound):
        taxes.get(id=tax.id)
    with pytest.raises(invora.InvalidArgument):
        taxes.get(id="")


def test_billing_periods() -> None:
    from invora.sandbox.domain.billing._common import billing_period, m

    utc = dt.timezone.utc
    at = dt.datetime(2026, 5, 20, 13, 0, tzinfo=utc)
    anchor = dt.datetime(2026, 1, 31, 9, 30, tzinfo=utc)
    cal, ann = m.BILLING_TIME_CALENDAR, m.BILLING_TIME_ANNIVERSARY

    def d(*a: int) -> dt.datetime:
        return dt.datetime(*a, tzinfo=utc)

    assert billing_period(anchor, m.PLAN_INTERVAL_MONTHLY, cal, at) == (d(2026, 5, 1), d(2026, 6, 1))
    assert billing_period(anchor, m.PLAN_INTERVAL_QUARTERLY, cal, at) == (d(2026, 4, 1), d(2026, 7, 1))
    assert billing_period(anchor, m.PLAN_INTERVAL_YEARLY, cal, at) == (d(2026, 1, 1), d(2027, 1, 1))
    assert billing_period(anchor, m.PLAN_INTERVAL_WEEKLY, cal, at) == (d(2026, 5, 18), d(2026, 5, 25))
    # Anniversary: from the subscription's day; the 31st clamps to shorter months.
    assert billing_period(anchor, m.PLAN_INTERVAL_MONTHLY, ann, at) == (
        d(2026, 4, 30, 9, 30),
        d(2026, 5, 31, 9, 30),
    )
    assert billing_period(anchor, m.PLAN_INTERVAL_SEMIANNUAL, ann, at) == (anchor, d(2026, 7, 31, 9, 30))
    assert billing_period(anchor, m.PLAN_INTERVAL_WEEKLY, ann, at) == (
        d(2026, 5, 16, 9, 30),
        d(2026, 5, 23, 9, 30),
    )
