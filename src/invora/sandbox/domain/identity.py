"""Identity: self-registration of new organizations and platforms' connected businesses.

Organizations live in the sandbox itself (they own credentials and decide tenancy), not in the generic
store: registration creates a business the caller may act on (no credentials); a platform creates,
lists, suspends, reactivates and deletes its connected businesses, rotates their credentials, and may act
on them through the tenancy header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from invora.sandbox import listing
from invora.sandbox.faults import Fault, invalid_argument
from invora.sandbox.store import Record, filter_records, now_ts

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.sandbox.app import Org, Sandbox
    from invora.sandbox.store import CallContext, GenericService, Handler

REGISTRATION = "invora.identity.v2.PublicRegistrationService"
CONNECTED = "invora.identity.v2.ConnectedBusinessService"
_STATUS = {"active": 2, "suspended": 3}  # ConnectedBusinessStatus
_ORG_TYPE = {"business": 1, "platform": 2, "connected": 3}  # OrgType
_PLANS = (
    ("plan_starter", "starter", "Starter", 4900, False),
    ("plan_growth", "growth", "Growth", 14900, True),
    ("plan_scale", "scale", "Scale", 49900, False),
)
_STEPS = (
    ("business", "Business created"),
    ("plan", "Plan"),
)
MAX_NAME = 200


def _checklist(out: Any, org: Org) -> None:
    done = org.extra.setdefault("onboarding", {"business"})
    for key, title in _STEPS:
        out.steps.add(key=key, title=title, completed=key in done)
    out.completion_ratio = len(done & {k for k, _ in _STEPS}) / len(_STEPS)


def _resp(m: MethodInfo) -> Any:
    return m.response_class()


class Registration:
    """``CreateBusiness`` makes an organization without credentials: the caller's organization becomes a
    member of it (as the gateway grants the registering user a role), so the caller acts on it with the
    tenancy header ``x-target-org-id``. Machine credentials for a business come from the platform flow
    (``ConnectedBusinessService.CreateConnectedBusiness`` / ``RotateCredentials``)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def create_business(self, ctx: CallContext, request: Any) -> Any:
        name = " ".join(request.business_name.split())
        if len(name) > MAX_NAME:
            raise invalid_argument(f"business_name is longer than {MAX_NAME} characters", "business_name")
        caller = self.sb.org(ctx.claims.org_id)
        org = self.sb.create_org(name or "Untitled business", kind="business", country=caller.country)
        org.members.add(caller.org_id)
        out = _resp(ctx.method)
        out.org_id = org.org_id
        out.org_name = org.name
        out.default_branch_country = org.country
        return out

    def select_plan(self, ctx: CallContext, request: Any) -> Any:
        if not request.plan_code:
            raise invalid_argument("plan_code is required", "plan_code", reason="MISSING_FIELD")
        if request.plan_code not in {code for _, code, _, _, _ in _PLANS}:
            raise Fault(
                grpc.StatusCode.NOT_FOUND,
                f"plan {request.plan_code!r} does not exist (see ListAvailablePlans)",
                reason="PLAN_NOT_FOUND",
                metadata={"plan_code": request.plan_code},
            )
        org = self.sb.org(ctx.org)
        org.extra.setdefault("onboarding", {"business"}).add("plan")
        org.extra["plan"] = request.plan_code
        out = _resp(ctx.method)
        out.subscription_id = f"sub_{ctx.org}_{request.plan_code}"
        _checklist(out.checklist, org)
        return out

    def list_available_plans(self, ctx: CallContext, request: Any) -> Any:
        out = _resp(ctx.method)
        currency = request.currency or 110  # CURRENCY_ENUM_SAR
        for pid, code, name, cents, recommended in _PLANS:
            out.items.add(
                id=pid,
                code=code,
                name=name,
                description=f"{name} plan (sandbox)",
                amount_cents=cents,
                amount_currency=currency,
                interval=1,  # PLAN_INTERVAL_MONTHLY
                trial_period_days=14.0,
                recommended=recommended,
                cta_label="Choose",
                features=[
                    {"label": "E-invoicing", "detail": "ZATCA, Peppol, ETA", "included": True},
                    {"label": "Usage billing", "detail": "metered plans", "included": recommended},
                ],
            )
        return out


