"""What the billing handlers share: collections, money, billing periods, faults and listing.

Billing entities live in the generic store's collections (``<service>:<entity type>``), so the generic
Get/List/Delete handlers and the domain handlers see the same records.
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import grpc
from google.protobuf import timestamp_pb2

from invora._proto.invora.billing.common.v2 import models_pb2
from invora.decimal import from_decimal, to_decimal
from invora.sandbox import listing
from invora.sandbox.faults import Fault, bad_request, invalid_argument, not_found
from invora.sandbox.store import Record, copy_matching, filter_records, get_attr, now_ts

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.sandbox.app import Sandbox
    from invora.sandbox.store import CallContext, GenericService, Handler

m: Any = models_pb2  # enum values as plain ints (the generated stubs type them as NewTypes)

D = decimal.Decimal
Factory = Callable[["Sandbox", "MethodInfo", "GenericService"], "Handler"]

P = "invora.billing"
METRICS = f"{P}.metering.v2.BillableMetricsService"
PLANS = f"{P}.plans.v2.PlansService"
CUSTOMERS = f"{P}.customers.v2.CustomersService"
SUBSCRIPTIONS = f"{P}.subscriptions.v2.SubscriptionsService"
EVENTS = f"{P}.events.v2.EventsService"
WALLETS = f"{P}.wallets.v2.WalletsService"
COUPONS = f"{P}.coupons.v2.CouponsService"
ACCOUNTS = f"{P}.account.v2.AccountsService"
_M = "invora.billing.common.v2"

# Collection names, as the generic store names them for each service's entity type.
METRIC = f"{METRICS}:{_M}.BillingBillableMetric"
PLAN = f"{PLANS}:{_M}.BillingPlan"
ADD_ON = f"{PLANS}:{_M}.BillingAddOn"
FEATURE = f"{PLANS}:{_M}.FeatureObject"
CUSTOMER = f"{CUSTOMERS}:{_M}.BillingCustomer"
SUBSCRIPTION = f"{SUBSCRIPTIONS}:{_M}.BillingSubscription"
EVENT = f"{EVENTS}:{P}.events.v2.Event"
EVENT_TX = f"{EVENTS}:transaction_id"  # transaction_id -> event id (the dedup index)
WALLET = f"{WALLETS}:{_M}.BillingWallet"
WALLET_TX = f"{WALLETS}:{_M}.BillingWalletTransaction"
COUPON = f"{COUPONS}:{_M}.BillingCoupon"
APPLIED_COUPON = f"{COUPONS}:{_M}.AppliedCoupon"

# Currencies whose minor unit is not 1/100 (ISO 4217); amounts in cents follow the minor unit.
_EXPONENT = {"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3}
_EXPONENT.update(dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0))
_EXPONENT.update(dict.fromkeys(("RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0))


def new_id() -> str:
    return str(uuid.uuid4())


def coll(ctx: CallContext, name: str) -> dict[str, Record]:
    return ctx.store.coll(ctx.org, name)


def fetch(ctx: CallContext, name: str, key: str, what: str, field: str) -> Record:
    """The record ``key`` of ``name``; INVALID_ARGUMENT when ``key`` is empty, NOT_FOUND when unknown."""
    if not key:
        raise required(field)
    rec = coll(ctx, name).get(key)
    if rec is None:
        raise not_found(what, key)
    return rec


def find_by(ctx: CallContext, name: str, field: str, value: str) -> Record | None:
    for rec in coll(ctx, name).values():
        if getattr(rec.msg, field) == value:
            return rec
    return None


def store(ctx: CallContext, name: str, msg: Any, **extra: Any) -> Record:
    rec = Record(msg.id, msg, ctx.store.next_seq(), dict(extra))
    coll(ctx, name)[msg.id] = rec
    return rec


def copy(msg: Any) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def create(ctx: CallContext, request: Any, name: str, cls: Any, what: str) -> Any:
    """A new ``cls`` entity of ``name`` from the request's matching fields, unique by ``code``."""
    with ctx.store.lock:
        unique(ctx, name, "code", request.code, what)
        msg = cls(id=new_id(), created_at=now_ts(), updated_at=now_ts())
        copy_matching(request, msg)
        store(ctx, name, msg)
        return msg


def live(rec: Record) -> bool:
    """A subscription that is active or pending (it still bills, or will)."""
    return rec.msg.status in (m.STATUS_TYPE_ACTIVE, m.STATUS_TYPE_PENDING)


