"""Quick start (blocking client): create, read, freeze and list invoices; handle an error.

python examples/quickstart_sync.py        # INVORA_TARGET etc. from the environment, else a local sandbox
"""

from __future__ import annotations

from _connect import connect

import invora
from invora import from_decimal, to_decimal


def main() -> None:
    with connect() as conn, conn.client(timeout=10) as client:
        # Create a draft: keyword arguments mirror the request fields; dicts work for nested messages.
        created = client.simple.invoices.create(
            changes={
                "currency_code": "SAR",
                "buyer": {"name": "Najd Foods", "vat_number": "300000000000003"},
                "lines": [
                    {
                        "description": "Consulting (hours)",
                        "quantity": from_decimal("3"),
                        "unit_price": from_decimal("250.00"),
                        "tax_rate": from_decimal("15"),
                    }
                ],
            }
        )
        draft = created.details
        print(f"draft {draft.key}: payable {to_decimal(draft.totals.payable_amount)} {draft.currency_code}")

        # Freeze it (numbered, signed, submitted); pass the concurrency stamp you last saw.
        frozen = client.simple.invoices.freeze(
            key=draft.key, concurrency_stamp=draft.concurrency_stamp
        ).details
        print(f"frozen as {frozen.number}, authority {frozen.regulation_metadata.authority}")

        # Lists return pagers: iterate items (pages are fetched as needed) or `.pages`.
        for summary in client.simple.invoices.list(filter={"text_search": "Najd"}, page_size=50):
            print(
                f"  {summary.number or '(draft)'}  {summary.buyer_name}  {to_decimal(summary.payable_amount)}"
            )

        # Every status maps to an exception class with the unpacked details.
        try:
            client.simple.invoices.get(key="no-such-invoice")
        except invora.NotFound as exc:
            print(f"NotFound: {exc.message} (HTTP {exc.http_status}, reason {exc.reason})")


if __name__ == "__main__":
    main()
