"""Who buys: customers, their subscriptions (plan changes, termination, entitlements), wallets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from invora._proto.invora.billing.subscriptions.v2 import service_pb2 as subs_pb2
from invora.sandbox.domain.billing import _common as c
from invora.sandbox.domain.billing.catalog import Plans, check_properties, plan_entitlement
from invora.sandbox.faults import invalid_argument, not_found
from invora.sandbox.store import Record, copy_matching, now_ts

m = c.m

ACTIVE, PENDING = m.STATUS_TYPE_ACTIVE, m.STATUS_TYPE_PENDING
TERMINATED, CANCELED = m.STATUS_TYPE_TERMINATED, m.STATUS_TYPE_CANCELED
_PER_YEAR = {
    m.PLAN_INTERVAL_WEEKLY: 52,
    m.PLAN_INTERVAL_MONTHLY: 12,
    m.PLAN_INTERVAL_QUARTERLY: 4,
    m.PLAN_INTERVAL_SEMIANNUAL: 2,
    m.PLAN_INTERVAL_YEARLY: 1,
}


def render_customer(ctx: Any, cust: Any) -> Any:
    out = c.copy(cust)
    subs = [s for s in c.coll(ctx, c.SUBSCRIPTION).values() if s.extra["customer_id"] == cust.id]
    out.active_subscriptions_count = sum(1 for s in subs if s.msg.status == ACTIVE)
    del out.applied_coupons[:]
    for a in c.coll(ctx, c.APPLIED_COUPON).values():
        if a.extra["customer_id"] == cust.id and a.msg.status == m.APPLIED_COUPON_STATUS_ACTIVE:
            ac = out.applied_coupons.add()
            ac.CopyFrom(a.msg)
            ac.ClearField("customer")
    return out


class Customers:
    """``CustomersService`` Create/Update/Get/List/Delete: unique ``external_id``, derived counters."""

    def create(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "external_id")
        with ctx.store.lock:
            c.unique(ctx, c.CUSTOMER, "external_id", request.external_id, "customer")
            cust = m.BillingCustomer(id=c.new_id(), created_at=now_ts(), updated_at=now_ts())
            copy_matching(request, cust)
            self._derive(ctx, cust)
            c.store(ctx, c.CUSTOMER, cust)
            return ctx.method.response_class(customer=render_customer(ctx, cust))

    def update(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.CUSTOMER, request.id, "customer", "id")
            cust = c.copy(rec.msg)
            paths = c.apply_update(request, cust)
            for p in paths - {f.name for f, _ in request.ListFields()}:
                if p in cust.DESCRIPTOR.fields_by_name and p not in ("id", "external_id"):
                    cust.ClearField(p)
            if not cust.external_id:
                raise c.required("external_id")
            if cust.external_id != rec.msg.external_id:
                c.unique(ctx, c.CUSTOMER, "external_id", cust.external_id, "customer", but=rec.key)
            self._derive(ctx, cust)
            rec.msg = cust
            return ctx.method.response_class(customer=render_customer(ctx, cust))

    @staticmethod
    def _derive(ctx: Any, cust: Any) -> None:
        full = " ".join(x for x in (cust.firstname, cust.lastname) if x)
        cust.display_name = cust.name or full or cust.external_id
        if not cust.sequential_id:
            cust.sequential_id = str(len(c.coll(ctx, c.CUSTOMER)) + 1)
            cust.slug = f"CUST-{int(cust.sequential_id):05d}"
        cust.updated_at.CopyFrom(now_ts())

    def get(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            advance(ctx)
            if not request.id and request.external_id:
                found = c.find_by(ctx, c.CUSTOMER, "external_id", request.external_id)
                if found is None:
                    raise not_found("customer", request.external_id)
                rec = found
            else:
                rec = c.fetch(ctx, c.CUSTOMER, request.id, "customer", "id")
            return ctx.method.response_class(customer=render_customer(ctx, rec.msg))

    def list(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            advance(ctx)
            recs = list(c.coll(ctx, c.CUSTOMER).values())
            return c.list_response(ctx, request, recs, lambda r: render_customer(ctx, r.msg))

    def delete(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            advance(ctx)
            rec = c.fetch(ctx, c.CUSTOMER, request.id, "customer", "id")
            c.delete_unsubscribed(ctx, c.CUSTOMER, rec, "customer", "customer_id")
            return ctx.method.response_class()


# -- subscriptions --------------------------------------------------------------------------------------


def advance(ctx: Any) -> None:
    """Time moves subscriptions on: a pending one starts at ``subscription_at`` (ending the one it
    replaces), an active one ends at ``ending_at``. Run before every read of subscriptions."""
    at = c.now()
    subs = c.coll(ctx, c.SUBSCRIPTION)
    for rec in list(subs.values()):
        sub = rec.msg
        if sub.status == PENDING and sub.HasField("subscription_at") and c.when(sub.subscription_at) <= at:
            prev = subs.get(rec.extra.get("previous_id", ""))
            if prev is not None and prev.msg.status == ACTIVE:
                _end(prev, sub.subscription_at, TERMINATED)
            _activate(rec, c.when(sub.subscription_at))
        if sub.status == ACTIVE and sub.HasField("ending_at") and c.when(sub.ending_at) <= at:
            _end(rec, sub.ending_at, TERMINATED)


def _activate(rec: Record, start: dt.datetime) -> None:
    sub = c.copy(rec.msg)
    sub.status = ACTIVE
    sub.started_at.CopyFrom(c.ts(start))
    _period(sub)
    rec.msg = sub


def _end(rec: Record, at: Any, status: int) -> None:
    sub = c.copy(rec.msg)
    sub.status = status
    (sub.terminated_at if status == TERMINATED else sub.canceled_at).CopyFrom(at)
    sub.updated_at.CopyFrom(now_ts())
    for f in ("current_billing_period_started_at", "current_billing_period_ending_at"):
        sub.ClearField(f)
    rec.msg = sub


def _period(sub: Any) -> None:
    start, end = c.period_of(sub, c.now())
    sub.current_billing_period_started_at.CopyFrom(c.ts(start))
    sub.current_billing_period_ending_at.CopyFrom(c.ts(end - dt.timedelta(seconds=1)))


def _yearly(plan: Any) -> int:
    return int(plan.amount_cents * _PER_YEAR.get(plan.interval, 12))


class Subscriptions:
    """``SubscriptionsService``: subscribe an existing customer to an existing plan (with overrides),
    change plan (``Create`` with ``subscription_id``: an upgrade replaces the subscription at once, a
    downgrade is pending until the current period ends), terminate, entitlements from the plan."""

    def create(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "customer_id", "plan_id")
        with ctx.store.lock:
            advance(ctx)
            cust = c.fetch(ctx, c.CUSTOMER, request.customer_id, "customer", "customer_id")
            plan = c.fetch(ctx, c.PLAN, request.plan_id, "plan", "plan_id").msg
            if request.subscription_id:
                return self._change_plan(ctx, request, cust, plan)
            ext = request.external_id or c.new_id()
            if any(s.msg.external_id == ext and c.live(s) for s in c.coll(ctx, c.SUBSCRIPTION).values()):
                raise c.already_exists("live subscription", "external_id", ext)
            at = c.now()
            start = c.when(request.subscription_at) if request.HasField("subscription_at") else at
            sub = self._new(ctx, request, cust, plan, ext, request.billing_time or m.BILLING_TIME_CALENDAR)
            sub.subscription_at.CopyFrom(c.ts(start))
            if request.HasField("ending_at"):
                if c.when(request.ending_at) <= start:
                    raise invalid_argument("ending_at must be after the subscription starts", "ending_at")
                sub.ending_at.CopyFrom(request.ending_at)
            rec = self._store(ctx, sub, cust, plan)
            if start <= at:
                _activate(rec, start)
            return ctx.method.response_class(subscription=rec.msg)

    def _new(self, ctx: Any, request: Any, cust: Record, plan: Any, ext: str, billing_time: int) -> Any:
        sub = m.BillingSubscription(
            id=c.new_id(), external_id=ext, billing_time=billing_time, status=PENDING, created_at=now_ts()
        )
        sub.updated_at.CopyFrom(sub.created_at)
        if request.HasField("name"):
            sub.name = request.name
        sub.plan.CopyFrom(self._overridden(ctx, plan, request))
        sub.customer.CopyFrom(render_customer(ctx, cust.msg))
        sub.charges.extend(sub.plan.charges)
        sub.fixed_charges.extend(sub.plan.fixed_charges)
        for ut in request.usage_thresholds:
            copy_matching(ut, sub.usage_thresholds.add())
        if request.HasField("progressive_billing_disabled"):
            sub.progressive_billing_disabled = request.progressive_billing_disabled
        return sub

    def _store(self, ctx: Any, sub: Any, cust: Record, plan: Any, **extra: Any) -> Record:
        return c.store(
            ctx,
            c.SUBSCRIPTION,
            sub,
            customer_id=cust.key,
            plan_id=plan.id,
            external_customer_id=cust.msg.external_id,
            plan_code=plan.code,
            overriden=sub.plan.is_overridden,
            entitlements={},
            removed=set(),
            **extra,
        )

    @staticmethod
    def _overridden(ctx: Any, plan: Any, request: Any) -> Any:
        """The plan as this subscription bills it: ``plan_overrides`` make a child plan of ``plan``."""
        out = Plans.render(ctx, plan)
        if not request.HasField("plan_overrides"):
            return out
        ov = request.plan_overrides
        parent = c.copy(out)
        for name in (
            "amount_cents",
            "amount_currency",
            "description",
            "invoice_display_name",
            "name",
            "trial_period",
        ):
            if ov.HasField(name):
                setattr(out, name, getattr(ov, name))
        for i, co in enumerate(ov.charges):
            target = next(
                (
                    ch
                    for ch in out.charges
                    if (co.HasField("id") and ch.id == co.id)
                    or (not co.HasField("id") and ch.billable_metric.id == co.billable_metric_id)
                ),
                None,
            )
            if target is None:
                raise invalid_argument(
                    "plan_overrides.charges names a charge the plan does not have (match by id or billable_metric_id)",
                    f"plan_overrides.charges[{i}]",
                    reason="UNKNOWN_CHARGE",
                )
            if co.HasField("properties"):
                check_properties(
                    target.charge_model, co.properties, f"plan_overrides.charges[{i}].properties"
                )
                target.ClearField("properties")
                copy_matching(co.properties, target.properties)
            for name in ("min_amount_cents", "invoice_display_name"):
                if co.HasField(name):
                    setattr(target, name, getattr(co, name))
            target.parent_id = target.id
        out.id = c.new_id()
        out.is_overridden = True
        parent.ClearField("parent")
        out.parent.CopyFrom(parent)
        return out

    def _change_plan(self, ctx: Any, request: Any, cust: Record, plan: Any) -> Any:
        old = c.fetch(ctx, c.SUBSCRIPTION, request.subscription_id, "subscription", "subscription_id")
        if old.extra["customer_id"] != cust.key:
            raise invalid_argument(
                f"subscription {old.key!r} belongs to another customer",
                "subscription_id",
                reason="CUSTOMER_MISMATCH",
            )
        if old.msg.status != ACTIVE:
            raise c.precondition(
                f"subscription {old.key!r} is not active: only an active subscription changes plan",
                "SUBSCRIPTION_NOT_ACTIVE",
                subscription_id=old.key,
            )
        if old.extra["plan_id"] == plan.id and not request.HasField("plan_overrides"):
            raise c.precondition(
                f"subscription {old.key!r} is already on plan {plan.code!r}", "SAME_PLAN", plan_id=plan.id
            )
        subs = c.coll(ctx, c.SUBSCRIPTION)
        for rec in list(subs.values()):  # a later change replaces a pending downgrade
            if rec.extra.get("previous_id") == old.key and rec.msg.status == PENDING:
                _end(rec, now_ts(), CANCELED)
        sub = self._new(ctx, request, cust, plan, old.msg.external_id, old.msg.billing_time)
        if not request.HasField("name") and old.msg.HasField("name"):
            sub.name = old.msg.name
        upgrade = _yearly(sub.plan) >= _yearly(old.msg.plan)
        prev = c.copy(old.msg)
        prev.next_plan.CopyFrom(sub.plan)
        prev.next_subscription_type = (
            m.NEXT_SUBSCRIPTION_TYPE_UPGRADE if upgrade else m.NEXT_SUBSCRIPTION_TYPE_DOWNGRADE
        )
        if sub.HasField("name"):
            prev.next_name = sub.name
        rec = self._store(ctx, sub, cust, plan, previous_id=old.key)
        if upgrade:
            at = now_ts()
            prev.next_subscription_at.CopyFrom(at)
            old.msg = prev
            _end(old, at, TERMINATED)
            _activate(rec, c.when(at))
        else:
            start = old.msg.current_billing_period_ending_at
            at = c.ts(c.when(start) + dt.timedelta(seconds=1))
            prev.next_subscription_at.CopyFrom(at)
            rec.msg.subscription_at.CopyFrom(at)
            old.msg = prev
        nxt = c.copy(rec.msg)
        old.msg.next_subscription.CopyFrom(nxt)
        return ctx.method.response_class(subscription=rec.msg)

    @staticmethod
    def _unended(ctx: Any, request: Any, ended: str) -> Record:
        """The subscription ``request.id`` names, while it is active or pending (else ``ended``)."""
        advance(ctx)
        rec = c.fetch(ctx, c.SUBSCRIPTION, request.id, "subscription", "id")
        if not c.live(rec):
            raise c.precondition(
                f"subscription {rec.key!r} {ended}", "SUBSCRIPTION_ENDED", subscription_id=rec.key
            )
        return rec

    def update(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = self._unended(ctx, request, "has ended and can no longer change")
            sub = c.copy(rec.msg)
            paths = set(request.mask.paths)

            def wanted(name: str) -> bool:
                return name in paths if paths else request.HasField(name)

            if wanted("name"):
                sub.name = request.name
            if wanted("ending_at"):
                sub.ClearField("ending_at")
                if request.HasField("ending_at"):
                    if c.when(request.ending_at) <= c.now():
                        raise invalid_argument("ending_at must be in the future", "ending_at")
                    sub.ending_at.CopyFrom(request.ending_at)
            if wanted("subscription_at"):
                if sub.status != PENDING:
                    raise c.precondition(
                        "subscription_at changes only while the subscription is pending",
                        "SUBSCRIPTION_STARTED",
                    )
                sub.subscription_at.CopyFrom(request.subscription_at)
            if wanted("progressive_billing_disabled"):
                sub.progressive_billing_disabled = request.progressive_billing_disabled
            if wanted("plan_overrides"):
                base = c.coll(ctx, c.PLAN).get(rec.extra["plan_id"])
                if base is None:
                    raise not_found("plan", rec.extra["plan_id"])
                sub.plan.CopyFrom(self._overridden(ctx, base.msg, request))
                del sub.charges[:]
                sub.charges.extend(sub.plan.charges)
                rec.extra["overriden"] = sub.plan.is_overridden
            sub.updated_at.CopyFrom(now_ts())
            rec.msg = sub
            advance(ctx)
            return ctx.method.response_class(subscription=rec.msg)

    def terminate(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = self._unended(ctx, request, "has already ended")
            at = now_ts()
            if rec.msg.status == PENDING:
                _end(rec, at, CANCELED)
            else:
                for other in c.coll(ctx, c.SUBSCRIPTION).values():
                    if other.extra.get("previous_id") == rec.key and other.msg.status == PENDING:
                        _end(other, at, CANCELED)
                _end(rec, at, TERMINATED)
            for name in ("on_termination_credit_note", "on_termination_invoice"):
                if request.HasField(name):
                    setattr(rec.msg, name, getattr(request, name))
            return ctx.method.response_class(subscription=rec.msg)

    def get(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            advance(ctx)
            return ctx.method.response_class(subscription=self._find(ctx, request).msg)

    @staticmethod
    def _find(ctx: Any, request: Any) -> Record:
        ext = getattr(request, "external_id", "")
        if request.id or not ext:
            return c.fetch(ctx, c.SUBSCRIPTION, request.id, "subscription", "id")
        subs = [s for s in c.coll(ctx, c.SUBSCRIPTION).values() if s.msg.external_id == ext]
        if not subs:
            raise not_found("subscription", ext)
        live = [s for s in subs if s.msg.status == ACTIVE]
        return (live or subs)[-1]

    def list(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            advance(ctx)
            recs = list(c.coll(ctx, c.SUBSCRIPTION).values())
            if ctx.method.full_name.startswith(c.ACCOUNTS) and request.HasField("filter"):
                request = c.copy(request)  # the portal's filter (months, expire_cache) is no condition
                request.ClearField("filter")
            return c.list_response(ctx, request, recs)

    # -- entitlements -----------------------------------------------------------------------------------
    def _entitled(self, ctx: Any, subscription_id: str) -> tuple[Record, dict[str, Any]]:
        """The subscription and its entitlements by feature code: the plan's (as the plan is now), with
        this subscription's overrides applied and removals dropped."""
        rec = c.fetch(ctx, c.SUBSCRIPTION, subscription_id, "subscription", "subscription_id")
        plan = c.coll(ctx, c.PLAN).get(rec.extra["plan_id"])
        base = list((plan.msg if plan is not None else rec.msg.plan).entitlements)
        if rec.msg.plan.is_overridden:
            base = list(rec.msg.plan.entitlements) or base
        out: dict[str, Any] = {}
        for pe in base:
            out[pe.code] = subs_pb2.SubscriptionEntitlement(code=pe.code, name=pe.name)
            if pe.HasField("description"):
                out[pe.code].description = pe.description
            for p in pe.privileges:
                out[pe.code].privileges.add(
                    code=p.code, config=p.config, name=p.name, value=p.value, value_type=p.value_type
                )
        for code, ent in rec.extra["entitlements"].items():
            out[code] = ent
        for code in rec.extra["removed"]:
            out.pop(code, None)
        return rec, out

    def create_or_update_entitlement(self, ctx: Any, request: Any) -> Any:
        if not request.HasField("entitlement"):
            raise c.required("entitlement")
        with ctx.store.lock:
            rec, current = self._entitled(ctx, request.subscription_id)
            pe = plan_entitlement(ctx, request.entitlement, "entitlement")
            ent = current.get(pe.code) or subs_pb2.SubscriptionEntitlement(code=pe.code, name=pe.name)
            if pe.HasField("description"):
                ent.description = pe.description
            values = {p.code: p for p in ent.privileges}
            for p in pe.privileges:
                values[p.code] = subs_pb2.SubscriptionEntitlementPrivilege(
                    code=p.code, config=p.config, name=p.name, value=p.value, value_type=p.value_type
                )
            del ent.privileges[:]
            ent.privileges.extend(values.values())
            rec.extra["entitlements"][pe.code] = ent
            rec.extra["removed"].discard(pe.code)
            return ctx.method.response_class(entitlement=ent)

    def _entitlement(self, ctx: Any, request: Any) -> tuple[Record, Any]:
        """The subscription and its entitlement to ``request.feature_code`` (NOT_FOUND without one)."""
        if not request.feature_code:
            raise c.required("feature_code")
        rec, current = self._entitled(ctx, request.subscription_id)
        ent = current.get(request.feature_code)
        if ent is None:
            raise not_found("entitlement", f"{rec.key}/{request.feature_code}")
        return rec, ent

    def get_entitlement(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            return ctx.method.response_class(entitlement=self._entitlement(ctx, request)[1])

    def list_entitlements(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            _, current = self._entitled(ctx, request.subscription_id)
            recs = [Record(code, ent, i) for i, (code, ent) in enumerate(current.items())]
            return c.list_response(ctx, request, recs)

    def remove_entitlement(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec, _ = self._entitlement(ctx, request)
            rec.extra["entitlements"].pop(request.feature_code, None)
            rec.extra["removed"].add(request.feature_code)
            return ctx.method.response_class(feature_code=request.feature_code)


def factories() -> dict[str, c.Factory]:
    out = c.handlers(
        c.CUSTOMERS,
        Customers,
        {"Create": "create", "Update": "update", "Get": "get", "List": "list", "Delete": "delete"},
    )
    subs = Subscriptions
    out.update(
        c.handlers(
            c.SUBSCRIPTIONS,
            subs,
            {
                "Create": "create",
                "Update": "update",
                "Terminate": "terminate",
                "Get": "get",
                "List": "list",
                "CreateOrUpdateEntitlement": "create_or_update_entitlement",
                "GetEntitlement": "get_entitlement",
                "ListEntitlements": "list_entitlements",
                "RemoveEntitlement": "remove_entitlement",
            },
        )
    )
    out.update(c.handlers(c.ACCOUNTS, subs, {"GetSubscription": "get", "ListSubscriptions": "list"}))
    return out
