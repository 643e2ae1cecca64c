"""Billing usage events: ``transaction_id`` is the idempotency key.

A repeated ``transaction_id`` (in a later call or within one batch) keeps the stored event and records no
duplicate, as the billing engine does, so retried ingestion never double-counts usage.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invora.sandbox.faults import Fault, bad_request, invalid_argument, not_found
from invora.sandbox.store import Record, now_ts

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.sandbox.app import CallContext, Sandbox
    from invora.sandbox.store import GenericService, Handler

EVENTS = "invora.billing.events.v2.EventService"
MAX_BATCH = 100


class Events:
    def __init__(self, generic: GenericService) -> None:
        get = generic.svc.method("Get")
        ef = get.response_class.DESCRIPTOR.fields_by_name["event"]
        self.shape = generic.shape(ef.message_type)
        self.coll = generic.coll_name(self.shape)

    def _validate(self, ev: Any, prefix: str) -> list[tuple[str, str]]:
        problems = []
        for name in ("transaction_id", "external_subscription_id", "code"):
            if not getattr(ev, name).strip():
                problems.append((f"{prefix}{name}", f"{name} is required"))
        return problems

    def _store(self, ctx: CallContext, ev: Any) -> bool:
        """Store one event; ``False`` when its transaction_id is already known (a duplicate)."""
        c = ctx.store.coll(ctx.org, self.coll)
        if ev.transaction_id in c:
            return False
        e = self.shape.cls()
        e.id = uuid.uuid4().hex
        e.transaction_id = ev.transaction_id
        e.external_subscription_id = ev.external_subscription_id
        e.code = ev.code
        if ev.HasField("properties"):
            e.payload.CopyFrom(ev.properties)
        now = now_ts()
        e.timestamp.CopyFrom(ev.timestamp if ev.HasField("timestamp") else now)
        e.received_at.CopyFrom(now)
        c[ev.transaction_id] = Record(ev.transaction_id, e, ctx.store.next_seq())
        return True

    def create(self, ctx: CallContext, request: Any) -> Any:
        if not request.HasField("event"):
            raise invalid_argument("event is required", "event", reason="MISSING_FIELD")
        problems = self._validate(request.event, "event.")
        if problems:
            raise _invalid(problems)
        with ctx.store.lock:
            self._store(ctx, request.event)
        return ctx.method.response_class()

    def batch_create(self, ctx: CallContext, request: Any) -> Any:
        if not request.events:
            raise invalid_argument("events must hold at least one event", "events", reason="MISSING_FIELD")
        if len(request.events) > MAX_BATCH:
            raise invalid_argument(
                f"at most {MAX_BATCH} events per batch", "events", reason="BATCH_TOO_LARGE"
            )
        problems = [p for i, ev in enumerate(request.events) for p in self._validate(ev, f"events[{i}].")]
        if problems:
            raise _invalid(problems)
        with ctx.store.lock:
            for ev in request.events:
                self._store(ctx, ev)
        return ctx.method.response_class()

    def get(self, ctx: CallContext, request: Any) -> Any:
        if not request.transaction_id:
            raise invalid_argument("transaction_id is required", "transaction_id", reason="MISSING_FIELD")
        with ctx.store.lock:
            rec = ctx.store.coll(ctx.org, self.coll).get(request.transaction_id)
            if rec is None:
                raise not_found("usage event", request.transaction_id)
            out: Any = ctx.method.response_class()
            out.event.CopyFrom(rec.msg)
        return out


def _invalid(problems: list[tuple[str, str]]) -> Fault:
    import grpc

    return Fault(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid usage event: {problems[0][0]}: {problems[0][1]}",
        reason="INVALID_EVENT",
        details=[bad_request(problems)],
    )


def factories() -> dict[str, Callable[[Sandbox, MethodInfo, GenericService], Handler]]:
    def make(attr: str) -> Callable[[Sandbox, MethodInfo, GenericService], Handler]:
        def factory(sb: Sandbox, m: MethodInfo, generic: GenericService) -> Handler:
            handler: Handler = getattr(Events(generic), attr)
            return handler

        return factory

    return {
        f"{EVENTS}/Create": make("create"),
        f"{EVENTS}/BatchCreate": make("batch_create"),
        f"{EVENTS}/Get": make("get"),
    }
