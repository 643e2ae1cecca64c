"""Retry policy: which failures to retry, how long to wait, and how much time is left.

One decision implementation serves the sync and the asyncio clients (and any transport): a
:class:`RetryState` says *whether* and *how long* to wait; only the sleeping differs between them.

The rule implemented:

- ``UNAVAILABLE`` is retried for idempotent calls, and for non-idempotent writes only when the transport
  reports that the request never left the client (no connection could be established). A write that may
  have reached the server is never repeated.
- ``RESOURCE_EXHAUSTED``, ``ABORTED`` and ``DEADLINE_EXCEEDED`` are retried only for idempotent calls.
- Idempotent means a read (``MethodInfo.read``) or a write whose request carries ``request_id`` (the
  client fills it with a UUID4 when empty and reuses it across attempts, so the server deduplicates).
- Waits use full-jitter exponential backoff, ``uniform(0, min(maximum, initial * multiplier**n))``; a
  server ``RetryInfo`` delay replaces it, capped at ``max_retry_delay``.
- The first attempt gets the call's full ``timeout``. ``deadline`` is the overall budget from the start of
  the call: a retry is made only if its wait ends inside the budget, and it gets
  ``min(timeout, time left)`` as its own deadline.
- Streams are never retried.
"""

from __future__ import annotations

import enum
import math
import time
from typing import Any, Union

import grpc

from invora.errors import ConfigurationError, InvoraError

__all__ = ["DEFAULT", "Retry", "RetryArg", "RetryState"]

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_IDEMPOTENT_ONLY = frozenset(
    {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
_MIN_ATTEMPT_TIMEOUT = 0.01
_FIELDS = ("attempts", "initial", "maximum", "multiplier", "deadline", "max_retry_delay", "idempotent_codes")


class Retry:
    """Retry settings. ``attempts`` counts the first try (``attempts=1`` never retries).

    Immutable, compared and hashed by value. A plain class rather than a frozen dataclass: the client
    imports it, and generating a dataclass's methods costs every program about a millisecond at start.
    """

    __slots__ = _FIELDS

    attempts: int
    initial: float
    maximum: float
    multiplier: float
    deadline: float | None
    max_retry_delay: float
    idempotent_codes: frozenset[grpc.StatusCode]

    def __init__(
        self,
        attempts: int = 4,
        initial: float = 0.1,
        maximum: float = 5.0,
        multiplier: float = 2.0,
        deadline: float | None = 60.0,
        max_retry_delay: float = 30.0,
        idempotent_codes: frozenset[grpc.StatusCode] = _IDEMPOTENT_ONLY,
    ) -> None:
        values: tuple[Any, ...] = (
            attempts,
            initial,
            maximum,
            multiplier,
            deadline,
            max_retry_delay,
            idempotent_codes,
        )
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"Retry.attempts must be a whole number >= 1, got {attempts!r}")
        for name, value in zip(_FIELDS[1:6], values[1:6], strict=True):  # the durations
            if value is None and name == "deadline":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigurationError(f"Retry.{name} must be a finite number of seconds, got {value!r}")
        if initial < 0 or maximum < 0 or multiplier < 1 or max_retry_delay < 0:
            raise ConfigurationError(
                "Retry needs initial >= 0, maximum >= 0, max_retry_delay >= 0 and multiplier >= 1"
            )
        if deadline is not None and deadline <= 0:
            raise ConfigurationError("Retry.deadline must be positive (or None for no overall budget)")
        for name, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Retry is immutable: build a new one (Retry({name}=...))")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Retry is immutable")

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if isinstance(other, Retry) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[type[Retry], tuple[Any, ...]]:  # pickle and copy (slots, no __setattr__)
        return Retry, self._values()

    def __repr__(self) -> str:
        return "Retry(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"

    def start(self, idempotent: bool, started: float | None = None) -> RetryState:
        """Begin a call; ``started`` is its ``time.monotonic()`` start (defaults to now)."""
        return RetryState(self, idempotent, time.monotonic() if started is None else started)

    def should_retry(self, error: InvoraError, idempotent: bool) -> bool:
        """Whether ``error`` is retryable at all for a call of this idempotency (ignores budgets)."""
        code = error.code
        if code == _UNAVAILABLE:
            return idempotent or error.request_not_sent
        return idempotent and code in self.idempotent_codes

    def backoff(self, retry_number: int) -> float:
        """Full-jitter wait before retry number ``retry_number`` (1-based)."""
        import random  # here, not at import: only a failed call needs it (~1 ms)

        ceiling = min(self.maximum, self.initial * self.multiplier ** (retry_number - 1))
        return random.uniform(0.0, ceiling)


class RetryState:
    """Per-call retry bookkeeping: ``next_delay(error)`` gives the wait before the next attempt or None."""

    __slots__ = ("attempt", "idempotent", "last_delay", "policy", "started")

    def __init__(self, policy: Retry, idempotent: bool, started: float) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.started = started
        self.attempt = 1  # attempts made so far
        self.last_delay = 0.0

    def time_left(self, now: float | None = None) -> float | None:
        if self.policy.deadline is None:
            return None
        return self.started + self.policy.deadline - (time.monotonic() if now is None else now)

    def next_delay(self, error: InvoraError) -> float | None:
        """The wait before retrying after ``error``, or None when the error must be raised."""
        policy = self.policy
        if self.attempt >= policy.attempts or not policy.should_retry(error, self.idempotent):
            return None
        hint = error.retry_delay
        delay = min(hint, policy.max_retry_delay) if hint is not None else policy.backoff(self.attempt)
        left = self.time_left()
        if left is not None and delay + _MIN_ATTEMPT_TIMEOUT >= left:
            return None  # the retry could not finish inside the budget
        self.attempt += 1
        self.last_delay = delay
        return delay

    def attempt_timeout(self, timeout: float) -> float:
        """Deadline for the attempt about to start: the call timeout, bounded by the budget left."""
        left = self.time_left()
        if left is None:
            return timeout
        return max(_MIN_ATTEMPT_TIMEOUT, min(timeout, left))


class _Default(enum.Enum):
    """Sentinel type: "use the client's setting" (distinct from None, which disables)."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default.DEFAULT
RetryArg = Union[Retry, None, _Default]  # noqa: UP007 — a runtime alias, used by generated code