class ConnectedBusinesses:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def _platform(self, ctx: CallContext) -> Org:
        org = self.sb.org(ctx.org)
        if org.kind != "platform":
            raise Fault(
                grpc.StatusCode.PERMISSION_DENIED,
                "only platform organizations manage connected businesses",
                reason="NOT_A_PLATFORM",
                metadata={"org_id": ctx.org},
            )
        return org

    def _child(self, ctx: CallContext, tenant_id: str) -> Org:
        platform = self._platform(ctx)
        if not tenant_id:
            raise invalid_argument("tenant_id is required", "tenant_id", reason="MISSING_FIELD")
        for org in self.sb.orgs():
            if org.org_id == tenant_id and org.parent == platform.org_id:
                return org
        raise Fault(
            grpc.StatusCode.NOT_FOUND,
            f"connected business {tenant_id!r} not found for this platform",
            reason="NOT_FOUND",
            metadata={"tenant_id": tenant_id},
        )

    @staticmethod
    def fill(out: Any, org: Org) -> None:
        out.tenant_id = org.org_id
        out.name = org.name
        out.parent_tenant_id = org.parent or ""
        out.status = _STATUS.get(org.status, 0)
        created = org.extra.get("created_at")
        if created is None:
            created = org.extra["created_at"] = now_ts()
        out.audit.creation_info.created_at.CopyFrom(created)
        out.audit.last_modification_time.CopyFrom(org.extra.get("updated_at", created))

    def _answer(self, ctx: CallContext, org: Org) -> Any:
        """The method's response holding ``org`` as a connected business."""
        out = _resp(ctx.method)
        self.fill(out.connected_business, org)
        return out

    def create_connected_business(self, ctx: CallContext, request: Any) -> Any:
        platform = self._platform(ctx)
        name = request.name.strip()
        if not name:
            raise invalid_argument("name is required", "name", reason="MISSING_FIELD")
        if request.admin_email and "@" not in request.admin_email:
            raise invalid_argument("admin_email is not an e-mail address", "admin_email")
        tenant = self.sb.create_tenant(
            name, kind="connected", parent=platform.org_id, country=platform.country
        )
        out = _resp(ctx.method)
        self.fill(out.connected_business, self.sb.org(tenant.org_id))
        out.client_id = tenant.client_id
        out.client_secret = tenant.client_secret
        return out

    def update_connected_business(self, ctx: CallContext, request: Any) -> Any:
        org = self._child(ctx, request.tenant_id)
        paths = set(request.mask.paths) if request.HasField("mask") else set()
        if (not paths or "name" in paths) and request.name.strip():
            org.name = request.name.strip()
        org.extra["updated_at"] = now_ts()
        return self._answer(ctx, org)

    def delete_connected_business(self, ctx: CallContext, request: Any) -> Any:
        org = self._child(ctx, request.tenant_id)
        self.sb.remove_org(org.org_id)
        return _resp(ctx.method)

    def get_connected_business(self, ctx: CallContext, request: Any) -> Any:
        return self._answer(ctx, self._child(ctx, request.tenant_id))

    def suspend_connected_business(self, ctx: CallContext, request: Any) -> Any:
        org = self._child(ctx, request.tenant_id)
        if org.status == "suspended":
            raise Fault(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"connected business {org.org_id} is already suspended",
                reason="ALREADY_SUSPENDED",
            )
        org.status = "suspended"
        org.extra["suspend_reason"] = request.reason
        org.extra["updated_at"] = now_ts()
        return self._answer(ctx, org)

    def reactivate_connected_business(self, ctx: CallContext, request: Any) -> Any:
        org = self._child(ctx, request.tenant_id)
        if org.status != "suspended":
            raise Fault(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"connected business {org.org_id} is not suspended",
                reason="NOT_SUSPENDED",
            )
        org.status = "active"
        org.extra["updated_at"] = now_ts()
        return self._answer(ctx, org)

    def rotate_credentials(self, ctx: CallContext, request: Any) -> Any:
        org = self._child(ctx, request.tenant_id)
        cred = self.sb.rotate_client(org.org_id)
        out = _resp(ctx.method)
        out.client_id = cred.client_id
        out.client_secret = cred.secret
        return out

    def _records(self, ctx: CallContext) -> list[Record]:
        platform = self._platform(ctx)
        recs = []
        for i, org in enumerate(o for o in self.sb.orgs() if o.parent == platform.org_id):
            msg = ctx.method.response_class.DESCRIPTOR.fields_by_name["items"].message_type
            from invora.sandbox.store import _message_class

            item = _message_class(msg)()
            recs.append(Record(org.org_id, item, i, {"org": org, "country": org.country}))
        return recs

    def list_connected_businesses(self, ctx: CallContext, request: Any) -> Any:
        recs = self._records(ctx)
        for r in recs:
            self.fill(r.msg, r.extra["org"])
            r.extra["created_at"] = r.msg.audit.creation_info.created_at
        evaluator = listing.FilterEval(_attr, ctx.method.full_name)
        flt = request.filter if request.HasField("filter") else None
        recs = filter_records(
            recs, flt, evaluator, request, request.DESCRIPTOR.fields_by_name, lambda r: [r.msg.name, r.key]
        )
        return _page(ctx, request, recs)

    def list_connected_business_branches(self, ctx: CallContext, request: Any) -> Any:
        recs = self._records(ctx)
        if request.HasField("tenant_id") and request.tenant_id:
            self._child(ctx, request.tenant_id)
            recs = [r for r in recs if r.key == request.tenant_id]
        for r in recs:
            org = r.extra["org"]
            r.msg.tenant_id = org.org_id
            r.msg.tenant_name = org.name
            r.msg.branch_id = f"{org.org_id}-main"
            r.msg.branch_name = f"{org.name} (main)"
            r.msg.is_primary = True
            r.msg.country = org.country
        if request.text_search:
            recs = [
                r
                for r in recs
                if listing.text_matches([r.msg.tenant_name, r.msg.branch_name], request.text_search)
            ]
        return _page(ctx, request, recs)


