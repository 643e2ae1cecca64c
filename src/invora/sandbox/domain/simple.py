"""Simple invoices, credit notes and debit notes: drafts, computed totals, freeze, regulation metadata.

Totals are exact decimal arithmetic on ``kernel.DecimalValue``: a line is ``quantity × unit_price −
discount``, its tax ``line × rate / 100`` rounded half-up to the currency's minor unit, and the document
totals are sums of the rounded line amounts (so they always add up on the printed document). Freezing
assigns a gapless per-organization sequence number and display number, and produces the regulation
metadata of the seller's authority (ZATCA with a base64 TLV QR payload for SA, EGYPT_ETA for EG, PEPPOL
otherwise).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from invora.decimal import from_decimal, to_decimal
from invora.sandbox import listing
from invora.sandbox.domain.idempotency import dedup
from invora.sandbox.faults import Fault, bad_request, invalid_argument, not_found
from invora.sandbox.store import (
    CallContext,
    GenericService,
    Handler,
    Record,
    apply_mask,
    check_stamp,
    convert,
    filter_records,
    frozen_fault,
    get_attr,
    new_stamp,
    now_ts,
)

if TYPE_CHECKING:
    from invora._catalog import MethodInfo, ServiceInfo
    from invora.sandbox.app import Sandbox

SERVICES = {
    "invora.simple.invoices.v1.SimpleInvoiceService": ("Invoice", "INV"),
    "invora.simple.credit_notes.v1.SimpleCreditNoteService": ("CreditNote", "CN"),
    "invora.simple.debit_notes.v1.SimpleDebitNoteService": ("DebitNote", "DN"),
}
INVOICES = "invora.simple.invoices.v1.SimpleInvoiceService"

_MINOR_UNITS = {"BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "JPY": 0, "KRW": 0}
_DEFAULT_CURRENCY = {"SA": "SAR", "EG": "EGP", "AE": "AED", "US": "USD", "GB": "GBP"}
_HUNDRED = decimal.Decimal(100)
_ZERO = decimal.Decimal(0)

# SubmissionStatus / TaxCategory numbers (shared by the three packages).
_ACCEPTED = 3
_STANDARD, _ZERO_RATED = 1, 2


def _coll(service: str) -> str:
    return f"{service}:{service.rsplit('.', 2)[0]}.{SERVICES[service][0]}"


def _dec(value: Any, path: str, problems: list[tuple[str, str, str]]) -> decimal.Decimal:
    try:
        return to_decimal(value)
    except ValueError as exc:
        problems.append((path, "INVALID_DECIMAL", str(exc)))
        return _ZERO


def _money(d: decimal.Decimal, currency: str) -> decimal.Decimal:
    q = decimal.Decimal(1).scaleb(-_MINOR_UNITS.get(currency, 2))
    return d.quantize(q, rounding=decimal.ROUND_HALF_UP)


class SimpleDocuments:
    """Handlers for one of the three Simple services."""

    def __init__(self, sandbox: Sandbox, svc: ServiceInfo) -> None:
        self.sandbox = sandbox
        self.svc = svc
        self.full = svc.full_name
        self.kind, self.prefix = SERVICES[self.full]
        self.coll = _coll(self.full)
        mod = svc.load()
        self.entity_cls: Any = getattr(mod, self.kind)
        self.summary_cls: Any = getattr(mod, f"{self.kind}Summary")
        self.changes_cls: Any = getattr(mod, f"{self.kind}Changes")
        self.is_note = self.full != INVOICES
        self.evaluator = listing.FilterEval(self.attr, self.full + "/List")

    # -- helpers ----------------------------------------------------------------------------------------
    def attr(self, rec: Record, name: str) -> Any:
        m = rec.msg
        if name == "key":
            return rec.key
        if name == "buyer_vat_number":
            return m.buyer.vat_number
        if name == "payable_amount":
            return m.totals.payable_amount
        if name in ("created_at", "frozen_at", "issue_date", "due_date"):
            return getattr(m, name) if m.HasField(name) else None
        return get_attr(rec, name)

    def texts(self, rec: Record) -> list[str]:
        m = rec.msg
        return [m.number, m.buyer.name, m.buyer.vat_number, m.note, rec.key]

    def summary(self, msg: Any) -> Any:
        s = convert(msg, self.summary_cls)
        s.buyer_name = msg.buyer.name
        s.tax_amount.CopyFrom(msg.totals.tax_amount)
        s.payable_amount.CopyFrom(msg.totals.payable_amount)
        s.regulation_status = msg.regulation_metadata.status
        return s

    def validate(self, ctx: CallContext, doc: Any, *, for_freeze: bool = False) -> None:
        """Raise INVALID_ARGUMENT with BadRequest + ValidationError details for every problem found."""
        problems: list[tuple[str, str, str]] = []
        if not doc.buyer.name.strip():
            problems.append(("changes.buyer.name", "BUYER_NAME_REQUIRED", "the buyer name is required"))
        if not doc.lines:
            problems.append(("changes.lines", "LINES_REQUIRED", "a document needs at least one line"))
        cur = doc.currency_code
        if cur and (len(cur) != 3 or not cur.isalpha() or not cur.isupper()):
            problems.append(("changes.currency_code", "INVALID_CURRENCY", f"{cur!r} is not an ISO 4217 code"))
        if doc.HasField("issue_date") and doc.HasField("due_date"):
            issue, due = listing.scalar(doc.issue_date), listing.scalar(doc.due_date)
            if issue and due and due < issue:
                problems.append(
                    ("changes.due_date", "DUE_BEFORE_ISSUE", "the due date is before the issue date")
                )
        for i, line in enumerate(doc.lines):
            p = f"changes.lines[{i}]"
            if not line.description.strip():
                problems.append((f"{p}.description", "DESCRIPTION_REQUIRED", "a line needs a description"))
            if not line.HasField("quantity"):
                problems.append((f"{p}.quantity", "QUANTITY_REQUIRED", "a line needs a quantity"))
            elif _dec(line.quantity, f"{p}.quantity", problems) <= 0:
                problems.append(
                    (f"{p}.quantity", "NEGATIVE_QUANTITY", "the quantity must be greater than zero")
                )
            if not line.HasField("unit_price"):
                problems.append((f"{p}.unit_price", "UNIT_PRICE_REQUIRED", "a line needs a unit price"))
            elif _dec(line.unit_price, f"{p}.unit_price", problems) < 0:
                problems.append((f"{p}.unit_price", "NEGATIVE_PRICE", "the unit price cannot be negative"))
            rate = _dec(line.tax_rate, f"{p}.tax_rate", problems)
            if rate < 0 or rate > 100:
                problems.append(
                    (f"{p}.tax_rate", "INVALID_TAX_RATE", "the tax rate is a percentage in [0, 100]")
                )
            if _dec(line.discount_amount, f"{p}.discount_amount", problems) < 0:
                problems.append(
                    (f"{p}.discount_amount", "NEGATIVE_DISCOUNT", "a discount cannot be negative")
                )
        if self.is_note and not doc.billing_reference.invoice_key:
            problems.append(
                (
                    "changes.billing_reference.invoice_key",
                    "BILLING_REFERENCE_REQUIRED",
                    "a credit or debit note must reference the invoice it corrects",
                )
            )
        if problems:
            raise validation_fault(problems)
        if self.is_note:
            self.check_reference(ctx, doc)

    def check_reference(self, ctx: CallContext, doc: Any) -> None:
        key = doc.billing_reference.invoice_key
        rec = ctx.store.coll(ctx.org, _coll(INVOICES)).get(key)
        if rec is None:
            raise Fault(
                grpc.StatusCode.NOT_FOUND,
                f"the referenced invoice {key!r} does not exist in this organization",
                reason="REFERENCED_INVOICE_NOT_FOUND",
                metadata={"invoice_key": key},
            )
        if not rec.msg.frozen:
            raise Fault(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the referenced invoice {key!r} is a draft: only frozen invoices can be corrected",
                reason="REFERENCED_INVOICE_NOT_FROZEN",
                metadata={"invoice_key": key},
            )
        doc.billing_reference.invoice_number = rec.msg.number
        doc.billing_reference.invoice_issue_date.CopyFrom(rec.msg.issue_date)

    def compute(self, ctx: CallContext, doc: Any) -> None:
        """Seller, defaults and every computed amount."""
        org = ctx.sandbox.org(ctx.org)
        doc.seller.name = org.name
        doc.seller.vat_number = org.vat_number
        doc.seller.address.country_code = org.country
        if not doc.currency_code:
            doc.currency_code = _DEFAULT_CURRENCY.get(org.country, "EUR")
        if not doc.HasField("issue_date"):
            today = dt.datetime.now(dt.timezone.utc).date()
            doc.issue_date.year, doc.issue_date.month, doc.issue_date.day = today.year, today.month, today.day
        cur = doc.currency_code
        ext_sum = disc_sum = tax_sum = _ZERO
        groups: dict[tuple[int, decimal.Decimal], list[decimal.Decimal]] = {}
        for line in doc.lines:
            qty, price = to_decimal(line.quantity), to_decimal(line.unit_price)
            rate, disc = to_decimal(line.tax_rate), to_decimal(line.discount_amount)
            if not line.unit_code:
                line.unit_code = "EA"
            if not line.tax_category:
                line.tax_category = _STANDARD if rate > 0 else _ZERO_RATED
            ext = _money(qty * price - disc, cur)
            tax = _money(ext * rate / _HUNDRED, cur)
            line.line_extension_amount.CopyFrom(from_decimal(ext))
            line.tax_amount.CopyFrom(from_decimal(tax))
            ext_sum += ext
            disc_sum += disc
            tax_sum += tax
            g = groups.setdefault((line.tax_category, rate.normalize()), [_ZERO, _ZERO])
            g[0] += ext
            g[1] += tax
        t = doc.totals
        t.Clear()
        t.line_extension_amount.CopyFrom(from_decimal(ext_sum))
        t.discount_amount.CopyFrom(from_decimal(_money(disc_sum, cur)))
        t.tax_exclusive_amount.CopyFrom(from_decimal(ext_sum))
        t.tax_amount.CopyFrom(from_decimal(tax_sum))
        t.tax_inclusive_amount.CopyFrom(from_decimal(ext_sum + tax_sum))
        t.payable_amount.CopyFrom(from_decimal(ext_sum + tax_sum))
        for (cat, rate), (taxable, tax) in sorted(groups.items()):
            sub = t.tax_subtotals.add()
            sub.category = cat
            sub.rate.CopyFrom(from_decimal(rate))
            sub.taxable_amount.CopyFrom(from_decimal(taxable))
            sub.tax_amount.CopyFrom(from_decimal(tax))

    def freeze(self, ctx: CallContext, doc: Any) -> None:
        """Number, sign and 'submit': the document becomes immutable."""
        org = ctx.sandbox.org(ctx.org)
        counters = org.extra.setdefault("sequences", {})
        seq = counters.get(self.prefix, 0) + 1
        counters[self.prefix] = seq
        doc.frozen = True
        doc.sequence_number = seq
        doc.number = f"{self.prefix}-{doc.issue_date.year:04d}-{seq:06d}"
        now = now_ts()
        doc.frozen_at.CopyFrom(now)
        body = doc.SerializeToString(deterministic=True)
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        rm = doc.regulation_metadata
        rm.Clear()
        rm.status = _ACCEPTED
        rm.document_hash = digest
        rm.signed_artifact_id = f"artifact-{uuid.uuid4().hex}"
        rm.submitted_at.CopyFrom(now)
        if org.country == "SA":
            rm.authority = "ZATCA"
            rm.authority_reference = str(uuid.uuid4())
            rm.qr_code = zatca_qr(
                doc.seller.name,
                doc.seller.vat_number,
                dt.datetime.fromtimestamp(now.seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                str(to_decimal(doc.totals.payable_amount)),
                str(to_decimal(doc.totals.tax_amount)),
                digest,
            )
        elif org.country == "EG":
            rm.authority = "EGYPT_ETA"
            rm.authority_reference = uuid.uuid4().hex.upper()[:26]
            rm.qr_code = rm.authority_reference
        else:
            rm.authority = "PEPPOL"
            rm.authority_reference = str(uuid.uuid4())
        rm.messages.append("accepted by the sandbox authority simulator")

    def masked(self, msg: Any, mask: field_mask_pb2.FieldMask | None) -> Any:
        if mask is None or not mask.paths:
            return msg
        if not mask.IsValidForDescriptor(msg.DESCRIPTOR):
            raise invalid_argument(
                f"mask {list(mask.paths)} names fields {msg.DESCRIPTOR.name} does not have", "mask"
            )
        out = type(msg)()
        mask.MergeMessage(msg, out)
        return out

    # -- handlers ---------------------------------------------------------------------------------------
    def create(self, ctx: CallContext, request: Any) -> Any:
        if not request.HasField("changes"):
            raise validation_fault([("changes", "CHANGES_REQUIRED", "changes is required")])
        with ctx.store.lock:
            return dedup(ctx, request, lambda: self._create(ctx, request))

    def _create(self, ctx: CallContext, request: Any) -> Any:
        c = ctx.store.coll(ctx.org, self.coll)
        key = request.key if request.HasField("key") and request.key else ""
        if key and key in c:
            raise Fault(
                grpc.StatusCode.ALREADY_EXISTS,
                f"{self.kind} {key!r} already exists",
                reason="ALREADY_EXISTS",
                metadata={"key": key},
            )
        doc = self.entity_cls()
        apply_mask(doc, request.changes, None, replace=True)
        self.validate(ctx, doc)
        self.compute(ctx, doc)
        doc.key = key or uuid.uuid4().hex
        doc.concurrency_stamp = new_stamp()
        ts = now_ts()
        doc.created_at.CopyFrom(ts)
        doc.updated_at.CopyFrom(ts)
        if request.freeze_immediately:
            self.freeze(ctx, doc)
        c[doc.key] = Record(doc.key, doc, ctx.store.next_seq())
        out: Any = self.svc.method("Create").response_class()
        out.details.CopyFrom(doc)
        return out

    def _record(self, ctx: CallContext, key: str) -> Record:
        """The stored document ``key``: INVALID_ARGUMENT without a key, NOT_FOUND when unknown."""
        if not key:
            raise invalid_argument("key is required", "key", reason="MISSING_FIELD")
        rec = ctx.store.coll(ctx.org, self.coll).get(key)
        if rec is None:
            raise not_found(self.kind, key)
        return rec

    def get(self, ctx: CallContext, request: Any) -> Any:
        with ctx.store.lock:
            rec = self._record(ctx, request.key)
            out = self._get_resp()
            if request.HasField("mask") and request.mask.paths:
                out.details.CopyFrom(self.masked(rec.msg, request.mask))
            else:
                out.details.CopyFrom(rec.msg)
        return out

    def update(self, ctx: CallContext, request: Any) -> Any:
        with ctx.store.lock:
            rec = self._record(ctx, request.key)
            if rec.msg.frozen:
                raise frozen_fault(self.kind, request.key)
            check_stamp(request, rec.msg, True)
            doc = self.entity_cls()
            doc.CopyFrom(rec.msg)
            apply_mask(doc, request.changes, request.mask if request.HasField("mask") else None, replace=True)
            self.validate(ctx, doc)
            self.compute(ctx, doc)
            doc.concurrency_stamp = new_stamp()
            doc.updated_at.CopyFrom(now_ts())
            rec.msg = doc
            out: Any = self.svc.method("Update").response_class()
            out.details.CopyFrom(doc)
        return out

    def delete(self, ctx: CallContext, request: Any) -> Any:
        if not request.keys:
            raise invalid_argument("keys must name at least one document", "keys", reason="MISSING_FIELD")
        with ctx.store.lock:
            c = ctx.store.coll(ctx.org, self.coll)
            for k in request.keys:
                rec = c.get(k)
                if rec is None:
                    raise not_found(self.kind, k)
                if rec.msg.frozen:
                    raise frozen_fault(self.kind, k)
            for k in request.keys:
                c.pop(k, None)
        return self.svc.method("Delete").response_class()

    def freeze_rpc(self, ctx: CallContext, request: Any) -> Any:
        if not request.key:
            raise invalid_argument("key is required", "key", reason="MISSING_FIELD")
        with ctx.store.lock:
            return dedup(ctx, request, lambda: self._freeze(ctx, request))

    def _freeze(self, ctx: CallContext, request: Any) -> Any:
        rec = self._record(ctx, request.key)
        if rec.msg.frozen:
            raise Fault(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{self.kind} {request.key!r} is already frozen",
                reason="ALREADY_FROZEN",
                metadata={"key": request.key},
            )
        check_stamp(request, rec.msg, True)
        doc = self.entity_cls()
        doc.CopyFrom(rec.msg)
        self.validate(ctx, doc, for_freeze=True)
        self.freeze(ctx, doc)
        doc.concurrency_stamp = new_stamp()
        doc.updated_at.CopyFrom(now_ts())
        rec.msg = doc
        out: Any = self.svc.method("Freeze").response_class()
        out.details.CopyFrom(doc)
        return out

    def list(self, ctx: CallContext, request: Any) -> Any:
        resp_cls: Any = self.svc.method("List").response_class
        req_fields = request.DESCRIPTOR.fields_by_name
        flt = request.filter if request.HasField("filter") else None
        srt = request.sort if request.HasField("sort") else None
        with ctx.store.lock:
            records = list(ctx.store.coll(ctx.org, self.coll).values())
        records = filter_records(records, flt, self.evaluator, request, req_fields, self.texts)
        listing.sort_items(records, srt, self.attr)
        query = listing.query_fingerprint(flt, srt)
        pag = request.pagination if request.HasField("pagination") else None
        page = listing.paginate(records, pag, ctx.sandbox.cursors, f"{ctx.org}|{self.full}/List", query)
        out = resp_cls()
        mask = request.mask if request.HasField("mask") and request.mask.paths else None
        for r in page.items:
            out.items.append(self.masked(self.summary(r.msg), mask))
        out.total_count = page.total
        if page.next_cursor:
            out.next_page_cursor = page.next_cursor
        return out

    def _get_resp(self) -> Any:
        return self.svc.method("Get").response_class()


def validation_fault(problems: list[tuple[str, str, str]]) -> Fault:
    from invora._proto.invora.documents.v2 import models_pb2

    details: list[Message] = [bad_request([(f, m) for f, _, m in problems])]
    details.extend(
        models_pb2.ValidationError(field=f, code=c, message=m, severity=models_pb2.VALIDATION_SEVERITY_ERROR)
        for f, c, m in problems
    )
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Fault(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"document validation failed: {first[0]}: {first[2]}{more}",
        reason="VALIDATION_FAILED",
        metadata={"violations": str(len(problems))},
        details=details,
    )


def zatca_qr(seller: str, vat: str, timestamp: str, total: str, vat_total: str, digest: str) -> str:
    """ZATCA's QR payload: TLV (tag, length, UTF-8 value) for tags 1–6, base64-encoded."""
    out = bytearray()
    for tag, value in enumerate((seller, vat, timestamp, total, vat_total, digest), start=1):
        data = value.encode("utf-8")
        out += bytes([tag, len(data)]) + data
    return base64.b64encode(bytes(out)).decode("ascii")


