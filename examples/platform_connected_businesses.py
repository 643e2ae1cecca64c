"""A platform acting for its connected businesses.

A platform (a marketplace, an ERP, a POS vendor…) onboards businesses as *connected businesses* and then
works on their behalf with its own credentials, naming the organization per call through the tenancy
header ``x-target-org-id``: ``client.with_org(org_id)`` for a view bound to one organization, or
``org_id=`` on a single call. Each connected business's data stays in its own organization.

    python examples/platform_connected_businesses.py   # platform credentials from INVORA_*, else a sandbox
"""

from __future__ import annotations

from _connect import connect

import invora
from invora import from_decimal


def one_line_invoice(buyer: str, amount: str) -> dict[str, object]:
    line = {
        "description": "Marketplace order",
        "quantity": from_decimal(1),
        "unit_price": from_decimal(amount),
    }
    return {"currency_code": "SAR", "buyer": {"name": buyer}, "lines": [line]}


def main() -> None:
    with connect(platform=True) as conn, conn.client(timeout=10) as platform:
        # 1. Onboard two businesses. Their own credentials come back once (hand them over securely, or
        #    keep working with the platform's credentials as below).
        shops = {}
        for name in ("Dune Coffee Roasters", "Jeddah Book House"):
            created = platform.identity.connected_business.create_connected_business(
                name=name, admin_email=f"owner@{name.split()[0].lower()}.example"
            )
            shops[name] = created.connected_business.tenant_id
            print(f"connected {name!r} as org {created.connected_business.tenant_id}")

        # 2. Act for each one: a view bound to the org, or org_id= on a single call.
        dune = platform.with_org(shops["Dune Coffee Roasters"])
        dune.simple.invoices.create(
            changes=one_line_invoice("Walk-in customer", "42.00"), freeze_immediately=True
        )
        dune.simple.invoices.create(changes=one_line_invoice("Cafe Nakheel", "1250.00"))
        platform.simple.invoices.create(
            changes=one_line_invoice("Riyadh Library", "310.00"),
            freeze_immediately=True,
            org_id=shops["Jeddah Book House"],
        )

        # 3. Each organization sees only its own documents.
        for name, org in shops.items():
            docs = list(platform.with_org(org).simple.invoices.list())
            print(f"{name}: {len(docs)} invoice(s): " + ", ".join(d.number or "draft" for d in docs))
        home = list(platform.simple.invoices.list())
        print(f"platform's own organization: {len(home)} invoice(s)")

        # 4. The platform's list of connected businesses.
        for business in platform.identity.connected_business.list_connected_businesses():
            print(f"  {business.tenant_id}  {business.name}")

        # 5. An organization the platform does not manage is refused before any data is touched.
        try:
            platform.simple.invoices.get(key="any", org_id="100000000000000001")
        except invora.PermissionDenied as exc:
            print(f"PermissionDenied for a foreign org: reason {exc.reason}")


if __name__ == "__main__":
    main()
