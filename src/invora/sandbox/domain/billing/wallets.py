"""Wallets: prepaid credits per customer, whose ongoing balance is what the customer's subscriptions have
used so far (:mod:`.usage`)."""

from __future__ import annotations

from typing import Any

from invora.sandbox.domain.billing import _common as c
from invora.sandbox.domain.billing.accounts import ACTIVE, advance, render_customer
from invora.sandbox.domain.billing.usage import usage
from invora.sandbox.faults import invalid_argument, not_found
from invora.sandbox.store import Record, convert, copy_matching, now_ts

m = c.m


class Wallets(c.Collection):
    """``WalletsService``: prepaid credits per customer. Granted and paid credits settle at once (the
    sandbox has no payment to wait for); voided credits leave; the ongoing balance subtracts the current
    usage of the customer's active subscriptions in the wallet's currency."""

    name, what = c.WALLET, "wallet"

    def create(self, ctx: Any, request: Any) -> Any:
        c.check_required(request, "customer_id")
        rate = c.parse_amount(request.rate_amount or "1", "rate_amount")
        if rate <= 0:
            raise invalid_argument("rate_amount must be positive", "rate_amount")
        paid = c.parse_amount(request.paid_credits, "paid_credits")
        granted = c.parse_amount(request.granted_credits, "granted_credits")
        with ctx.store.lock:
            cust = c.fetch(ctx, c.CUSTOMER, request.customer_id, "customer", "customer_id")
            currency = request.currency or cust.msg.currency
            if not currency:
                raise c.required("currency")
            w = m.BillingWallet(
                id=c.new_id(), status=m.WALLET_STATUS_ACTIVE, currency=currency, created_at=now_ts()
            )
            w.updated_at.CopyFrom(w.created_at)
            for name in (
                "code",
                "name",
                "expiration_at",
                "invoice_requires_successful_payment",
                "paid_top_up_max_amount_cents",
                "paid_top_up_min_amount_cents",
                "priority",
            ):
                copy_matching(request, w, only=[name])
            for md in request.metadata:
                w.metadata.add(key=md.key, value=md.value)
            w.rate_amount.CopyFrom(c.dv(rate))
            w.credits_balance.CopyFrom(c.dv(c.D(0)))
            w.customer.CopyFrom(render_customer(ctx, cust.msg))
            rec = c.store(ctx, c.WALLET, w, customer_id=cust.key)
            name = request.transaction_name if request.HasField("transaction_name") else ""
            self._move(ctx, rec, paid, m.WALLET_TRANSACTION_TRANSACTION_STATUS_PURCHASED, name)
            self._move(ctx, rec, granted, m.WALLET_TRANSACTION_TRANSACTION_STATUS_GRANTED, name)
            return ctx.method.response_class(wallet=self.render(ctx, rec.msg))

    def _move(self, ctx: Any, rec: Record, credits: Any, kind: int, name: str, metadata: Any = ()) -> Any:
        if credits <= 0:
            return None
        w = c.copy(rec.msg)
        balance = c.dec(w.credits_balance)
        outbound = kind == m.WALLET_TRANSACTION_TRANSACTION_STATUS_VOIDED
        if outbound and credits > balance:
            raise c.precondition(
                f"cannot void {credits} credits: the wallet holds {balance}",
                "INSUFFICIENT_CREDITS",
                wallet_id=w.id,
            )
        w.credits_balance.CopyFrom(c.dv(balance - credits if outbound else balance + credits))
        w.updated_at.CopyFrom(now_ts())
        rec.msg = w
        at = now_ts()
        tx = m.BillingWalletTransaction(
            id=c.new_id(),
            status=m.WALLET_TRANSACTION_STATUS_SETTLED,
            transaction_status=kind,
            transaction_type=m.WALLET_TRANSACTION_TRANSACTION_TYPE_OUTBOUND
            if outbound
            else m.WALLET_TRANSACTION_TRANSACTION_TYPE_INBOUND,
            source=m.WALLET_TRANSACTION_SOURCE_MANUAL,
            created_at=at,
            updated_at=at,
            settled_at=at,
            priority=w.priority,
        )
        tx.credit_amount.CopyFrom(c.dv(credits))
        tx.amount.CopyFrom(c.dv(credits * c.dec(w.rate_amount)))
        if name:
            tx.name = name
        if w.HasField("name"):
            tx.wallet_name = w.name
        for md in metadata:
            tx.metadata.add(key=md.key, value=md.value)
        c.store(ctx, c.WALLET_TX, tx, wallet_id=w.id)
        return tx

    def render(self, ctx: Any, w: Any) -> Any:
        out = c.copy(w)
        rate = c.dec(w.rate_amount)
        credits = c.dec(w.credits_balance)
        out.balance_cents = c.to_cents(credits * rate, w.currency)
        used = 0
        if w.status == m.WALLET_STATUS_ACTIVE:
            advance(ctx)
            for s in c.coll(ctx, c.SUBSCRIPTION).values():
                if (
                    s.extra["customer_id"] == out.customer.id
                    and s.msg.status == ACTIVE
                    and s.msg.plan.amount_currency == w.currency
                ):
                    used += usage(ctx, s.msg).amount_cents
        out.ongoing_usage_balance_cents = used
        out.ongoing_balance_cents = out.balance_cents - used
        out.credits_ongoing_usage_balance.CopyFrom(
            c.dv((c.from_cents(used, w.currency) / rate).quantize(c.D("1e-9")))
        )
        out.credits_ongoing_balance.CopyFrom(
            c.dv((c.from_cents(out.ongoing_balance_cents, w.currency) / rate).quantize(c.D("1e-9")))
        )
        out.consumed_credits.CopyFrom(c.dv(c.D(0)))
        out.last_balance_sync_at.CopyFrom(now_ts())
        return out

    def terminate(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.WALLET, request.id, "wallet", "id")
            if rec.msg.status == m.WALLET_STATUS_TERMINATED:
                raise c.precondition(
                    f"wallet {rec.key!r} is already terminated", "ALREADY_TERMINATED", wallet_id=rec.key
                )
            w = c.copy(rec.msg)
            w.status = m.WALLET_STATUS_TERMINATED
            w.terminated_at.CopyFrom(now_ts())
            rec.msg = w
            return ctx.method.response_class(wallet=self.render(ctx, w))

    def create_transaction(self, ctx: Any, request: Any) -> Any:
        paid = c.parse_amount(request.paid_credits, "paid_credits")
        granted = c.parse_amount(request.granted_credits, "granted_credits")
        voided = c.parse_amount(request.voided_credits, "voided_credits")
        if not (paid or granted or voided):
            raise invalid_argument(
                "give paid_credits, granted_credits or voided_credits (a positive amount)",
                "paid_credits",
                reason="MISSING_FIELD",
            )
        with ctx.store.lock:
            rec = c.fetch(ctx, c.WALLET, request.wallet_id, "wallet", "wallet_id")
            if rec.msg.status != m.WALLET_STATUS_ACTIVE:
                raise c.precondition(
                    f"wallet {rec.key!r} is terminated", "WALLET_TERMINATED", wallet_id=rec.key
                )
            if voided > c.dec(rec.msg.credits_balance) + paid + granted:
                raise c.precondition(
                    f"cannot void {voided} credits: the wallet holds {c.dec(rec.msg.credits_balance)}",
                    "INSUFFICIENT_CREDITS",
                    wallet_id=rec.key,
                )
            name = request.name if request.HasField("name") else ""
            made = [
                self._move(
                    ctx, rec, paid, m.WALLET_TRANSACTION_TRANSACTION_STATUS_PURCHASED, name, request.metadata
                ),
                self._move(
                    ctx, rec, granted, m.WALLET_TRANSACTION_TRANSACTION_STATUS_GRANTED, name, request.metadata
                ),
                self._move(
                    ctx, rec, voided, m.WALLET_TRANSACTION_TRANSACTION_STATUS_VOIDED, name, request.metadata
                ),
            ]
            return ctx.method.response_class(transaction=next(t for t in made if t is not None))

    def get_transaction(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            c.fetch(ctx, c.WALLET, request.wallet_id, "wallet", "wallet_id")
            rec = c.fetch(ctx, c.WALLET_TX, request.id, "wallet transaction", "id")
            if rec.extra["wallet_id"] != request.wallet_id:
                raise not_found("wallet transaction", f"{request.wallet_id}/{request.id}")
            return ctx.method.response_class(transaction=rec.msg)

    def list_transactions(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            c.fetch(ctx, c.WALLET, request.wallet_id, "wallet", "wallet_id")
            recs = [r for r in c.coll(ctx, c.WALLET_TX).values() if r.extra["wallet_id"] == request.wallet_id]
            return c.list_response(ctx, request, recs)

    # -- the customer portal's views --------------------------------------------------------------------
    def portal_wallet(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            rec = c.fetch(ctx, c.WALLET, request.id, "wallet", "id")
            return ctx.method.response_class(
                customer_portal_wallet=convert(self.render(ctx, rec.msg), m.CustomerPortalWallet)
            )

    def portal_wallets(self, ctx: Any, request: Any) -> Any:
        with ctx.store.lock:
            recs = list(c.coll(ctx, c.WALLET).values())
            return c.list_response(
                ctx, request, recs, lambda r: convert(self.render(ctx, r.msg), m.CustomerPortalWallet)
            )


def factories() -> dict[str, c.Factory]:
    out = c.handlers(
        c.WALLETS,
        Wallets,
        {
            "Create": "create",
            "Get": "get",
            "List": "list",
            "Terminate": "terminate",
            "CreateTransaction": "create_transaction",
            "GetTransaction": "get_transaction",
            "ListTransactions": "list_transactions",
        },
    )
    out.update(
        c.handlers(c.ACCOUNTS, Wallets, {"GetWallet": "portal_wallet", "ListWallets": "portal_wallets"})
    )
    return out
