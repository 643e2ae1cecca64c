"""``make bench``: every benchmark of the SDK in one run, against one local sandbox, as one table of ratios.

One sandbox process (seeded with 600 Simple invoices) serves every measurement, so the ratios compare
like with like on the same machine in the same minute; absolute numbers move with the machine, ratios
much less. Rows:

- SDK vs raw generated stubs (same channel options, same metadata, a fresh ``x-request-id`` per call on both
  sides): sync sequential, sync 8 threads, asyncio 100 in flight — ``SimpleInvoiceService/Get``;
  interleaved rounds, median of per-round ratios; and what that header costs (raw stub with vs without);
- pagination: the SDK pager (prefetching the next page while the consumer works) vs a naive raw loop;
- REST vs gRPC through the SDK, same three shapes;
- the sandbox itself (``scale.py``): its REST server vs its gRPC server at 100 in flight, driven by the
  leanest client for each protocol (throughput and the sandbox's CPU time per call), and its gRPC server
  vs a bare grpcio server at 50 in flight;
- ``invora bench`` (the asyncio load generator, 2 channels) vs a hand-written ``grpc.aio`` loop with the
  same 100 calls in flight: how much of the achievable rate the load generator reaches;
- ``invora bench --processes 2`` vs one process (closed loop, 100 in flight);
- token single-flight: token requests per 1,000 calls from 64 threads that start cold and see the token
  invalidated three times, SDK vs a hand-rolled check-then-fetch cache;
- ``Client(schema_check="warn")`` vs ``"off"`` after the one reflection check (the guard's per-call cost);
- import time and RSS of ``import invora`` vs ``import grpc`` (fresh interpreters, median).

    .venv/bin/python benchmarks/run.py [--quick] [--markdown] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import httpx
import raw_stub
from client_overhead import Bench, interleaved, start_sandbox
from import_cost import CLIENT_READY, measure, median, time_ratio
from rest_vs_grpc import _client, async_rate, sync_rate
from scale import bench_processes, rest_vs_grpc_server, sandbox_vs_echo
from schema_check import measure as schema_check_rates

import invora
from invora import _catalog
from invora.loadtest.engine import Plan, run
from invora.loadtest.template import Template


@dataclass
class Row:
    group: str
    scenario: str
    unit: str
    base_name: str
    base: float
    ours_name: str
    ours: float
    ratio: float  # ours / base
    better: str  # "higher" or "lower": which way the ratio is good


def _median_ratio(base: list[float], ours: list[float]) -> float:
    return statistics.median(o / b for b, o in zip(base, ours, strict=True))


# -- SDK vs raw stubs, pagination ----------------------------------------------------------------------------
def sdk_vs_raw(info: dict[str, Any], calls: int, rounds: int) -> list[Row]:
    args = argparse.Namespace(calls=calls, rounds=rounds, page_size=50, work_ms=5.0)
    bench = Bench(info, args)
    rows = []
    try:
        # Sequential calls are the noisiest row (one scheduler hiccup moves a round by several percent):
        # twice the rounds of half the calls, for the same time and a steadier median.
        bench.args.calls = max(1, calls // 2)
        raw, sdk = interleaved(rounds * 2, bench.raw_seq, bench.sdk_seq)
        rows.append(_row("SDK vs raw stub", "sync sequential", "calls/s", "raw", raw, "sdk", sdk))
        bench.args.calls = calls
        raw, sdk = interleaved(rounds, bench.raw_threads, bench.sdk_threads)
        rows.append(_row("SDK vs raw stub", "sync 8 threads", "calls/s", "raw", raw, "sdk", sdk))
        raw, sdk = asyncio.run(bench.async_rounds(rounds * 2))  # as noisy as sequential calls
        rows.append(_row("SDK vs raw stub", "asyncio 100 in flight", "calls/s", "raw", raw, "sdk", sdk))
        bench.args.calls = max(1, calls // 2)
        without, with_id = interleaved(rounds * 2, bench.raw_seq_without_id, bench.raw_seq)
        rows.append(
            _row("x-request-id", "raw stub, sync sequential", "calls/s", "without", without, "with", with_id)
        )
        bench.args.calls = calls
        naive, pager = interleaved(max(3, rounds // 2), bench.naive_pages, bench.sdk_pages)
        title = f"{bench.total} items, 50/page, 5 ms work/page"
        rows.append(_row("pagination", title, "items/s", "naive", naive, "prefetch", pager))
    finally:
        bench.client.close()
        bench.channel.close()
    return rows


def _row(group: str, scenario: str, unit: str, bn: str, base: list[float], on: str, ours: list[float]) -> Row:
    return Row(
        group, scenario, unit, bn, statistics.median(base), on, statistics.median(ours),
        _median_ratio(base, ours), "higher",
    )  # fmt: skip


# -- REST vs gRPC --------------------------------------------------------------------------------------------
def rest_vs_grpc(info: dict[str, Any], seconds: float) -> list[Row]:
    rows = []
    key = _first_key(info)
    for scenario in ("sync sequential", "sync 8 threads", "asyncio 100 in flight"):
        rates: dict[str, float] = {}
        for transport in ("grpc", "rest"):
            if scenario.startswith("asyncio"):

                async def measure_async(t: str = transport) -> float:
                    async with _client(info, t, asynchronous=True) as ac:
                        await ac.simple.invoices.get(key=key)
                        return await async_rate(ac, key, seconds, 100)

                rates[transport] = asyncio.run(measure_async())
            else:
                with _client(info, transport) as c:
                    c.simple.invoices.get(key=key)
                    rates[transport] = sync_rate(c, key, seconds, 1 if "sequential" in scenario else 8)
        rows.append(
            Row(
                "REST vs gRPC",
                scenario,
                "calls/s",
                "grpc",
                rates["grpc"],
                "rest",
                rates["rest"],
                rates["rest"] / rates["grpc"],
                "higher",
            )
        )
    return rows


def _first_key(info: dict[str, Any]) -> str:
    with _client(info, "grpc") as c:
        return str(next(iter(c.simple.invoices.list(page_size=1))).key)


# -- the load generator ----------------------------------------------------------------------------------------
def load_generator(info: dict[str, Any], seconds: float) -> Row:
    key = _first_key(info)
    info_get = _catalog.method("simple.invoices.get")
    creds = invora.ClientCredentials(info["client_id"], info["client_secret"], info["token_url"])
    md = (*creds.metadata(), ("x-target-org-id", info["org_id"]))
    svc = _catalog.service("simple.invoices")
    stub_cls = raw_stub.stub_class(svc)

    async def raw_rate() -> float:
        async with grpc.aio.insecure_channel(info["grpc_target"]) as channel:
            stub = stub_cls(channel)
            req = info_get.request_class(key=key)
            await stub.Get(req, metadata=md)
            count, deadline = 0, time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    await stub.Get(req, timeout=30, metadata=raw_stub.with_request_id(md))
                    count += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(100)))
            return count / (time.perf_counter() - t0)

    async def bench_rate() -> float:
        clients = [
            invora.AsyncClient(
                info["grpc_target"],
                credentials=creds,
                org_id=info["org_id"],
                retry=None,
                channel_options={"grpc.use_local_subchannel_pool": 1, "invora.bench.channel": i},
            )
            for i in range(2)
        ]
        try:
            template = Template(info_get.request_class, {"key": key})
            summary = await run(Plan(concurrency=100, duration=seconds), clients, info_get, template)
        finally:
            for c in clients:
                await c.close()
        if summary.ok != summary.count:
            raise SystemExit(f"invora bench saw errors: {summary.errors}")
        return summary.rps

    raw = [asyncio.run(raw_rate()), asyncio.run(raw_rate())]
    ours = [asyncio.run(bench_rate()), asyncio.run(bench_rate())]
    return Row(
        "load generator", "closed loop, 100 in flight", "calls/s", "raw aio", statistics.median(raw),
        "invora bench", statistics.median(ours), statistics.median(ours) / statistics.median(raw), "higher",
    )  # fmt: skip


# -- the sandbox and the load generator at scale ------------------------------------------------------------
def sandbox_rows(info: dict[str, Any], pid: int, seconds: float, rounds: int) -> list[Row]:
    r = rest_vs_grpc_server(info, pid, seconds, rounds)
    e = sandbox_vs_echo(info, seconds, rounds)
    return [
        _row("sandbox", "REST vs gRPC server, 100 in flight", "calls/s", "grpc", r["grpc"], "rest", r["rest"]),
        Row(
            "sandbox", "CPU per call, REST vs gRPC", "µs", "grpc", statistics.median(r["grpc_cpu"]),
            "rest", statistics.median(r["rest_cpu"]), _median_ratio(r["grpc_cpu"], r["rest_cpu"]), "lower",
        ),
        _row("sandbox", "gRPC vs bare grpcio, 50 in flight", "calls/s", "grpcio", e["echo"], "sandbox",
             e["sandbox"]),
    ]  # fmt: skip


def processes_row(info: dict[str, Any], seconds: float, rounds: int) -> Row:
    b = bench_processes(info, seconds, rounds)
    return _row("load generator", "bench -p 2 vs -p 1, 100 in flight", "calls/s", "1 proc", b["1"], "2 procs",
                b["2"])  # fmt: skip


# -- token single-flight ------------------------------------------------------------------------------------------
def token_single_flight(info: dict[str, Any], calls: int = 1024, threads: int = 64) -> Row:
    """Token fetches per 1,000 calls: cold start plus three invalidations, 64 threads racing each time."""
    key = _first_key(info)
    per = calls // threads
    invalidate_every = calls // 4

    def drive(call: Callable[[], None], invalidate: Callable[[], None]) -> None:
        barrier = threading.Barrier(threads)
        done = 0
        lock = threading.Lock()

        def worker() -> None:
            nonlocal done
            barrier.wait()
            for _ in range(per):
                call()
                with lock:
                    done += 1
                    if done % invalidate_every == 0 and done < calls:
                        invalidate()

        with futures.ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(worker) for _ in range(threads)]:
                f.result()

    # The SDK: one ClientCredentials shared by the client's threads.
    creds = invora.ClientCredentials(info["client_id"], info["client_secret"], info["token_url"])
    with invora.Client(info["grpc_target"], credentials=creds, org_id=info["org_id"]) as client:
        get = client.simple.invoices.get

        def sdk_invalidate() -> None:
            current = creds.cached_metadata()
            if current is not None:
                creds.invalidate(current)

        drive(lambda: get(key=key) and None, sdk_invalidate)
    sdk_fetches = creds.token_requests

    # A hand-rolled cache: check, fetch when empty, store — no coordination between threads.
    fetches = 0
    token: list[str | None] = [None]
    svc = _catalog.service("simple.invoices")
    stub_cls = raw_stub.stub_class(svc)
    req = _catalog.method("simple.invoices.get").request_class(key=key)
    form = {
        "grant_type": "client_credentials",
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
    }
    with grpc.insecure_channel(info["grpc_target"]) as channel, httpx.Client() as http:
        stub = stub_cls(channel)

        def naive_call() -> None:
            nonlocal fetches
            tok = token[0]
            if tok is None:
                tok = http.post(info["token_url"], data=form).json()["access_token"]
                fetches += 1
                token[0] = tok
            stub.Get(
                req,
                timeout=30,
                metadata=(("authorization", f"Bearer {tok}"), ("x-target-org-id", info["org_id"])),
            )

        drive(naive_call, lambda: token.__setitem__(0, None))
    scale = 1000 / calls
    return Row(
        "token single-flight", f"{threads} threads, cold + 3 expiries", "fetches/1k", "naive",
        fetches * scale, "sdk", sdk_fetches * scale, (sdk_fetches * scale) / (fetches * scale), "lower",
    )  # fmt: skip


# -- import cost ----------------------------------------------------------------------------------------------------
def import_cost(runs: int) -> list[Row]:
    # `import invora` alone loads nothing; CLIENT_READY is what a call needs.
    samples = measure(
        {"base": ("pass", "pass"), "grpc": ("import grpc", "pass"), "ready": (CLIENT_READY, "pass")}, runs
    )
    base, g, s = median(samples["base"]), median(samples["grpc"]), median(samples["ready"])
    g_rss = (g["rss_kb"] - base["rss_kb"]) / 1024
    s_rss = (s["rss_kb"] - base["rss_kb"]) / 1024
    return [
        Row("import", "wall time", "ms", "grpc", g["import"] * 1000, "invora", s["import"] * 1000,
            time_ratio(samples["ready"], samples["grpc"]), "lower"),
        Row("import", "RSS added", "MiB", "grpc", g_rss, "invora", s_rss, s_rss / g_rss, "lower"),
    ]  # fmt: skip


# -- output -------------------------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = f"{names[0]} ×{len(names)}"
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 1024 / 1024
        memory = f", {mem:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = ""
    return (
        f"{cpu}{memory}; {platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}, invora {invora.__version__}"
    )


def render(rows: list[Row], markdown: bool) -> str:
    header = ("group", "scenario", "unit", "baseline", "value", "invora", "value", "ratio")
    lines = []
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["---", "---:", "---", "---:", "---:"]) + "|")
    else:
        lines.append(
            f"{'group':<20} {'scenario':<34} {'unit':>10} {'baseline':>18} {'invora':>18} {'ratio':>7}"
        )
    for r in rows:
        ratio = f"{r.ratio:.2f}"
        if markdown:
            lines.append(
                f"| {r.group} | {r.scenario} | {r.unit} | {r.base_name} | {r.base:,.1f} | {r.ours_name} | "
                f"{r.ours:,.1f} | {ratio} |"
            )
        else:
            base = f"{r.base_name} {r.base:,.1f}"
            ours = f"{r.ours_name} {r.ours:,.1f}"
            lines.append(f"{r.group:<20} {r.scenario:<34} {r.unit:>10} {base:>18} {ours:>18} {ratio:>7}")
    return "\n".join(lines)


def measure_all(calls: int, rounds: int, seconds: float, runs: int) -> list[Row]:
    """Every row, against one fresh sandbox process."""
    proc, info = start_sandbox(600)
    try:
        rows = sdk_vs_raw(info, calls, rounds)
        rows += rest_vs_grpc(info, seconds)
        rows += sandbox_rows(info, proc.pid, seconds, rounds)
        rows.append(load_generator(info, seconds))
        rows.append(processes_row(info, max(seconds, 3.0), 4 if rounds > 2 else 2))
        rows.append(token_single_flight(info))
        off, warn = schema_check_rates(info, calls, rounds)
        rows.append(
            _row("schema_check", "sync sequential Get, after the check", "calls/s", "off", off, "warn", warn)
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows + import_cost(runs)


def median_rows(runs: list[list[Row]]) -> list[Row]:
    """Cell by cell medians of repeated runs (each ratio is the median of the runs' ratios)."""
    med = statistics.median
    out = []
    for same in zip(*runs, strict=True):
        r = same[0]
        out.append(Row(r.group, r.scenario, r.unit, r.base_name, med(x.base for x in same), r.ours_name,
                       med(x.ours for x in same), med(x.ratio for x in same), r.better))  # fmt: skip
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, noisier ratios)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs/benchmarks.md)")
    p.add_argument(
        "--repeat", type=int, default=1, help="run everything N times and print each cell's median"
    )
    args = p.parse_args()
    calls, rounds, seconds, runs = (300, 2, 0.5, 3) if args.quick else (1000, 6, 2.0, 15)
    started = time.perf_counter()
    rows = median_rows([measure_all(calls, rounds, seconds, runs) for _ in range(max(1, args.repeat))])
    print(f"machine: {machine()}")
    print(
        "ratio = invora / baseline, measured in this run against one sandbox process; throughput rows: "
        "higher is better; fetches, time and memory: lower is better."
        + (f" Median of {args.repeat} runs." if args.repeat > 1 else "")
        + "\n"
    )
    print(render(rows, args.markdown))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