def decode_tlv(payload: str) -> dict[int, str]:
    """Inverse of :func:`zatca_qr` (tests and the ZATCA explain RPC use it)."""
    raw = base64.b64decode(payload)
    out: dict[int, str] = {}
    i = 0
    while i + 2 <= len(raw):
        tag, length = raw[i], raw[i + 1]
        out[tag] = raw[i + 2 : i + 2 + length].decode("utf-8")
        i += 2 + length
    return out


def factories() -> dict[str, Callable[[Sandbox, MethodInfo, GenericService], Handler]]:
    """Handler factories for the three Simple services, keyed by ``pkg.Service/Method``."""
    cache: dict[str, SimpleDocuments] = {}

    def make(rpc: str) -> Callable[[Sandbox, MethodInfo, GenericService], Handler]:
        def factory(sb: Sandbox, m: MethodInfo, generic: GenericService) -> Handler:
            docs = cache.get(m.service.full_name)
            if docs is None or docs.sandbox is not sb:
                docs = cache[m.service.full_name] = SimpleDocuments(sb, m.service)
            handler: Handler = getattr(docs, rpc)
            return handler

        return factory

    out = {}
    for svc in SERVICES:
        for name, rpc in (
            ("Create", "create"),
            ("Get", "get"),
            ("Update", "update"),
            ("Delete", "delete"),
            ("Freeze", "freeze_rpc"),
            ("List", "list"),
        ):
            out[f"{svc}/{name}"] = make(rpc)
    return out


