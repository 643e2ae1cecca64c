"""The load generator: asyncio, one event loop, many calls in flight over a pool of channels.

Two modes:

* **closed loop** (no ``rps``): ``concurrency`` workers call back to back. It measures capacity; latency
  is each call's own duration.
* **open loop** (``rps`` set): calls are *scheduled* on a fixed timetable (call *i* is due at
  ``start + i / rps``) whatever the server does, and each latency is measured from the call's scheduled
  time, not from when it actually went out. A server that stalls therefore shows up as latency — the
  queue it causes is counted — instead of silently lowering the send rate (coordinated omission).
  ``concurrency`` caps the calls in flight; it is generous by default so the schedule is kept.

Retries are disabled: a load test reports what the server answered, not what a retry policy hid.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import grpc

from invora.errors import AuthenticationError, ConfigurationError
from invora.loadtest.report import Recorder, Summary

if TYPE_CHECKING:
    from invora import AsyncClient
    from invora._catalog import MethodInfo
    from invora.loadtest.template import Template

__all__ = ["DEFAULT_OPEN_LOOP_CONCURRENCY", "Measured", "Plan", "measure", "progress_line", "run"]

DEFAULT_OPEN_LOOP_CONCURRENCY = 1000
_now = time.perf_counter


@dataclass(frozen=True)
class Plan:
    """How much load to generate; exactly one of ``duration``/``total`` may be None."""

    concurrency: int = 50
    rps: float | None = None
    duration: float | None = 10.0
    total: int | None = None
    timeout: float = 10.0
    warmup: float = 0.0
    progress: TextIO | None = None  # where the once-a-second progress line goes (None: silent)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.rps is not None and self.rps <= 0:
            raise ValueError("rps must be positive")
        if self.duration is None and self.total is None:
            raise ValueError("give a duration or a total number of calls")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.total is not None and self.total < 1:
            raise ValueError("total must be at least 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")


Call = Callable[["AsyncClient"], Awaitable[int]]
Publish = Callable[[int, int, int], None]  # (completed, errors, in flight), a few times a second


def progress_line(elapsed: float, count: int, errors: int, rate: float, in_flight: int) -> str:
    """The once-a-second progress line (one process or the merged workers of ``--processes``)."""
    return f"[{elapsed:6.1f}s] {count} done, {errors} errors, {rate:.0f} req/s, {in_flight} in flight\n"


def make_call(info: MethodInfo, template: Template, timeout: float) -> Call:
    """One call of ``info`` with the next rendered request; returns the response size in bytes.

    Paginated reads fetch exactly one page (a load test measures RPCs, not iterations); server streams
    are drained.
    """
    if info.client_streaming:
        raise ValueError(
            f"{info.full_name} is client-streaming; invora bench drives unary and server-streaming RPCs"
        )
    if info.page is not None or info.server_streaming:

        async def call_raw(client: AsyncClient) -> int:
            raw = await client.raw(info, template.render(), timeout=timeout, retry=None)
            resp = raw.response
            if isinstance(resp, list):
                return sum(m.ByteSize() for m in resp)
            return int(resp.ByteSize())

        return call_raw

    async def call(client: AsyncClient) -> int:
        resp = await client.invoke(info, template.render(), timeout=timeout, retry=None)
        return int(resp.ByteSize())

    return call


def _code_of(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, grpc.StatusCode):
        return code.name
    return type(exc).__name__


class _Run:
    """One phase (warm-up or measured): schedules calls, records results, prints progress."""

    def __init__(
        self,
        plan: Plan,
        clients: Sequence[AsyncClient],
        call: Call,
        duration: float | None,
        publish: Publish | None = None,
    ) -> None:
        self.plan = plan
        self.clients = clients
        self.call = call
        self.duration = duration
        self.total = plan.total
        self.rec = Recorder()
        self.scheduled = 0
        self.sent = 0
        self.in_flight = 0
        self.start = 0.0
        self.fatal: BaseException | None = None
        self.publish = publish

    async def one(self, index: int, due: float) -> None:
        """Send call ``index``; its latency counts from ``due`` (its scheduled time in open loop)."""
        self.sent += 1
        self.in_flight += 1
        client = self.clients[index % len(self.clients)]
        try:
            size = await self.call(client)
            code = "OK"
        except (AuthenticationError, ConfigurationError) as exc:
            # Not a server answer: the run cannot produce meaningful numbers. Stop and report it.
            self.fatal = self.fatal or exc
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            size, code = 0, _code_of(exc)
        finally:
            self.in_flight -= 1
        self.rec.record(_now() - due, code, size)

    def _more(self, index: int, t: float) -> bool:
        if self.fatal is not None:
            return False
        if self.total is not None and index >= self.total:
            return False
        return self.duration is None or t < self.start + self.duration

    async def closed(self) -> None:
        counter = iter(range(sys.maxsize))

        async def worker() -> None:
            while True:
                index = next(counter)
                t = _now()
                if not self._more(index, t):
                    return
                self.scheduled += 1
                await self.one(index, t)

        await asyncio.gather(*(worker() for _ in range(self.plan.concurrency)))

    async def open(self, rps: float) -> None:
        interval = 1.0 / rps
        limit = asyncio.Semaphore(self.plan.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def gated(index: int, due: float) -> None:
            async with limit:
                await self.one(index, due)

        index = 0
        while True:
            now = _now()
            # Release every call that is due (catching up after a late wake-up), then sleep to the next.
            while True:
                due = self.start + index * interval
                if due > now or not self._more(index, due):
                    break
                self.scheduled += 1
                task = asyncio.ensure_future(gated(index, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
            due = self.start + index * interval
            if not self._more(index, due):
                break
            await asyncio.sleep(max(due - _now(), 0))
        if tasks:
            await asyncio.gather(*tasks)

    def _snapshot(self) -> tuple[int, int, int]:
        count = self.rec.count
        return count, count - self.rec.codes.get("OK", 0), self.in_flight

    async def progress(self, out: TextIO) -> None:
        last_count, last_t = 0, self.start
        while True:
            await asyncio.sleep(1.0)
            t = _now()
            count, errors, in_flight = self._snapshot()
            out.write(
                progress_line(t - self.start, count, errors, (count - last_count) / (t - last_t), in_flight)
            )
            out.flush()
            last_count, last_t = count, t

    async def publishing(self, publish: Publish) -> None:
        while True:
            publish(*self._snapshot())
            await asyncio.sleep(0.1)

    async def execute(self, start: float | None = None) -> float:
        """Run the phase; ``start`` (a ``time.perf_counter`` instant, maybe ahead) is when it begins."""
        if start is not None and start > _now():
            await asyncio.sleep(start - _now())
        self.start = _now() if start is None else start
        tickers = []
        if self.plan.progress is not None:
            tickers.append(asyncio.ensure_future(self.progress(self.plan.progress)))
        if self.publish is not None:
            tickers.append(asyncio.ensure_future(self.publishing(self.publish)))
        try:
            if self.plan.rps is None:
                await self.closed()
            else:
                await self.open(self.plan.rps)
        finally:
            for ticker in tickers:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            if self.publish is not None:
                self.publish(*self._snapshot())
        if self.fatal is not None:
            raise self.fatal
        return _now() - self.start


@dataclass
class Measured:
    """What the measured phase recorded, before it is summarised (or merged with other workers')."""

    rec: Recorder
    scheduled: int
    sent: int
    elapsed: float


async def measure(
    plan: Plan,
    clients: Sequence[AsyncClient],
    info: MethodInfo,
    template: Template,
    *,
    start_at: Callable[[], Awaitable[float]] | None = None,
    publish: Publish | None = None,
) -> Measured:
    """Connect, warm up, then run the measured phase of ``plan``.

    For the workers of ``invora bench --processes``: ``start_at`` is awaited once connected and warmed
    up and returns the ``time.perf_counter`` instant at which the measured phase starts (the same for
    every worker, shifted by a worker's place in the shared open-loop timetable); ``publish`` receives
    running counts for the parent's progress line.
    """
    if not clients:
        raise ValueError("at least one client is needed")
    call = make_call(info, template, plan.timeout)
    # Connect every channel and fetch the token before the clock starts; errors here are the caller's
    # configuration (bad credentials, unreachable token endpoint) and end the run.
    warm = _Run(plan, clients, call, None)
    for i in range(len(clients)):
        await warm.one(i, _now())
        if warm.fatal is not None:
            raise warm.fatal
    if plan.warmup > 0:
        warmup = dataclasses.replace(plan, duration=plan.warmup, total=None, progress=None)
        await _Run(warmup, clients, call, plan.warmup).execute()
    start = await start_at() if start_at is not None else None
    measured = _Run(plan, clients, call, plan.duration, publish)
    elapsed = await measured.execute(start)
    return Measured(measured.rec, measured.scheduled, measured.sent, elapsed)


async def run(
    plan: Plan,
    clients: Sequence[AsyncClient],
    info: MethodInfo,
    template: Template,
    *,
    transport: str = "grpc",
) -> Summary:
    """Generate the load described by ``plan`` against ``info`` and summarise what came back."""
    m = await measure(plan, clients, info, template)
    return Summary.build(
        m.rec,
        method=info.full_name,
        transport=transport,
        target=clients[0].target,
        mode="closed" if plan.rps is None else "open",
        concurrency=plan.concurrency,
        connections=len(clients),
        target_rps=plan.rps,
        scheduled=m.scheduled,
        sent=m.sent,
        duration_s=m.elapsed,
    )
