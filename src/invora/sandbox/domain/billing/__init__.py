"""Billing behaviour over the generic store: the flows users test before going live.

Simulated (see ``docs/sandbox.md``): billable metrics, plans with charges, fixed charges and
entitlements, add-ons, features, customers, subscriptions (plan changes, termination, entitlements),
usage events deduplicated by ``transaction_id`` and aggregated into current and projected usage, wallets,
coupons. Every other billing RPC answers through the generic descriptor-driven store.
"""

from __future__ import annotations

from invora.sandbox.domain.billing import _common, accounts, catalog, usage, wallets


def factories() -> dict[str, _common.Factory]:
    out: dict[str, _common.Factory] = {}
    for module in (catalog, accounts, usage, wallets):
        out.update(module.factories())
    return out