_BUYERS = (
    "Al Noor Trading",
    "Delta Supplies",
    "Najd Foods",
    "Red Sea Logistics",
    "Oasis Tech",
    "Hijaz Retail",
)
_ITEMS = (("Consulting hour", "150.00", "HUR"), ("Laptop", "3499.99", "EA"), ("Support plan", "89.50", "EA"))


def seed_invoices(sb: Sandbox, org_id: str, n: int) -> None:
    """``n`` deterministic invoices for ``org_id`` dated in 2026, every third one frozen."""
    from invora._catalog import service

    svc = service(INVOICES)
    docs = SimpleDocuments(sb, svc)
    ctx = CallContext(sb, svc.method("Create"), org_id, None, "seed", {})  # type: ignore[arg-type]
    req_cls: Any = svc.method("Create").request_class
    base = dt.date(2026, 1, 5)
    for i in range(n):
        day = base + dt.timedelta(days=i % 330)
        name, price, unit = _ITEMS[i % len(_ITEMS)]
        req = req_cls(freeze_immediately=(i % 3 == 0))
        ch = req.changes
        ch.issue_date.year, ch.issue_date.month, ch.issue_date.day = day.year, day.month, day.day
        ch.buyer.name = _BUYERS[i % len(_BUYERS)]
        ch.buyer.vat_number = f"3{100000000000 + i:013d}3"
        ch.note = f"seeded invoice {i + 1}"
        line = ch.lines.add()
        line.description = name
        line.quantity.CopyFrom(from_decimal(1 + i % 5))
        line.unit_price.CopyFrom(from_decimal(price))
        line.unit_code = unit
        line.tax_rate.CopyFrom(from_decimal(15))
        docs.create(ctx, req)
