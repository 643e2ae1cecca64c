"""Usage: events deduplicated by ``transaction_id``, aggregated per billable metric over the
subscription's current billing period and priced by the plan's charges.

A repeated ``transaction_id`` (in a later call or within one batch) keeps the stored event and records no
duplicate, as the billing engine does, so retried ingestion never double-counts usage.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import grpc

from invora._proto.invora.billing.events.v2 import service_pb2 as events_pb2
from invora.sandbox.domain.billing import _common as c
from invora.sandbox.domain.billing.accounts import advance
from invora.sandbox.faults import Fault, bad_request, invalid_argument, not_found
from invora.sandbox.store import Record, now_ts

m = c.m

MAX_BATCH = 100
_REQUIRED = ("transaction_id", "external_subscription_id", "code")
D = decimal.Decimal


class Events:
    def _validate(self, ev: Any, prefix: str) -> list[tuple[str, str]]:
        return [(f"{prefix}{n}", f"{n} is required") for n in _REQUIRED if not getattr(ev, n).strip()]

    def _store(self, ctx: Any, ev: Any) -> bool:
        """Store one event; ``False`` when its transaction_id is already known (a duplicate)."""
        index = c.coll(ctx, c.EVENT_TX)
        if ev.transaction_id in index:
            return False
        e = events_pb2.Event(
            id=c.new_id(),
            transaction_id=ev.transaction_id,
            external_subscription_id=ev.external_subscription_id,
            code=ev.code,
        )
        if ev.HasField("properties"):
            e.payload.CopyFrom(ev.properties)
        received = now_ts()
        e.timestamp.CopyFrom(ev.timestamp if ev.HasField("timestamp") else received)
        e.received_at.CopyFrom(received)
        metric = c.find_by(ctx, c.METRIC, "code", ev.code)
        e.match_billable_metric = metric is not None
        if metric is not None:
            e.billable_metric_name = metric.msg.name
        e.match_subscription = any(
            s.msg.external_id == ev.external_subscription_id for s in c.coll(ctx, c.SUBSCRIPTION).values()
        )
        rec = c.store(ctx, c.EVENT, e)
        index[ev.transaction_id] = Record(ev.transaction_id, rec.key, rec.seq)
        return True

    def create(self, ctx: Any, request: Any) -> Any:
        problems = self._validate(request, "")
        if problems:
            raise _invalid(problems)
        with ctx.store.lock:
            self._store(ctx, request)
        return ctx.method.response_class()

    def batch_create(self, ctx: Any, request: Any) -> Any:
        if not request.events:
            raise invalid_argument("events must hold at least one event", "events", reason="MISSING_FIELD")
        if len(request.events) > MAX_BATCH:
            raise invalid_argument(
                f"at most {MAX_BATCH} events per batch", "events", reason="BATCH_TOO_LARGE"
            )
        problems = [p for i, ev in enumerate(request.events) for p in self._validate(ev, f"events[{i}].")]
        if problems:
            raise _invalid(problems)
        with ctx.store.lock:
            for ev in request.events:
                self._store(ctx, ev)
        return ctx.method.response_class()


def _invalid(problems: list[tuple[str, str]]) -> Fault:
    return Fault(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid usage event: {problems[0][0]}: {problems[0][1]}",
        reason="INVALID_EVENT",
        details=[bad_request(problems)],
    )


# -- aggregation and pricing ----------------------------------------------------------------------------


def _number(value: Any) -> D | None:
    kind = value.WhichOneof("kind")
    try:
        if kind == "number_value":
            return D(repr(value.number_value)) if math.isfinite(value.number_value) else None
        if kind == "string_value":
            d = D(value.string_value.strip())
            return d if d.is_finite() else None
    except decimal.InvalidOperation:
        return None
    return None


def aggregate(metric: Any, events: list[Any]) -> D:
    """count / sum / max / unique count / latest of the metric's ``field_name`` over ``events``."""
    agg = metric.aggregation_type
    if agg == m.AGGREGATION_TYPE_COUNT_AGG:
        return D(len(events))
    values = [ev.payload.fields[metric.field_name] for ev in events if metric.field_name in ev.payload.fields]
    if agg == m.AGGREGATION_TYPE_UNIQUE_COUNT_AGG:
        return D(len({v.SerializeToString(deterministic=True) for v in values}))
    numbers = [n for n in (_number(v) for v in values) if n is not None]
    if agg == m.AGGREGATION_TYPE_SUM_AGG:
        return sum(numbers, D(0))
    if agg == m.AGGREGATION_TYPE_MAX_AGG:
        return max(numbers, default=D(0))
    if agg == m.AGGREGATION_TYPE_LATEST_AGG:
        latest = [
            (c.when(ev.timestamp), n)
            for ev in events
            if metric.field_name in ev.payload.fields
            for n in [_number(ev.payload.fields[metric.field_name])]
            if n is not None
        ]
        return max(latest, key=lambda t: t[0])[1] if latest else D(0)
    return D(0)


