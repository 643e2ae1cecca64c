"""What a business sells: billable metrics, plans (charges, fixed charges, entitlements), add-ons,
features, and coupons with their applications to customers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from invora.sandbox.domain.billing import _common as c
from invora.sandbox.faults import Fault, invalid_argument, not_found
from invora.sandbox.store import Record, copy_matching, now_ts

m = c.m

AGGREGATIONS = {
    m.AGGREGATION_TYPE_COUNT_AGG,
    m.AGGREGATION_TYPE_SUM_AGG,
    m.AGGREGATION_TYPE_MAX_AGG,
    m.AGGREGATION_TYPE_UNIQUE_COUNT_AGG,
    m.AGGREGATION_TYPE_LATEST_AGG,
}


class Metrics:
    """``BillableMetricsService`` Create/Update: the aggregations the sandbox computes, unique codes."""

    def create(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "code", "name", "aggregation_type")
        self._check(request)
        metric = c.create(ctx, request, c.METRIC, m.BillingBillableMetric, "billable metric")
        return ctx.method.response_class(billable_metric=metric)

    def update(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.METRIC, request.id, "billable metric", "id")
            metric = c.copy(rec.msg)
            c.apply_update(request, metric)
            self._check(metric)
            if metric.code != rec.msg.code:
                c.unique(ctx, c.METRIC, "code", metric.code, "billable metric", but=rec.key)
            metric.updated_at.CopyFrom(now_ts())
            rec.msg = metric
            return ctx.method.response_class(billable_metric=metric)

    @staticmethod
    def _check(msg: Any) -> None:
        agg = msg.aggregation_type
        if agg not in AGGREGATIONS:
            name = m.AggregationType.Name(agg) if agg in m.AggregationType.values() else str(agg)
            raise Fault(
                grpc.StatusCode.UNIMPLEMENTED,
                f"the sandbox aggregates usage by count, sum, max, unique count and latest, not {name}",
                reason="NOT_IMPLEMENTED_IN_SANDBOX",
                metadata={"aggregation_type": name},
            )
        if agg != m.AGGREGATION_TYPE_COUNT_AGG and not msg.field_name:
            raise invalid_argument(
                "field_name is required for every aggregation but count: it names the event property "
                "to aggregate",
                "field_name",
                reason="MISSING_FIELD",
            )


class Plans(c.Collection):
    """``PlansService``: plans whose charges name existing metrics, fixed charges existing add-ons and
    entitlements existing features; add-ons and features with unique codes."""

    name, what = c.PLAN, "plan"

    # -- plans ------------------------------------------------------------------------------------------
    def create(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "code", "name", "interval", "amount_currency")
        with ctx.store.lock:
            c.unique(ctx, c.PLAN, "code", request.code, "plan")
            plan = m.BillingPlan(id=c.new_id(), created_at=now_ts())
            self._apply(ctx, plan, request, set())
            c.store(ctx, c.PLAN, plan)
            return ctx.method.response_class(plan=self.render(ctx, plan))

    def update(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.PLAN, request.id, "plan", "id")
            plan = c.copy(rec.msg)
            self._apply(ctx, plan, request, set(request.mask.paths))
            if not plan.code or not plan.name:
                raise invalid_argument("a plan keeps a code and a name", "code" if not plan.code else "name")
            if plan.code != rec.msg.code:
                c.unique(ctx, c.PLAN, "code", plan.code, "plan", but=rec.key)
            rec.msg = plan
            return ctx.method.response_class(plan=self.render(ctx, plan))

    def delete(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.PLAN, request.id, "plan", "id")
            c.delete_unsubscribed(ctx, c.PLAN, rec, "plan", "plan_id")
            return ctx.method.response_class()

    def _apply(self, ctx: Any, plan: Any, request: Any, paths: set[str]) -> None:
        def wanted(name: str) -> bool:
            if paths:
                return name in paths
            f = request.DESCRIPTOR.fields_by_name[name]
            return request.HasField(name) if f.has_presence else bool(getattr(request, name))

        for name in (
            "amount_cents",
            "amount_currency",
            "bill_charges_monthly",
            "bill_fixed_charges_monthly",
            "code",
            "description",
            "interval",
            "invoice_display_name",
            "name",
            "pay_in_advance",
            "trial_period",
        ):
            if wanted(name):
                plan.ClearField(name)
                copy_matching(request, plan, only=[name])
        if plan.amount_cents < 0:
            raise invalid_argument("amount_cents must not be negative", "amount_cents")
        if wanted("charges"):
            old = {ch.id: ch for ch in plan.charges}
            del plan.charges[:]
            for i, ci in enumerate(request.charges):
                plan.charges.append(self._charge(ctx, ci, i, old, [ch.code for ch in plan.charges]))
        if wanted("fixed_charges"):
            del plan.fixed_charges[:]
            for i, fi in enumerate(request.fixed_charges):
                plan.fixed_charges.append(self._fixed_charge(ctx, fi, i))
        if wanted("entitlements"):
            del plan.entitlements[:]
            for i, ei in enumerate(request.entitlements):
                plan.entitlements.append(plan_entitlement(ctx, ei, f"entitlements[{i}]"))
        if wanted("metadata"):
            del plan.metadata[:]
            for md in request.metadata:
                plan.metadata.add(key=md.key, value=md.value)
        if wanted("usage_thresholds"):
            del plan.usage_thresholds[:]
            for ut in request.usage_thresholds:
                copy_matching(ut, plan.usage_thresholds.add())
        if wanted("minimum_commitment"):
            plan.ClearField("minimum_commitment")
            copy_matching(request.minimum_commitment, plan.minimum_commitment)
        plan.updated_at.CopyFrom(now_ts())

    def _charge(self, ctx: Any, ci: Any, i: int, old: dict[str, Any], codes: Sequence[str]) -> Any:
        path = f"charges[{i}]"
        if not ci.billable_metric_id:
            raise c.required(f"{path}.billable_metric_id")
        metric = c.coll(ctx, c.METRIC).get(ci.billable_metric_id)
        if metric is None:
            raise not_found("billable metric", ci.billable_metric_id)
        if not ci.charge_model:
            raise c.required(f"{path}.charge_model")
        check_properties(ci.charge_model, ci.properties, f"{path}.properties")
        prior = old.get(ci.id) if ci.HasField("id") else None
        charge = m.Charge(id=prior.id if prior is not None else c.new_id(), invoiceable=True)
        charge.created_at.CopyFrom(prior.created_at if prior is not None else now_ts())
        charge.updated_at.CopyFrom(now_ts())
        copy_matching(ci, charge)
        charge.id = prior.id if prior is not None else charge.id or c.new_id()
        if not ci.HasField("invoiceable"):
            charge.invoiceable = True
        charge.billable_metric.CopyFrom(metric.msg)
        code, n = metric.msg.code, 2
        while code in codes:
            code, n = f"{metric.msg.code}_{n}", n + 1
        charge.code = code
        return charge

    def _fixed_charge(self, ctx: Any, fi: Any, i: int) -> Any:
        if not fi.add_on_id:
            raise c.required(f"fixed_charges[{i}].add_on_id")
        add_on = c.coll(ctx, c.ADD_ON).get(fi.add_on_id)
        if add_on is None:
            raise not_found("add-on", fi.add_on_id)
        fc = m.FixedCharge(id=c.new_id(), code=add_on.msg.code, created_at=now_ts(), updated_at=now_ts())
        copy_matching(fi, fc)
        fc.add_on.CopyFrom(add_on.msg)
        fc.units.CopyFrom(c.dv(c.parse_amount(fi.units or "1", f"fixed_charges[{i}].units")))
        if not fc.charge_model:
            fc.charge_model = m.FIXED_CHARGE_CHARGE_MODEL_STANDARD
        return fc

    @staticmethod
    def render(ctx: Any, plan: Any) -> Any:
        """The stored plan with the counters the API derives from subscriptions and charges."""
        out = c.copy(plan)
        subs = [s for s in c.coll(ctx, c.SUBSCRIPTION).values() if s.extra["plan_id"] == plan.id]
        active = [s for s in subs if s.msg.status == m.STATUS_TYPE_ACTIVE]
        out.charges_count = len(out.charges)
        out.has_charges = bool(out.charges)
        out.fixed_charges_count = len(out.fixed_charges)
        out.has_fixed_charges = bool(out.fixed_charges)
        out.subscriptions_count = len(subs)
        out.has_subscriptions = bool(subs)
        out.active_subscriptions_count = len(active)
        out.has_active_subscriptions = bool(active)
        out.customers_count = len({s.extra["customer_id"] for s in subs})
        out.has_customers = bool(subs)
        return out

    # -- add-ons ----------------------------------------------------------------------------------------
    def create_add_on(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "code", "name", "amount_currency")
        if request.amount_cents < 0:
            raise invalid_argument("amount_cents must not be negative", "amount_cents")
        return ctx.method.response_class(add_on=c.create(ctx, request, c.ADD_ON, m.BillingAddOn, "add-on"))

    # -- features ---------------------------------------------------------------------------------------
    def create_feature(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "code")
        with ctx.store.lock:
            c.unique(ctx, c.FEATURE, "code", request.code, "feature")
            feature = m.FeatureObject(id=c.new_id(), code=request.code, created_at=now_ts())
            self._feature_fields(feature, request)
            c.store(ctx, c.FEATURE, feature)
            return ctx.method.response_class(feature=feature)

    def update_feature(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.FEATURE, request.id, "feature", "id")
            feature = c.copy(rec.msg)
            self._feature_fields(feature, request)
            rec.msg = feature
            return ctx.method.response_class(feature=feature)

    def get_feature(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            if request.id:
                rec = c.fetch(ctx, c.FEATURE, request.id, "feature", "id")
            elif request.code:
                found = c.find_by(ctx, c.FEATURE, "code", request.code)
                if found is None:
                    raise not_found("feature", request.code)
                rec = found
            else:
                raise c.required("id")
            return ctx.method.response_class(feature=rec.msg)

    def delete_feature(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.FEATURE, request.id, "feature", "id")
            del c.coll(ctx, c.FEATURE)[rec.key]
            return ctx.method.response_class(feature=rec.msg)

    @staticmethod
    def _feature_fields(feature: Any, request: Any) -> None:
        paths = set(request.mask.paths) if "mask" in request.DESCRIPTOR.fields_by_name else set()
        for name in ("name", "description"):
            if (name in paths) or (not paths and request.HasField(name)):
                setattr(feature, name, getattr(request, name))
        if "metadata" in paths or (not paths and request.metadata):
            del feature.metadata[:]
            for md in request.metadata:
                feature.metadata.add(key=md.key, value=md.value)
        if "privileges" in paths or (not paths and request.privileges):
            old = {p.code: p.id for p in feature.privileges}
            del feature.privileges[:]
            seen = set()
            for i, pi in enumerate(request.privileges):
                if not pi.code:
                    raise c.required(f"privileges[{i}].code")
                if pi.code in seen:
                    raise invalid_argument(
                        f"privilege code {pi.code!r} appears twice", f"privileges[{i}].code"
                    )
                seen.add(pi.code)
                p = feature.privileges.add(id=old.get(pi.code) or c.new_id(), code=pi.code)
                copy_matching(pi, p)
                if not p.value_type:
                    p.value_type = m.PRIVILEGE_VALUE_TYPE_ENUM_BOOLEAN
                if p.value_type == m.PRIVILEGE_VALUE_TYPE_ENUM_SELECT and not p.config.select_options:
                    raise invalid_argument(
                        "a select privilege needs config.select_options", f"privileges[{i}].config"
                    )


def check_properties(model: int, props: Any, path: str) -> None:
    """The properties each charge model prices with must be there (the sandbox prices these models)."""
    need = {
        m.CHARGE_MODEL_STANDARD: ("amount",),
        m.CHARGE_MODEL_PACKAGE: ("amount", "package_size"),
        m.CHARGE_MODEL_PERCENTAGE: ("rate",),
    }.get(model, ())
    for name in need:
        if not props.HasField(name):
            raise c.required(f"{path}.{name}")
    if model == m.CHARGE_MODEL_PACKAGE and props.package_size <= 0:
        raise invalid_argument("package_size must be positive", f"{path}.package_size")
    if model == m.CHARGE_MODEL_GRADUATED and not props.graduated_ranges:
        raise c.required(f"{path}.graduated_ranges")
    if model == m.CHARGE_MODEL_VOLUME and not props.volume_ranges:
        raise c.required(f"{path}.volume_ranges")


def plan_entitlement(ctx: Any, ei: Any, path: str) -> Any:
    """``EntitlementInput`` -> ``PlanEntitlement``: the feature must exist and every privilege value fit
    the privilege's type."""
    if not ei.feature_code:
        raise c.required(f"{path}.feature_code")
    rec = c.find_by(ctx, c.FEATURE, "code", ei.feature_code)
    if rec is None:
        raise not_found("feature", ei.feature_code)
    feature = rec.msg
    out = m.PlanEntitlement(code=feature.code, name=feature.name or feature.code)
    if feature.HasField("description"):
        out.description = feature.description
    privileges = {p.code: p for p in feature.privileges}
    for j, pi in enumerate(ei.privileges):
        p = privileges.get(pi.privilege_code)
        if p is None:
            raise invalid_argument(
                f"feature {feature.code!r} has no privilege {pi.privilege_code!r}",
                f"{path}.privileges[{j}].privilege_code",
                reason="UNKNOWN_PRIVILEGE",
            )
        check_privilege_value(p, pi.value, f"{path}.privileges[{j}].value")
        out.privileges.add(code=p.code, config=p.config, name=p.name, value=pi.value, value_type=p.value_type)
    return out