def delete_unsubscribed(ctx: CallContext, name: str, rec: Record, what: str, key: str) -> None:
    """Delete ``rec`` unless a live subscription refers to it by ``key`` (``plan_id``, ``customer_id``)."""
    subs = [s for s in coll(ctx, SUBSCRIPTION).values() if live(s) and s.extra[key] == rec.key]
    if subs:
        raise precondition(
            f"{what} {rec.key!r} has {len(subs)} active or pending subscription(s): terminate them first",
            f"{what.upper()}_HAS_SUBSCRIPTIONS",
            **{key: rec.key},
        )
    del coll(ctx, name)[rec.key]


class Collection:
    """``Get`` and ``List`` over one collection, each entity rendered with what the API derives for it."""

    name: ClassVar[str]  # the collection
    what: ClassVar[str]  # the entity, in messages ("wallet"); its response field, with spaces as "_"

    def render(self, ctx: CallContext, msg: Any) -> Any:
        return msg

    def get(self, ctx: CallContext, request: Any) -> Any:
        with ctx.store.lock:
            rec = fetch(ctx, self.name, request.id, self.what, "id")
            return ctx.method.response_class(**{self.what.replace(" ", "_"): self.render(ctx, rec.msg)})

    def list(self, ctx: CallContext, request: Any) -> Any:
        with ctx.store.lock:
            recs = list(coll(ctx, self.name).values())
            return list_response(ctx, request, recs, lambda r: self.render(ctx, r.msg))


# -- faults ---------------------------------------------------------------------------------------------


def apply_update(request: Any, target: Any, skip: Iterable[str] = ()) -> set[str]:
    """Copy an update request's fields onto ``target`` (each replaces the stored value); with an
    ``update_mask`` only the masked ones. Returns the mask's paths (empty: no mask)."""
    paths = set(request.update_mask.paths)
    ignored = {"id", "update_mask", *skip}
    for f, _ in request.ListFields():
        if f.name in ignored or (paths and f.name not in paths):
            continue
        if f.name in target.DESCRIPTOR.fields_by_name:
            target.ClearField(f.name)
        copy_matching(request, target, only=[f.name])
    return paths


def required(field: str) -> Fault:
    return invalid_argument(f"{field} is required", field, reason="MISSING_FIELD")


def check_required(request: Any, *fields: str) -> None:
    """INVALID_ARGUMENT naming every missing field at once (a BadRequest violation each)."""
    missing = [f for f in fields if not _present(request, f)]
    if missing:
        raise Fault(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required",
            reason="MISSING_FIELD",
            details=[bad_request((f, f"{f} is required") for f in missing)],
        )


def _present(request: Any, field: str) -> bool:
    v = getattr(request, field)
    return bool(v.strip()) if isinstance(v, str) else bool(v)


def already_exists(what: str, field: str, value: str) -> Fault:
    return Fault(
        grpc.StatusCode.ALREADY_EXISTS,
        f"a {what} with {field} {value!r} already exists",
        reason="ALREADY_EXISTS",
        metadata={field: value},
    )


def precondition(message: str, reason: str, **metadata: str) -> Fault:
    return Fault(grpc.StatusCode.FAILED_PRECONDITION, message, reason=reason, metadata=metadata)


def unique(ctx: CallContext, name: str, field: str, value: str, what: str, *, but: str = "") -> None:
    for rec in coll(ctx, name).values():
        if rec.key != but and getattr(rec.msg, field) == value:
            raise already_exists(what, field, value)


# -- money ----------------------------------------------------------------------------------------------


def currency_code(value: int) -> str:
    return str(m.CurrencyEnum.Name(value)).removeprefix("CURRENCY_ENUM_") if value else ""


def to_cents(amount: decimal.Decimal, currency: int) -> int:
    """Major units to the currency's minor unit, rounded half-even (``12.345 SAR`` -> ``1234``)."""
    exp = _EXPONENT.get(currency_code(currency), 2)
    return int((amount * (decimal.Decimal(10) ** exp)).quantize(decimal.Decimal(1), decimal.ROUND_HALF_EVEN))


def from_cents(cents: int, currency: int) -> decimal.Decimal:
    return decimal.Decimal(cents).scaleb(-_EXPONENT.get(currency_code(currency), 2))


def dec(value: Any) -> decimal.Decimal:
    return to_decimal(value)


def dv(value: decimal.Decimal | int) -> Any:
    return from_decimal(value if isinstance(value, decimal.Decimal) else decimal.Decimal(value))