def price(charge: Any, units: D, events_count: int) -> D:
    """The charge's amount (major currency units) for ``units``: standard, package, graduated, volume
    and percentage models; other models are not priced by the sandbox (0)."""
    p = charge.properties
    model = charge.charge_model
    if units <= 0 and model != m.CHARGE_MODEL_PERCENTAGE:
        return D(0)
    if model == m.CHARGE_MODEL_STANDARD:
        return units * c.dec(p.amount)
    if model == m.CHARGE_MODEL_PACKAGE:
        paid = max(D(0), units - D(p.free_units))
        return D(math.ceil(paid / D(max(1, p.package_size)))) * c.dec(p.amount)
    if model == m.CHARGE_MODEL_GRADUATED:
        total, lower = D(0), D(0)
        for r in sorted(p.graduated_ranges, key=lambda r: c.dec(r.from_value)):
            upper = c.dec(r.to_value) if r.HasField("to_value") else None
            covered = (units if upper is None else min(units, upper)) - lower
            if covered <= 0:
                break
            total += covered * c.dec(r.per_unit_amount) + c.dec(r.flat_amount)
            if upper is None:
                break
            lower = upper
        return total
    if model == m.CHARGE_MODEL_VOLUME:
        for r in sorted(p.volume_ranges, key=lambda r: r.from_value):
            if not r.HasField("to_value") or units <= r.to_value:
                return units * c.dec(r.per_unit_amount) + c.dec(r.flat_amount)
        return D(0)
    if model == m.CHARGE_MODEL_PERCENTAGE:
        fixed = D(p.fixed_amount) if p.HasField("fixed_amount") and p.fixed_amount.strip() else D(0)
        return units * c.dec(p.rate) / 100 + fixed * events_count
    return D(0)


def usage(ctx: Any, sub: Any, *, projected: bool = False) -> Any:
    """``CustomerUsage`` (or ``CustomerProjectedUsage``) of ``sub`` for its current period."""
    at = c.now()
    start, end = c.period_of(sub, at)
    events = [
        r.msg
        for r in c.coll(ctx, c.EVENT).values()
        if r.msg.external_subscription_id == sub.external_id and start <= c.when(r.msg.timestamp) < end
    ]
    currency = sub.plan.amount_currency
    out: Any = m.CustomerProjectedUsage() if projected else m.CustomerUsage()
    out.currency = currency
    out.from_datetime.CopyFrom(c.ts(start))
    out.to_datetime.CopyFrom(c.ts(end - dt.timedelta(seconds=1)))
    out.issuing_date.year, out.issuing_date.month, out.issuing_date.day = end.year, end.month, end.day
    # Projection by whole days, as a billing engine projects: the days so far (at least one) to the period's.
    day = dt.timedelta(days=1)
    ratio = D(math.ceil((end - start) / day)) / D(max(1, math.ceil((at - start) / day)))
    for charge in sub.plan.charges:
        metric = charge.billable_metric
        mine = [e for e in events if e.code == metric.code]
        units = aggregate(metric, mine)
        cents = c.to_cents(price(charge, units, len(mine)), currency)
        cu = out.charges_usage.add(id=charge.id, events_count=len(mine), amount_cents=cents)
        cu.billable_metric.CopyFrom(metric)
        cu.charge.CopyFrom(charge)
        cu.units.CopyFrom(c.dv(units))
        out.amount_cents += cents
        if projected:
            p_units = (
                units
                if metric.aggregation_type in (m.AGGREGATION_TYPE_MAX_AGG, m.AGGREGATION_TYPE_LATEST_AGG)
                else units * ratio
            )
            p_cents = c.to_cents(price(charge, p_units, len(mine)), currency)
            cu.projected_units.CopyFrom(c.dv(p_units.quantize(D("1e-9"))))
            cu.projected_amount_cents = p_cents
            out.projected_amount_cents += p_cents
    out.total_amount_cents = out.amount_cents
    return out


class Usage:
    """``CustomersService.GetUsage``/``GetProjectedUsage`` and the account portal's twins."""

    def _sub(self, ctx: Any, sub_id: str, customer_id: str | None) -> Any:
        if customer_id is not None:
            c.fetch(ctx, c.CUSTOMER, customer_id, "customer", "customer_id")
        rec = c.fetch(ctx, c.SUBSCRIPTION, sub_id, "subscription", "subscription_id")
        advance(ctx)
        if customer_id is not None and rec.extra["customer_id"] != customer_id:
            raise not_found("subscription", f"{customer_id}/{sub_id}")
        if rec.msg.status != m.STATUS_TYPE_ACTIVE:
            name = m.StatusType.Name(rec.msg.status).removeprefix("STATUS_TYPE_").lower()
            raise c.precondition(
                f"subscription {sub_id!r} is {name}: current usage exists for active subscriptions only",
                "SUBSCRIPTION_NOT_ACTIVE",
                subscription_id=sub_id,
            )
        return rec.msg

    def get_usage(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            sub = self._sub(ctx, request.subscription_id, request.customer_id)
            return ctx.method.response_class(customer_usage=usage(ctx, sub))

    def get_projected_usage(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            sub = self._sub(ctx, request.subscription_id, request.customer_id)
            return ctx.method.response_class(customer_projected_usage=usage(ctx, sub, projected=True))

    def get_customer_usage(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            sub = self._sub(ctx, request.subscription_id, None)
            return ctx.method.response_class(customer_usage=usage(ctx, sub))

    def get_customer_projected_usage(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            sub = self._sub(ctx, request.subscription_id, None)
            return ctx.method.response_class(customer_projected_usage=usage(ctx, sub, projected=True))


def factories() -> dict[str, c.Factory]:
    out = c.handlers(c.EVENTS, Events, {"Create": "create", "BatchCreate": "batch_create"})
    out.update(
        c.handlers(c.CUSTOMERS, Usage, {"GetUsage": "get_usage", "GetProjectedUsage": "get_projected_usage"})
    )
    out.update(
        c.handlers(
            c.ACCOUNTS,
            Usage,
            {
                "GetCustomerUsage": "get_customer_usage",
                "GetCustomerProjectedUsage": "get_customer_projected_usage",
            },
        )
    )
    return out
