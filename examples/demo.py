"""`make demo`: a walk through the SDK against a local Invora sandbox, printing each step.

Everything is real: a gRPC server on a loopback port, an OAuth2 token endpoint issuing RS256 JWTs, the
same status codes and error details as the gateway. Nothing is mocked and nothing leaves this machine.

    python examples/demo.py
"""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Any

import invora
from invora import from_decimal, to_decimal
from invora.sandbox import Sandbox

STEPS = 7
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

        step("Registering a business: PublicRegistrationService.CompleteBusinessProfile")
        # The dashboard's sign-up flow calls this RPC; here an existing sandbox session stands in for it.
        signup = invora.Client(
            sb.grpc_target, credentials=invora.ClientCredentials(sb.client_id, sb.client_secret, sb.token_url)
        )
        with signup:
            reg = signup.identity.public_registration.complete_business_profile(
                business_name="Souq Al Madina Trading", country="SA"
            )
        say(f'tenant {reg.tenant_id} "{reg.business_name}"')
        say(f"client_id {reg.client_id}; client_secret received ({len(reg.client_secret)} chars)")
        say("credentials come back exactly once: store them in a secret manager, never in code")

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

    print(f"\nDone in {time.monotonic() - started:.1f} s. Next:")
    print(
        "  invora sandbox --grpc-port 50051 --http-port 8080   # keep a sandbox running; prints credentials"
    )
    print("  invora describe simple.invoices                     # every RPC, its HTTP rule and scope")
    print("  examples/quickstart_sync.py, examples/quickstart_async.py, README.md")
    return 0


def _status_name(doc: Any) -> str:
    field = doc.regulation_metadata.DESCRIPTOR.fields_by_name["status"]
    name = field.enum_type.values_by_number[doc.regulation_metadata.status].name
    return str(name).removeprefix("SUBMISSION_STATUS_")


if __name__ == "__main__":
    sys.exit(main())
