"""Domain behaviour layered over the generic store where the generic conventions are not enough."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.sandbox.app import Sandbox
    from invora.sandbox.store import GenericService, Handler

Factory = Callable[["Sandbox", "MethodInfo", "GenericService"], "Handler"]


def overrides() -> dict[str, Factory]:
    """Handler factories by ``pkg.Service/Method``: Simple documents, documents' idempotency keys,
    identity, billing."""
    from invora.sandbox.domain import billing, idempotency, identity, simple

    out: dict[str, Factory] = {}
    out.update(simple.factories())
    out.update(idempotency.factories())
    out.update(identity.factories())
    out.update(billing.factories())
    return out
