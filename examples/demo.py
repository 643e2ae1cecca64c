"""`make demo`: a walk through the SDK against a local Invora sandbox, printing each step.

Everything is real: a gRPC server on a loopback port, an OAuth2 token endpoint issuing RS256 JWTs, the
same status codes and error details as the gateway. Nothing is mocked and nothing leaves this machine.

    python examples/demo.py
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from typing import Any

import invora
from invora import from_decimal, to_decimal
from invora.sandbox import Sandbox

STEPS = 9
_step = 0


def step(title: str) -> None:
    global _step
    _step += 1
    print(f"\n[{_step}/{STEPS}] {title}")


def say(text: str) -> None:
    print("      " + text)


def claims_of(credentials: invora.ClientCredentials) -> dict[str, Any]:
    """Fetch a token and read its claims (unverified: for display only; the token itself is not printed)."""
    (_, bearer), *_ = credentials.metadata()
    payload = bearer.split(" ", 1)[1].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def invoice(buyer: str, vat: str, lines: list[tuple[str, str, str]]) -> dict[str, Any]:
    """InvoiceChanges as plain dicts: the business essentials only — the platform computes every total."""
    return {
        "issue_date": {"year": 2026, "month": 1, "day": 15},
        "currency_code": "SAR",
        "buyer": {"name": buyer, "vat_number": vat, "address": {"city": "Riyadh", "country_code": "SA"}},
        "lines": [
            {
                "description": d,
                "quantity": from_decimal(q),
                "unit_price": from_decimal(p),
                "tax_rate": from_decimal("15"),
            }
            for d, q, p in lines
        ],
    }


def main() -> int:
    started = time.monotonic()
    print("Invora SDK demo: a local sandbox with real gRPC, real OAuth2 and real JWTs; nothing is mocked.")

    step("Starting the embedded sandbox")
    with Sandbox(grpc_port=0, http_port=0, seed=0) as sb:
        say(f"gRPC {sb.grpc_target}   REST + OIDC {sb.rest_url}")

        step("Onboarding a business: ConnectedBusinessService.CreateConnectedBusiness")
        # A platform (marketplace, ERP, POS vendor) onboards its merchants and receives their machine
        # credentials. (Self-registration, PublicRegistrationService.CreateBusiness, returns none.)
        platform = sb.create_tenant("Souq Platform", kind="platform")
        platform_credentials = invora.ClientCredentials(
            platform.client_id, platform.client_secret, token_url=sb.token_url
        )
        with invora.Client(sb.grpc_target, credentials=platform_credentials) as onboarding:
            reg = onboarding.identity.connected_business.create_connected_business(
                name="Souq Al Madina Trading", admin_email="owner@souq.example"
            )
        biz = reg.connected_business
        say(f'org {biz.tenant_id} "{biz.name}", managed by platform {biz.parent_tenant_id}')
        say(f"client_id {reg.client_id}; client_secret received ({len(reg.client_secret)} chars)")
        say(
            "credentials come back exactly once (RotateCredentials replaces them): keep them in a secret manager"
        )

        step("Authenticating with the new credentials (OAuth2 client_credentials)")
        credentials = invora.ClientCredentials(reg.client_id, reg.client_secret, token_url=sb.token_url)
        claims = claims_of(credentials)
        hours = (claims["exp"] - claims["iat"]) / 3600
        say(
            f"JWT for org {claims['org_id']} (sub {claims['sub']}), valid {hours:g} h, scopes: {claims['scope']}"
        )
        say("the client caches it and refreshes it before expiry; every call sends it as a bearer token")

        with invora.Client(sb.grpc_target, credentials=credentials, timeout=10) as client:
            step("Creating four draft invoices; the platform computes the totals")
            drafts = []
            for buyer, vat, lines in [
                (
                    "Najd Foods",
                    "300000000000003",
                    [("Consulting (hours)", "3", "250"), ("Travel", "1", "120.50")],
                ),
                ("Red Sea Logistics", "310000000000003", [("Cold storage (pallets)", "12", "45")]),
                ("Oasis Tech", "320000000000003", [("Annual licence", "1", "9999.99")]),
                ("Al Noor Trading", "330000000000003", [("Dates, premium (kg)", "40", "18.75")]),
            ]:
                doc = client.simple.invoices.create(changes=invoice(buyer, vat, lines)).details
                drafts.append(doc)
                t = doc.totals
                say(
                    f"draft {doc.key[:8]}  {buyer:<18} net {to_decimal(t.tax_exclusive_amount):>9.2f}"
                    f"  VAT {to_decimal(t.tax_amount):>7.2f}  payable {to_decimal(t.payable_amount):>9.2f} {doc.currency_code}"
                )

            step("Freezing three of them: numbered, signed and submitted to the tax authority")
            frozen = []
            for doc in drafts[:3]:
                done = client.simple.invoices.freeze(
                    key=doc.key, concurrency_stamp=doc.concurrency_stamp
                ).details
                frozen.append(done)
                rm = done.regulation_metadata
                say(
                    f"{done.number}  {rm.authority} {_status_name(done)}  reference {rm.authority_reference}"
                    f"  QR {len(rm.qr_code)} chars"
                )

            step("Listing frozen invoices with a filter, two per page (cursor pagination)")
            pager = client.simple.invoices.list(filter={"part": {"frozen": True}}, page_size=2)
            for number, page in enumerate(pager.pages, 1):
                names = ", ".join(f"{s.number} ({s.buyer_name})" for s in page.items)
                more = "more pages follow" if page.next_page_cursor else "last page"
                say(f"page {number}: {names}   total_count {page.total_count}, {more}")
            search = [s.number for s in client.simple.invoices.list(filter={"text_search": "Najd"})]
            say(f"text search 'Najd' -> {', '.join(search)}")
            everything = list(client.simple.invoices.list(page_size=1))
            say(f"iterating items instead of pages follows the cursors for you: {len(everything)} documents")

            step("Editing a frozen invoice: the error arrives mapped to an exception")
            target = frozen[0]
            try:
                client.simple.invoices.update(
                    key=target.key,
                    concurrency_stamp=target.concurrency_stamp,
                    changes={"note": "changed after freezing"},
                    mask={"paths": ["note"]},
                )
            except invora.FailedPrecondition as exc:
                say(f"except invora.{type(exc).__name__}:  {exc.code.name} -> HTTP {exc.http_status}")
                say(f"message: {exc.message}")
                if exc.error_info is not None:
                    meta = ", ".join(f"{k}={v}" for k, v in sorted(exc.error_info.metadata.items()))
                    say(
                        f"ErrorInfo: reason={exc.error_info.reason} domain={exc.error_info.domain} {meta}".rstrip()
                    )
                say("a frozen document is immutable: correct it with a credit note or a debit note")
            else:
                say("unexpected: the update succeeded")
                return 1

            step("Billing: a metered plan, a customer and a subscription")
            calls = client.billing.metrics.create(
                code="api_calls", name="API calls", aggregation_type="AGGREGATION_TYPE_COUNT_AGG"
            ).billable_metric
            plan = client.billing.plans.create(
                code="business_pro",
                name="Business Pro",
                amount_cents=50000,
                amount_currency="CURRENCY_ENUM_SAR",
                interval="PLAN_INTERVAL_MONTHLY",
                pay_in_advance=True,
                charges=[
                    {
                        "billable_metric_id": calls.id,
                        "charge_model": "CHARGE_MODEL_STANDARD",
                        "properties": {"amount": from_decimal("0.05")},
                    }
                ],
            ).plan
            say(
                f"plan {plan.code}: {plan.amount_cents / 100:.2f} SAR a month + 0.05 SAR per {calls.code} event"
            )
            customer = client.billing.customers.create(
                external_id="najd-foods", name="Najd Foods", currency="CURRENCY_ENUM_SAR"
            ).customer
            sub = client.billing.subscriptions.create(
                customer_id=customer.id,
                plan_id=plan.id,
                external_id="najd-foods-pro",
                billing_time="BILLING_TIME_CALENDAR",
            ).subscription
            start = sub.current_billing_period_started_at.ToDatetime()
            end = sub.current_billing_period_ending_at.ToDatetime()
            say(f"customer {customer.external_id} subscribed as {sub.external_id}: {_enum(sub, 'status')}")
            say(f"current billing period {start:%Y-%m-%d} .. {end:%Y-%m-%d} (calendar month)")

            step("Usage events: five API calls, one delivered twice (same transaction_id)")
            events = [
                {
                    "transaction_id": f"najd-call-{i}",
                    "external_subscription_id": sub.external_id,
                    "code": calls.code,
                    "properties": {"endpoint": "/invoices"},
                }
                for i in (1, 2, 3, 4, 5, 3)
            ]
            client.billing.events.batch_create(events=events)
            stored = client.billing.events.list(page_size=100).total_count
            distinct = len({e["transaction_id"] for e in events})
            say(f"sent {len(events)} events ({distinct} transaction ids) in one BatchCreate; {stored} stored")
            usage = client.billing.customers.get_usage(
                customer_id=customer.id, subscription_id=sub.id
            ).customer_usage
            for cu in usage.charges_usage:
                say(
                    f"{cu.billable_metric.code}: {to_decimal(cu.units)} units from {cu.events_count} events"
                    f" -> {cu.amount_cents / 100:.2f} {_enum(usage, 'currency')}"
                )
            say(f"current usage so far this period: {usage.total_amount_cents / 100:.2f} SAR")

    print(f"\nDone in {time.monotonic() - started:.1f} s. Next, from this directory:")
    print("  source .venv/bin/activate                         # puts `invora` and the SDK's python on PATH")
    print("  invora sandbox --seed 5 --env-file sandbox.env    # a local gateway, until Ctrl-C")
    print("and in a second terminal:")
    print("  source .venv/bin/activate && source sandbox.env   # sets INVORA_TARGET ... INVORA_ORG_ID")
    print("  invora call simple.invoices.create --data @examples/invoice.json")
    print("  invora describe billing.plans                     # the billing API (/api/billing/v2)")
    print("  python examples/quickstart_sync.py                # more in README.md, 'After the demo'")
    return 0


def _enum(msg: Any, field: str) -> str:
    """An enum field's value name without its type prefix (``STATUS_TYPE_ACTIVE`` -> ``ACTIVE``)."""
    enum = msg.DESCRIPTOR.fields_by_name[field].enum_type
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    return str(enum.values_by_number[getattr(msg, field)].name).removeprefix(prefix)


def _status_name(doc: Any) -> str:
    field = doc.regulation_metadata.DESCRIPTOR.fields_by_name["status"]
    name = field.enum_type.values_by_number[doc.regulation_metadata.status].name
    return str(name).removeprefix("SUBMISSION_STATUS_")


if __name__ == "__main__":
    sys.exit(main())