def parse_amount(text: str, field: str, *, allow_empty: bool = True) -> decimal.Decimal:
    """A non-negative decimal string (``"10"``, ``"12.50"``) as the API's credit fields carry them."""
    if not text.strip():
        if allow_empty:
            return decimal.Decimal(0)
        raise required(field)
    try:
        d = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise invalid_argument(f"{field} {text[:40]!r} is not a decimal number", field) from None
    if not d.is_finite() or d < 0 or abs(d) >= 10**15:
        raise invalid_argument(f"{field} must be a non-negative amount below 10^15", field)
    return d


# -- time -----------------------------------------------------------------------------------------------


def ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def when(value: timestamp_pb2.Timestamp) -> dt.datetime:
    return value.ToDatetime(tzinfo=dt.timezone.utc)


def now() -> dt.datetime:
    return when(now_ts())


def _add_months(d: dt.datetime, months: int) -> dt.datetime:
    y, mo = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, mo + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


_MONTHS = {
    m.PLAN_INTERVAL_MONTHLY: 1,
    m.PLAN_INTERVAL_QUARTERLY: 3,
    m.PLAN_INTERVAL_SEMIANNUAL: 6,
    m.PLAN_INTERVAL_YEARLY: 12,
}


def billing_period(
    anchor: dt.datetime, interval: int, billing_time: int, at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The ``[start, end)`` billing period holding ``at``: calendar periods start on the 1st (Monday for
    weekly plans, January/April/July/October for quarterly…), anniversary periods on ``anchor``'s day."""
    if billing_time == m.BILLING_TIME_ANNIVERSARY:
        if interval == m.PLAN_INTERVAL_WEEKLY:
            n = max(0, (at - anchor) // dt.timedelta(weeks=1))
            start = anchor + dt.timedelta(weeks=n)
            return start, start + dt.timedelta(weeks=1)
        step = _MONTHS.get(interval, 1)
        k = 0
        while _add_months(anchor, (k + 1) * step) <= at:
            k += 1
        return _add_months(anchor, k * step), _add_months(anchor, (k + 1) * step)
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == m.PLAN_INTERVAL_WEEKLY:
        start = midnight - dt.timedelta(days=midnight.weekday())
        return start, start + dt.timedelta(weeks=1)
    step = _MONTHS.get(interval, 1)
    first = midnight.replace(day=1, month=((at.month - 1) // step) * step + 1)
    return first, _add_months(first, step)


def period_of(sub: Any, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The current billing period of an active subscription, starting no earlier than the subscription."""
    started = when(sub.started_at) if sub.HasField("started_at") else when(sub.created_at)
    start, end = billing_period(started, sub.plan.interval, sub.billing_time, max(at, started))
    return max(start, started), end


# -- listing --------------------------------------------------------------------------------------------


def list_response(
    ctx: CallContext,
    request: Any,
    records: list[Record],
    render: Callable[[Record], Any] | None = None,
    texts: Callable[[Record], Iterable[str]] | None = None,
) -> Any:
    """Filter (part + text search), sort and paginate ``records`` into the method's list response."""
    fields = request.DESCRIPTOR.fields_by_name
    flt = request.filter if "filter" in fields and request.HasField("filter") else None
    srt = request.sort if "sort" in fields and request.HasField("sort") else None
    pag = request.pagination if "pagination" in fields and request.HasField("pagination") else None
    evaluator = listing.FilterEval(get_attr, ctx.method.full_name)
    records = filter_records(records, flt, evaluator, request, fields, texts)
    listing.sort_items(records, srt, get_attr)
    scope = f"{ctx.org}|{ctx.method.full_name}|{getattr(request, 'wallet_id', '')}"
    scope += getattr(request, "subscription_id", "")
    page = listing.paginate(records, pag, ctx.sandbox.cursors, scope, listing.query_fingerprint(flt, srt))
    out: Any = ctx.method.response_class()
    for r in page.items:
        out.items.append(render(r) if render is not None else r.msg)
    out.total_count = page.total
    if page.next_cursor:
        out.next_page_cursor = page.next_cursor
    return out


def handlers(service: str, build: Callable[[], Any], rpcs: dict[str, str]) -> dict[str, Factory]:
    """Factories for ``rpcs`` (RPC name -> method name of the object ``build`` makes). ``overrides()`` runs
    once per sandbox, so the object, built on first use, belongs to one sandbox."""
    holder: list[Any] = []

    def make(attr: str) -> Factory:
        def factory(sb: Sandbox, mi: MethodInfo, generic: GenericService) -> Handler:
            if not holder:
                holder.append(build())
            handler: Handler = getattr(holder[0], attr)
            return handler

        return factory

    return {f"{service}/{rpc}": make(attr) for rpc, attr in rpcs.items()}