def check_privilege_value(p: Any, value: str, path: str) -> None:
    t = p.value_type
    ok = True
    if t == m.PRIVILEGE_VALUE_TYPE_ENUM_BOOLEAN:
        ok = value in ("true", "false")
    elif t == m.PRIVILEGE_VALUE_TYPE_ENUM_INTEGER:
        ok = value.lstrip("-").isdigit()
    elif t == m.PRIVILEGE_VALUE_TYPE_ENUM_SELECT:
        ok = value in p.config.select_options
    if not ok:
        kind = m.PrivilegeValueTypeEnum.Name(t).removeprefix("PRIVILEGE_VALUE_TYPE_ENUM_").lower()
        raise invalid_argument(f"{value!r} is not a valid {kind} value for privilege {p.code!r}", path)


class Coupons(c.Collection):
    """``CouponsService``: fixed-amount and percentage coupons, applied to customers once (unless
    reusable), terminated coupons no longer applicable."""

    name, what = c.COUPON, "coupon"

    def create(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "name", "coupon_type", "frequency", "expiration")
        self._check(request)
        with ctx.store.lock:
            if request.code:
                c.unique(ctx, c.COUPON, "code", request.code, "coupon")
            coupon = m.BillingCoupon(id=c.new_id(), status=m.COUPON_STATUS_ACTIVE, reusable=True)
            coupon.created_at.CopyFrom(now_ts())
            coupon.updated_at.CopyFrom(now_ts())
            copy_matching(request, coupon)
            self._limits(ctx, coupon, request)
            c.store(ctx, c.COUPON, coupon)
            return ctx.method.response_class(coupon=coupon)

    def update(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.COUPON, request.id, "coupon", "id")
            coupon = c.copy(rec.msg)
            c.apply_update(request, coupon, skip=("applies_to",))
            self._check(coupon)
            if request.HasField("applies_to"):
                self._limits(ctx, coupon, request)
            if coupon.code and coupon.code != rec.msg.code:
                c.unique(ctx, c.COUPON, "code", coupon.code, "coupon", but=rec.key)
            coupon.updated_at.CopyFrom(now_ts())
            rec.msg = coupon
            return ctx.method.response_class(coupon=coupon)

    def terminate(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.COUPON, request.id, "coupon", "id")
            if rec.msg.status == m.COUPON_STATUS_TERMINATED:
                raise c.precondition(f"coupon {rec.key!r} is already terminated", "ALREADY_TERMINATED")
            coupon = c.copy(rec.msg)
            coupon.status = m.COUPON_STATUS_TERMINATED
            coupon.terminated_at.CopyFrom(now_ts())
            rec.msg = coupon
            return ctx.method.response_class(coupon=coupon)

    @staticmethod
    def _check(coupon: Any) -> None:
        if coupon.coupon_type == m.COUPON_TYPE_FIXED_AMOUNT:
            if coupon.amount_cents <= 0:
                raise invalid_argument("a fixed-amount coupon needs a positive amount_cents", "amount_cents")
            if not coupon.amount_currency:
                raise c.required("amount_currency")
        elif coupon.coupon_type == m.COUPON_TYPE_PERCENTAGE:
            rate = c.dec(coupon.percentage_rate)
            if not 0 < rate <= 100:
                raise invalid_argument("percentage_rate must be above 0 and at most 100", "percentage_rate")
        if coupon.frequency == m.COUPON_FREQUENCY_RECURRING and coupon.frequency_duration <= 0:
            raise invalid_argument(
                "a recurring coupon needs a positive frequency_duration", "frequency_duration"
            )
        if coupon.expiration == m.COUPON_EXPIRATION_TIME_LIMIT and not coupon.HasField("expiration_at"):
            raise c.required("expiration_at")

    @staticmethod
    def _limits(ctx: Any, coupon: Any, request: Any) -> None:
        del coupon.plans[:]
        del coupon.billable_metrics[:]
        for pid in request.applies_to.plan_ids:
            coupon.plans.append(c.fetch(ctx, c.PLAN, pid, "plan", "applies_to.plan_ids").msg)
        for mid in request.applies_to.billable_metric_ids:
            coupon.billable_metrics.append(
                c.fetch(ctx, c.METRIC, mid, "billable metric", "applies_to.billable_metric_ids").msg
            )
        coupon.limited_plans = bool(coupon.plans)
        coupon.limited_billable_metrics = bool(coupon.billable_metrics)

    def render(self, ctx: Any, coupon: Any) -> Any:
        out = c.copy(coupon)
        applied = [a for a in c.coll(ctx, c.APPLIED_COUPON).values() if a.extra["coupon_id"] == coupon.id]
        out.applied_coupons_count = len(applied)
        out.customers_count = len({a.extra["customer_id"] for a in applied})
        return out

    def list(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            recs = list(c.coll(ctx, c.COUPON).values())
            for r in recs:
                r.extra["coupon_code"] = r.msg.code
            return c.list_response(
                ctx, request, _coupon_filter(request, recs), lambda r: self.render(ctx, r.msg)
            )

    # -- applied coupons --------------------------------------------------------------------------------
    def create_applied_coupon(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            coupon = c.fetch(ctx, c.COUPON, request.coupon_id, "coupon", "coupon_id").msg
            customer = c.fetch(ctx, c.CUSTOMER, request.customer_id, "customer", "customer_id").msg
            if coupon.status != m.COUPON_STATUS_ACTIVE:
                raise c.precondition(f"coupon {coupon.id!r} is terminated", "COUPON_TERMINATED")
            if coupon.HasField("expiration_at") and c.when(coupon.expiration_at) <= c.now():
                raise c.precondition(f"coupon {coupon.id!r} has expired", "COUPON_EXPIRED")
            mine = [
                a
                for a in c.coll(ctx, c.APPLIED_COUPON).values()
                if a.extra["customer_id"] == customer.id and a.msg.status == m.APPLIED_COUPON_STATUS_ACTIVE
            ]
            if not coupon.reusable and any(a.extra["coupon_id"] == coupon.id for a in mine):
                raise already_applied(coupon.id, customer.id)
            applied = m.AppliedCoupon(
                id=c.new_id(), status=m.APPLIED_COUPON_STATUS_ACTIVE, created_at=now_ts()
            )
            for name in (
                "amount_cents",
                "amount_currency",
                "frequency",
                "frequency_duration",
                "percentage_rate",
            ):
                src = request if _has(request, name) else coupon
                if _has(src, name):
                    copy_matching(src, applied, only=[name])
            if applied.HasField("amount_cents"):
                applied.amount_cents_remaining = applied.amount_cents
            if applied.HasField("frequency_duration"):
                applied.frequency_duration_remaining = applied.frequency_duration
            applied.coupon.CopyFrom(coupon)
            applied.customer.CopyFrom(customer)
            c.store(ctx, c.APPLIED_COUPON, applied, coupon_id=coupon.id, customer_id=customer.id)
            return ctx.method.response_class(applied_coupon=applied)

    def terminate_applied_coupon(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.APPLIED_COUPON, request.id, "applied coupon", "id")
            if rec.msg.status == m.APPLIED_COUPON_STATUS_TERMINATED:
                raise c.precondition(
                    f"applied coupon {rec.key!r} is already terminated", "ALREADY_TERMINATED"
                )
            applied = c.copy(rec.msg)
            applied.status = m.APPLIED_COUPON_STATUS_TERMINATED
            applied.terminated_at.CopyFrom(now_ts())
            rec.msg = applied
            return ctx.method.response_class(applied_coupon=applied)

    def list_applied_coupons(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            recs = list(c.coll(ctx, c.APPLIED_COUPON).values())
            for r in recs:
                r.extra["coupon_code"] = r.msg.coupon.code
                r.extra["external_customer_id"] = r.msg.customer.external_id
            return c.list_response(ctx, request, _coupon_filter(request, recs))


def _coupon_filter(request: Any, recs: list[Record]) -> list[Record]:
    """The coupons filter names the applied coupon's coupon code and customer: the part is interpreted
    here (``coupon_code`` in_values, ``external_customer_id``, ``status``)."""
    if not request.HasField("filter"):
        return recs
    part = request.filter.part
    kind = part.WhichOneof("type")
    if kind == "coupon_code":
        wanted = set(part.coupon_code.in_values)
        return [r for r in recs if not wanted or r.extra.get("coupon_code") in wanted]
    if kind == "external_customer_id":
        return [r for r in recs if r.extra.get("external_customer_id", "") == part.external_customer_id]
    if kind == "status":
        return [r for r in recs if r.msg.status == part.status]
    return recs


def _has(msg: Any, name: str) -> bool:
    f = msg.DESCRIPTOR.fields_by_name[name]
    return bool(msg.HasField(name)) if f.has_presence else bool(getattr(msg, name))


def already_applied(coupon_id: str, customer_id: str) -> Fault:
    return Fault(
        grpc.StatusCode.ALREADY_EXISTS,
        f"coupon {coupon_id!r} is not reusable and already applied to customer {customer_id!r}",
        reason="COUPON_ALREADY_APPLIED",
        metadata={"coupon_id": coupon_id, "customer_id": customer_id},
    )


def factories() -> dict[str, c.Factory]:
    out: dict[str, c.Factory] = {}
    out.update(c.handlers(c.METRICS, Metrics, {"Create": "create", "Update": "update"}))
    out.update(
        c.handlers(
            c.PLANS,
            Plans,
            {
                "Create": "create",
                "Update": "update",
                "Delete": "delete",
                "Get": "get",
                "List": "list",
                "CreateAddOn": "create_add_on",
                "CreateFeature": "create_feature",
                "UpdateFeature": "update_feature",
                "GetFeature": "get_feature",
                "DeleteFeature": "delete_feature",
            },
        )
    )
    out.update(
        c.handlers(
            c.COUPONS,
            Coupons,
            {
                "Create": "create",
                "Update": "update",
                "Get": "get",
                "List": "list",
                "Terminate": "terminate",
                "CreateAppliedCoupon": "create_applied_coupon",
                "TerminateAppliedCoupon": "terminate_applied_coupon",
                "ListAppliedCoupons": "list_applied_coupons",
            },
        )
    )
    return out
