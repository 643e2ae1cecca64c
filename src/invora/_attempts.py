"""The decisions of one unary call, attempt by attempt, with no I/O — written once for the blocking and the
asyncio loops (:mod:`invora._core`), which only fetch credentials, call and wait.

Per attempt: its metadata (credentials, tenancy, the call's ``x-request-id``, what hooks add), the hooks
(:mod:`invora.hooks`) and the DEBUG log line, one token refresh on UNAUTHENTICATED, and the retry decision
and delay. A call with no hook and no DEBUG logging makes its first attempt without this object (see
``Core.unary``); it is built only when that attempt fails.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import grpc

from invora.errors import InvoraError, Unauthenticated
from invora.hooks import CallEvent, Hook
from invora.retry import DEFAULT, Retry, RetryArg, RetryState

if TYPE_CHECKING:
    from invora._core import Binding, _CoreBase
    from invora.auth import AuthMetadata
    from invora.transport import Metadata

__all__ = ["REQUEST_ID_KEY", "Attempts", "apply_log_env", "new_request_id"]

log = logging.getLogger("invora.calls")  # a child of "invora": configuring "invora" configures it

#: The metadata key (HTTP header over REST) carrying the id of each call.
REQUEST_ID_KEY = "x-request-id"
_DEBUG = logging.DEBUG
_OK = grpc.StatusCode.OK
_perf = time.perf_counter
_monotonic = time.monotonic
_urandom = os.urandom


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_log_env_applied = False


def apply_log_env() -> None:
    """``INVORA_LOG=debug|info|warning|error``: the ``invora`` logger's level, with a stderr handler when
    nothing else handles it (a program that configured logging keeps its own handlers). Read once per
    process, at the first client."""
    global _log_env_applied
    if _log_env_applied:
        return
    value = os.environ.get("INVORA_LOG", "").strip().lower()
    level = _LEVELS.get(value)
    if value and level is None:
        from invora.errors import ConfigurationError

        raise ConfigurationError(
            f"INVORA_LOG: invalid value {value[:20]!r} (choose from {', '.join(_LEVELS)})"
        )
    _log_env_applied = True
    if level is None:
        return
    root = logging.getLogger("invora")
    root.setLevel(level)
    if not root.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


def _new_prefix() -> None:
    global _prefix
    _prefix = _urandom(8).hex()


_prefix = ""
_new_prefix()
os.register_at_fork(after_in_child=_new_prefix)  # a forked child must not repeat its parent's ids
_counter = itertools.count(1)


def new_request_id() -> str:
    """A fresh call id, 32 hex digits: 64 random bits per process (drawn again after fork) and a counter,
    unique without a system call per call."""
    return f"{_prefix}{next(_counter):016x}"


def _log_attempt(event: CallEvent) -> Any:
    """The built-in DEBUG hook: one line per attempt, with nothing secret (no metadata, no payload)."""

    def done(event: CallEvent) -> None:
        status = event.code.name if event.code is not None else f"local {type(event.error).__name__}"
        log.debug(
            "%s attempt %d -> %s in %.1f ms (target %s, %s, request id %s)",
            event.method,
            event.attempt,
            status,
            event.duration * 1000.0,
            event.target,
            event.transport,
            event.request_id,
        )

    return done


class Attempts:
    """One unary call's state across its attempts (see the module docstring)."""

    __slots__ = (
        "amd",
        "attempt",
        "auth_retry",
        "b",
        "core",
        "delay",
        "done",
        "event",
        "md",
        "policy",
        "rebudget",
        "req",
        "rid",
        "started",
        "state",
        "t0",
        "timeout",
    )

    def __init__(
        self,
        core: _CoreBase,
        b: Binding,
        req: Any,
        timeout: float | None,
        retry: RetryArg,
        md: Metadata,
        rid: str,
        started: float | None = None,
    ) -> None:
        self.core = core
        self.timeout = core.timeout if timeout is None else timeout
        self.delay = 0.0
        self.b = b
        self.req = req
        self.md = md
        self.rid = rid
        policy = core.retry if retry is DEFAULT else retry
        self.policy = policy if isinstance(policy, Retry) else None
        creds = core.credentials
        self.auth_retry = creds is not None and creds.refreshable
        self.started = (_monotonic() if started is None else started) if self.policy is not None else 0.0
        self.state: RetryState | None = None
        self.amd: AuthMetadata = ()
        self.attempt = 0
        self.event: CallEvent | None = None
        self.done: list[Any] = []
        self.t0 = 0.0
        self.rebudget = False

    @classmethod
    def after(
        cls,
        exc: InvoraError,
        amd: AuthMetadata,
        started: float,
        core: _CoreBase,
        b: Binding,
        req: Any,
        timeout: float | None,
        retry: RetryArg,
        md: Metadata,
        rid: str,
    ) -> Attempts:
        """The state after an unwatched first attempt (made with ``amd`` since ``started``) failed with
        ``exc``; raises ``exc`` when there is nothing more to try."""
        a = cls(core, b, req, timeout, retry, md, rid, started)
        a.amd = amd
        a.attempt = 1
        if not a.failed(exc):
            raise exc
        return a

    def begin(self, amd: AuthMetadata) -> Metadata:
        """The metadata of the next attempt (credentials ``amd`` first); starts its clock and hooks. After
        a retry's wait, the attempt's deadline is bounded by the retry budget left."""
        if self.rebudget:
            self.rebudget = False
            self.timeout = self.state.attempt_timeout(self.timeout)  # type: ignore[union-attr]
        self.amd = amd
        self.attempt += 1
        full = (*amd, *self.md, (REQUEST_ID_KEY, self.rid))
        core = self.core
        hooks: tuple[Hook, ...] = core.hooks
        if log.isEnabledFor(_DEBUG):
            hooks = (*hooks, _log_attempt)
        if hooks:
            event = self.event = CallEvent(
                self.b.full_name, core.target, core.transport_name, self.attempt, self.rid, self.req
            )
            done = self.done = []
            for hook in hooks:
                try:
                    end = hook(event)
                except Exception:
                    log.exception("invora: hook %r raised at the start of a call (ignored)", hook)
                else:
                    if end is not None:
                        done.append(end)
            if event.metadata:
                full = (*full, *event.metadata)
            self.t0 = _perf()
        return full

    def _end(self, response: Any, error: BaseException | None) -> None:
        event = self.event
        if event is None:
            return
        self.event = None
        event.duration = _perf() - self.t0
        event.response = response
        event.error = error
        event.code = _OK if error is None else (error.code if isinstance(error, InvoraError) else None)
        for end in self.done:
            try:
                end(event)
            except Exception:
                log.exception("invora: hook %r raised at the end of a call (ignored)", end)

    def succeeded(self, response: Any) -> Any:
        if self.event is not None:
            self._end(response, None)
        return response

    def failed(self, exc: BaseException) -> bool:
        """Ends the attempt with ``exc``: whether to try again (after ``delay``) rather than raise."""
        if self.event is not None:
            self._end(None, exc)
        if not isinstance(exc, InvoraError):
            return False  # a local failure (bad request type, cancellation)
        exc.request_id = self.rid
        if isinstance(exc, Unauthenticated):
            if not self.auth_retry:
                return False
            self.auth_retry = False
            self.core.credentials.invalidate(self.amd)  # type: ignore[union-attr]
            self.delay = 0.0  # at once, with the same deadline
            return True
        policy = self.policy
        if policy is None:
            return False
        state = self.state
        if state is None:
            state = self.state = policy.start(self.b.idempotent, self.started)
        delay = state.next_delay(exc)
        exc.attempts = state.attempt
        if delay is None:
            return False
        self.delay = delay
        self.rebudget = True
        if log.isEnabledFor(_DEBUG):
            log.debug(
                "%s: retrying %s in %.3f s (request id %s)", self.b.full_name, exc.code.name, delay, self.rid
            )
        return True
