"""``request_id`` idempotency keys: a repeated key inside the window answers the first response.

Shared by every RPC that carries a ``request_id`` (the Simple module's and documents' Create/Freeze).
Only successes are remembered, so a retry after a failure runs again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

if TYPE_CHECKING:
    from invora._catalog import MethodInfo
    from invora.sandbox.app import Sandbox
    from invora.sandbox.store import CallContext, GenericService, Handler

MAX_ENTRIES = 100_000


def dedup(ctx: CallContext, request: Any, run: Callable[[], Message]) -> Any:
    """``run()`` once per ``(organization, method, request_id)`` inside ``sandbox.dedup_window``."""
    if not request.HasField("request_id") or not request.request_id:
        return run()
    sb = ctx.sandbox
    key = (ctx.org, ctx.method.full_name, request.request_id)
    with ctx.store.lock:
        hit = sb.dedup.get(key)
        if hit is not None and hit[0] > time.time():
            out = type(hit[1])()
            out.CopyFrom(hit[1])
            return out
        res = run()
        now = time.time()
        if len(sb.dedup) > MAX_ENTRIES:  # bounded memory for long load tests: drop expired entries
            for k in [k for k, (exp, _) in sb.dedup.items() if exp <= now]:
                del sb.dedup[k]
        sb.dedup[key] = (now + sb.dedup_window, res)
        return res


def wrapped(sb: Sandbox, m: MethodInfo, generic: GenericService) -> Handler:
    """The generic handler of ``m`` behind :func:`dedup`."""
    inner = generic.build(m)

    def handler(ctx: CallContext, request: Any) -> Any:
        return dedup(ctx, request, lambda: inner(ctx, request))

    return handler


def factories() -> dict[str, Callable[[Sandbox, MethodInfo, GenericService], Handler]]:
    docs = "invora.documents.v2.DocumentsService"
    return {f"{docs}/Create": wrapped, f"{docs}/Freeze": wrapped}
