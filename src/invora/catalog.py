"""The schema catalog: every service and RPC the SDK was built with, as data.

``invora.catalog.services()`` lists them; ``service("billing.plans")`` and ``method("billing.plans.create")``
(or ``"invora.billing.plans.v2.PlansService/Create"``) look one up. Each :class:`MethodInfo` says what the
client decides from the schema: the HTTP rule, the scope, whether the RPC is a read, which field makes a
write idempotent, and how it paginates. The CLI's ``invora describe`` prints the same facts.
"""

from __future__ import annotations

from invora._catalog import HttpRule, MethodInfo, PageInfo, ServiceInfo, method, service, services

__all__ = ["HttpRule", "MethodInfo", "PageInfo", "ServiceInfo", "method", "service", "services"]
