"""``invora bench --processes N``: the same load generator in N worker processes, one merged summary.

One Python process drives one core; a load test of a server on a big machine needs them all. Each worker
is a fresh interpreter (``spawn``: grpc does not survive ``fork``) running the ordinary engine with its
share of the plan — ``concurrency``, ``total``, in-flight cap and ``rps`` split N ways — and its own
channels and token (one fetch per worker). Workers connect and warm up, then start together at one
instant chosen by the parent. In open loop, worker *i* takes calls *i*, *i + N*, *i + 2N*… of the one
timetable (start shifted by *i / rps*, interval *N / rps*), so the merged schedule is exactly the
single-process one and every latency still counts from its call's due time (no coordinated omission).
Workers send back their HDR histograms (encoded), which add up bucket by bucket: the summary's
percentiles are those of every call, not averages of per-worker percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import pickle
import queue
import time
from typing import Any, TextIO

from invora.loadtest.engine import Plan, progress_line
from invora.loadtest.report import Recorder, Summary

__all__ = ["cores", "run_processes", "split"]

_START_DELAY = 0.05  # seconds between "all workers ready" and the common start


def cores() -> int:
    """Cores this process may run on (``--processes auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split(n: int, parts: int) -> list[int]:
    """``n`` as ``parts`` near-equal whole shares, larger ones first."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


@dataclasses.dataclass(frozen=True)
class _Job:
    index: int
    processes: int
    args: argparse.Namespace
    method: str
    data: Any
    plan: Plan  # this worker's share, progress=None
    transport: str
    offset: float  # seconds after the common start this worker's timetable begins


def _worker(job: _Job, counters: Any, start: Any, results: Any) -> None:
    """Worker process: build clients, warm up, report ready, wait for the start, run, send the results."""
    try:
        payload: tuple[Any, ...] = ("done", job.index, asyncio.run(_work(job, counters, start, results)))
    except BaseException as exc:
        try:
            pickle.dumps(exc)
            error: BaseException = exc
        except Exception:
            error = RuntimeError(f"{type(exc).__name__}: {exc}")
        payload = ("error", job.index, error)
    results.put(payload)


async def _work(job: _Job, counters: Any, start: Any, results: Any) -> dict[str, Any]:
    from invora.cli._resolve import find_method
    from invora.cli.common import client_from_args, credentials_from_args
    from invora.loadtest.engine import measure
    from invora.loadtest.template import Template

    info = find_method(job.method)
    seed = None if job.args.seed is None else job.args.seed + job.index
    template = Template(info.request_class, job.data, seed=seed, seq=(job.index + 1, job.processes))
    slot = job.index * 3

    def publish(count: int, errors: int, in_flight: int) -> None:
        counters[slot], counters[slot + 1], counters[slot + 2] = count, errors, in_flight

    async def start_at() -> float:
        results.put(("ready", job.index, None))
        loop = asyncio.get_running_loop()
        wall: float = await loop.run_in_executor(None, _wait_for_start, start)
        # The parent sends a wall-clock instant; convert it to this process's perf_counter clock.
        return time.perf_counter() + (wall - time.time()) + job.offset

    credentials = credentials_from_args(job.args)  # one token fetch for this worker's channels
    clients = []
    try:
        for i in range(job.args.connections):
            options: dict[str, Any] = {"credentials": credentials, "retry": None}
            if job.transport == "grpc":
                options["channel_options"] = {"grpc.use_local_subchannel_pool": 1, "invora.bench.channel": i}
            clients.append(client_from_args(job.args, asynchronous=True, options=options))
        m = await measure(job.plan, clients, info, template, start_at=start_at, publish=publish)
    finally:
        for client in clients:
            await client.close()
    return {
        "recorder": m.rec.export(),
        "scheduled": m.scheduled,
        "sent": m.sent,
        "elapsed": m.elapsed + job.offset,
        "target": clients[0].target,
    }


def _wait_for_start(start: Any) -> float:
    while True:
        value = float(start.value)
        if value:
            return value
        time.sleep(0.001)


def run_processes(
    args: argparse.Namespace,
    plan: Plan,
    method: str,
    data: Any,
    transport: str,
    processes: int,
    progress: TextIO | None,
) -> Summary:
    """Run ``plan`` split over ``processes`` workers and merge what they measured."""
    ctx = multiprocessing.get_context("spawn")
    counters = ctx.Array("q", processes * 3, lock=False)
    start = ctx.Value("d", 0.0, lock=False)
    results = ctx.Queue()
    concurrency = split(plan.concurrency, processes)
    totals = split(plan.total, processes) if plan.total is not None else [None] * processes
    rps = plan.rps / processes if plan.rps is not None else None
    child_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "handler"})
    jobs = [
        _Job(
            index=i,
            processes=processes,
            args=child_args,
            method=method,
            data=data,
            plan=dataclasses.replace(
                plan, concurrency=concurrency[i], total=totals[i], rps=rps, progress=None
            ),
            transport=transport,
            offset=i / plan.rps if plan.rps is not None else 0.0,
        )
        for i in range(processes)
    ]
    workers = [
        ctx.Process(target=_worker, args=(job, counters, start, results), name=f"invora-bench-{job.index}")
        for job in jobs
    ]
    for w in workers:
        w.daemon = True
        w.start()
    finished = False
    try:
        summary = _collect(workers, jobs, counters, start, results, plan, method, transport, progress)
        finished = True
        return summary
    finally:
        for w in workers:
            if finished:  # each has sent its results and is exiting
                w.join(10)
            if w.is_alive():
                w.terminate()
                w.join(5)


def _collect(
    workers: list[Any],
    jobs: list[_Job],
    counters: Any,
    start: Any,
    results: Any,
    plan: Plan,
    method: str,
    transport: str,
    progress: TextIO | None,
) -> Summary:
    n = len(workers)
    ready: set[int] = set()
    done: dict[int, dict[str, Any]] = {}
    started = last_t = 0.0
    last_count = silent = 0
    while len(done) < n:
        try:
            kind, index, value = results.get(timeout=0.2)
        except queue.Empty:
            dead = [w for i, w in enumerate(workers) if i not in done and w.exitcode is not None]
            silent = silent + 1 if dead else 0
            if silent > 5:  # a second with nothing in the queue from a worker that has exited
                raise RuntimeError(
                    f"bench worker {dead[0].name} exited with status {dead[0].exitcode}"
                ) from None
        else:
            if kind == "error":
                raise value
            if kind == "ready":
                ready.add(index)
                if len(ready) == n:  # everyone connected and warmed up: start together
                    start.value = time.time() + _START_DELAY
                    started = last_t = time.perf_counter() + _START_DELAY
            else:
                done[index] = value
        if progress is not None and started and time.perf_counter() - last_t >= 1.0:
            t = time.perf_counter()
            count = sum(counters[i * 3] for i in range(n))
            errors = sum(counters[i * 3 + 1] for i in range(n))
            in_flight = sum(counters[i * 3 + 2] for i in range(n))
            progress.write(
                progress_line(t - started, count, errors, (count - last_count) / (t - last_t), in_flight)
            )
            progress.flush()
            last_count, last_t = count, t
    rec = Recorder()
    for i in range(n):
        rec.merge(done[i]["recorder"])
    return Summary.build(
        rec,
        method=method,
        transport=transport,
        target=done[0]["target"],
        mode="closed" if plan.rps is None else "open",
        concurrency=plan.concurrency,
        connections=sum(j.args.connections for j in jobs),
        target_rps=plan.rps,
        scheduled=sum(int(d["scheduled"]) for d in done.values()),
        sent=sum(int(d["sent"]) for d in done.values()),
        duration_s=max(float(d["elapsed"]) for d in done.values()),
        processes=n,
    )
