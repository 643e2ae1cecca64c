"""Helpers shared by tests that make calls: a valid Simple invoice body and a recording hook."""

from __future__ import annotations

from typing import Any

import invora


def changes(buyer: str = "Acme Trading") -> dict[str, Any]:
    """``changes`` of a Simple invoice the sandbox accepts."""
    return {
        "currency_code": "SAR",
        "issue_date": {"year": 2026, "month": 1, "day": 15},
        "buyer": {"name": buyer, "vat_number": "300000000000003"},
        "lines": [
            {
                "description": "Widget",
                "quantity": {"units": 2},
                "unit_price": {"units": 100},
                "tax_rate": {"units": 15},
                "tax_category": "TAX_CATEGORY_STANDARD",
            }
        ],
    }


def record(seen: list[Any]) -> invora.Hook:
    """A hook appending ``(method, code, request bytes, response bytes)`` as each attempt ends."""

    def hook(event: invora.CallEvent) -> Any:
        return lambda done: seen.append((done.method, done.code, done.request_bytes, done.response_bytes))

    return hook