def _attr(rec: Record, name: str) -> Any:
    if name in rec.extra:
        return rec.extra[name]
    return getattr(rec.msg, name, None)


def _page(ctx: CallContext, request: Any, recs: list[Record]) -> Any:
    pag = request.pagination if request.HasField("pagination") else None
    flt = (
        request.filter
        if "filter" in request.DESCRIPTOR.fields_by_name and request.HasField("filter")
        else None
    )
    query = listing.query_fingerprint(flt)
    page = listing.paginate(recs, pag, ctx.sandbox.cursors, f"{ctx.org}|{ctx.method.full_name}", query)
    out = _resp(ctx.method)
    for r in page.items:
        out.items.append(r.msg)
    out.total_count = page.total
    if page.next_cursor and "next_page_cursor" in out.DESCRIPTOR.fields_by_name:
        out.next_page_cursor = page.next_cursor
    return out


def factories() -> dict[str, Callable[[Sandbox, MethodInfo, GenericService], Handler]]:
    def make(cls: type[Any], attr: str) -> Callable[[Sandbox, MethodInfo, GenericService], Handler]:
        def factory(sb: Sandbox, m: MethodInfo, generic: GenericService) -> Handler:
            handler: Handler = getattr(cls(sb), attr)
            return handler

        return factory

    out: dict[str, Callable[[Sandbox, MethodInfo, GenericService], Handler]] = {}
    for rpc in ("CreateBusiness", "SelectPlan", "ListAvailablePlans"):
        out[f"{REGISTRATION}/{rpc}"] = make(Registration, _snake(rpc))
    for rpc in (
        "CreateConnectedBusiness",
        "UpdateConnectedBusiness",
        "DeleteConnectedBusiness",
        "ListConnectedBusinesses",
        "GetConnectedBusiness",
        "SuspendConnectedBusiness",
        "ReactivateConnectedBusiness",
        "RotateCredentials",
        "ListConnectedBusinessBranches",
    ):
        out[f"{CONNECTED}/{rpc}"] = make(ConnectedBusinesses, _snake(rpc))
    return out


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
