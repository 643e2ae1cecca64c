"""SDK overhead: ``invora.Client`` / ``AsyncClient`` vs raw generated stubs against the same local server.

Starts the sandbox in a separate process (so client and server do not share a GIL), then measures, in
interleaved rounds (median of ``--rounds``), the throughput of ``SimpleInvoiceService/Get``:

- sync sequential: one thread, one call at a time;
- sync 8 threads: one shared client / stub;
- asyncio, 100 calls in flight: ``AsyncClient`` vs a ``grpc.aio`` stub;

and pagination over all seeded invoices with a consumer that spends ``--work-ms`` per page (I/O-like work,
e.g. writing the page somewhere): the SDK pager (prefetching the next page) vs a naive raw loop, and the
pager with prefetch disabled. Both sides send the same metadata (bearer token, tenancy header and a fresh
``x-request-id`` per call) over channels with the same options (keepalive, message sizes, user agent);
``raw_seq_without_id`` is the raw loop without the request id, for what that header costs on the wire.

    python benchmarks/client_overhead.py [--calls 3000] [--rounds 5] [--seed 600] [--page-size 50]
    python benchmarks/client_overhead.py --target 127.0.0.1:50051 --token-url ... --client-id ... ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import raw_stub

import invora
from invora import _catalog
from invora.transport.grpc import channel_options


def start_sandbox(seed: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [
        sys.executable,
        "-m",
        "invora.sandbox",
        "--grpc-port",
        "0",
        "--http-port",
        "0",
        "--seed",
        str(seed),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(120)
    if not line or not line[0].strip():
        proc.kill()
        raise SystemExit("the sandbox did not print its JSON line within 120 s")
    return proc, json.loads(line[0])


def rate(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


class Bench:
    def __init__(self, info: dict[str, Any], args: argparse.Namespace) -> None:
        self.args = args
        self.target = info["grpc_target"]
        self.org = info["org_id"]
        self.creds = invora.ClientCredentials(info["client_id"], info["client_secret"], info["token_url"])
        self.client = invora.Client(self.target, credentials=self.creds, org_id=self.org, timeout=30)
        self.metadata = (*self.creds.metadata(), ("x-target-org-id", self.org))
        svc = _catalog.service("simple.invoices")
        self.stub_cls = raw_stub.stub_class(svc)
        # Same channel options as the SDK's channel, so the ratio isolates the per-call layer.
        self.options = channel_options(self.client._settings.config)
        self.channel = grpc.insecure_channel(self.target, self.options)
        self.stub = self.stub_cls(self.channel)
        self.get_req_cls = svc.method("Get").request_class
        self.list_req_cls = svc.method("List").request_class
        first = self.client.simple.invoices.list(page_size=1).pages
        page = next(iter(first))
        if not page.items:
            raise SystemExit("no seeded invoices: run the sandbox with --seed > 0")
        self.key = page.items[0].key
        self.total = int(page.total_count)

    # -- unary ------------------------------------------------------------------------------------------
    def raw_seq(self) -> int:
        n, req, md, get = self.args.calls, self.get_req_cls(key=self.key), self.metadata, self.stub.Get
        with_id = raw_stub.with_request_id
        for _ in range(n):
            get(req, timeout=30, metadata=with_id(md))
        return n

    def raw_seq_without_id(self) -> int:
        n, req, md, get = self.args.calls, self.get_req_cls(key=self.key), self.metadata, self.stub.Get
        for _ in range(n):
            get(req, timeout=30, metadata=md)
        return n

    def sdk_seq(self) -> int:
        n, key, client = self.args.calls, self.key, self.client
        for _ in range(n):
            client.simple.invoices.get(key=key)
        return n

    def _threads(self, one: Callable[[], Any]) -> int:
        n = self.args.calls
        per = n // 8

        def worker() -> None:
            for _ in range(per):
                one()

        with futures.ThreadPoolExecutor(8) as pool:
            for f in [pool.submit(worker) for _ in range(8)]:
                f.result()
        return per * 8

    def raw_threads(self) -> int:
        req, md, get = self.get_req_cls(key=self.key), self.metadata, self.stub.Get
        with_id = raw_stub.with_request_id
        return self._threads(lambda: get(req, timeout=30, metadata=with_id(md)))

    def sdk_threads(self) -> int:
        key, inv = self.key, self.client.simple.invoices
        return self._threads(lambda: inv.get(key=key))

    # -- asyncio ------------------------------------------------------------------------------------------
    async def _inflight(self, one: Callable[[], Any], n: int, width: int = 100) -> int:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        await asyncio.gather(*(worker() for _ in range(width)))
        return n

    async def async_rounds(self, rounds: int) -> tuple[list[float], list[float]]:
        n = self.args.calls
        req, md = self.get_req_cls(key=self.key), self.metadata
        async with grpc.aio.insecure_channel(self.target, self.options) as channel:
            stub = self.stub_cls(channel)
            async with invora.AsyncClient(
                self.target, credentials=self.creds, org_id=self.org, timeout=30
            ) as client:
                inv = client.simple.invoices
                key = self.key

                def raw_one() -> Any:
                    return stub.Get(req, timeout=30, metadata=raw_stub.with_request_id(md))

                def sdk_one() -> Any:
                    return inv.get(key=key)

                await self._inflight(raw_one, 300)
                await self._inflight(sdk_one, 300)
                raw, sdk = [], []
                for r in range(rounds):
                    order = [("raw", raw_one, raw), ("sdk", sdk_one, sdk)]
                    for _, one, out in order if r % 2 == 0 else order[::-1]:
                        t0 = time.perf_counter()
                        await self._inflight(one, n)
                        out.append(n / (time.perf_counter() - t0))
        return raw, sdk

    # -- pagination ----------------------------------------------------------------------------------------
    def _work(self) -> None:
        time.sleep(self.args.work_ms / 1000)

    def naive_pages(self) -> int:
        req = self.list_req_cls()
        req.pagination.limit.value = self.args.page_size
        count = 0
        while True:
            page = self.stub.List(req, timeout=30, metadata=raw_stub.with_request_id(self.metadata))
            count += len(page.items)
            self._work()
            cursor = page.next_page_cursor
            if not cursor:
                return count
            req.pagination.cursor = cursor

    def _sdk_pages(self, client: invora.Client) -> int:
        count = 0
        for page in client.simple.invoices.list(page_size=self.args.page_size).pages:
            count += len(page.items)
            self._work()
        return count

    def sdk_pages(self) -> int:
        return self._sdk_pages(self.client)

    def sdk_pages_no_prefetch(self) -> int:
        with invora.Client(self.target, credentials=self.creds, org_id=self.org, prefetch=False) as client:
            return self._sdk_pages(client)


class Row:
    def __init__(self, name: str, unit: str, raw: list[float], sdk: list[float]) -> None:
        self.name, self.unit, self.raw, self.sdk = name, unit, raw, sdk
        self.ratios = [s / r for r, s in zip(raw, sdk, strict=True)]
        self.ratio = statistics.median(self.ratios)


def interleaved(rounds: int, a: Callable[[], int], b: Callable[[], int]) -> tuple[list[float], list[float]]:
    ra, rb = [], []
    a()  # warm-up
    b()
    for r in range(rounds):
        if r % 2 == 0:
            ra.append(rate(a))
            rb.append(rate(b))
        else:
            rb.append(rate(b))
            ra.append(rate(a))
    return ra, rb


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1500, help="calls per measurement block")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=600, help="invoices seeded in the sandbox (pagination size)")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--work-ms", type=float, default=5.0, help="consumer time per page")
    p.add_argument("--json", action="store_true", help="print results as JSON too")
    p.add_argument("--target", help="use a running server instead of starting the sandbox")
    p.add_argument("--token-url")
    p.add_argument("--client-id")
    p.add_argument("--client-secret")
    p.add_argument("--org-id")
    args = p.parse_args()
    proc = None
    if args.target:
        info = {"grpc_target": args.target, "token_url": args.token_url, "client_id": args.client_id,
                "client_secret": args.client_secret, "org_id": args.org_id}  # fmt: skip
    else:
        proc, info = start_sandbox(args.seed)
    try:
        bench = Bench(info, args)
        rows: list[Row] = []
        rows.append(
            Row("sync sequential", "calls/s", *interleaved(args.rounds, bench.raw_seq, bench.sdk_seq))
        )
        rows.append(
            Row("sync 8 threads", "calls/s", *interleaved(args.rounds, bench.raw_threads, bench.sdk_threads))
        )
        rows.append(Row("asyncio 100 in flight", "calls/s", *asyncio.run(bench.async_rounds(args.rounds))))
        prounds = max(3, args.rounds // 2)
        title = f"pages ({bench.total} items, {args.page_size}/page, prefetch)"
        rows.append(Row(title, "items/s", *interleaved(prounds, bench.naive_pages, bench.sdk_pages)))
        no_prefetch = interleaved(prounds, bench.naive_pages, bench.sdk_pages_no_prefetch)
        rows.append(Row("pages (no prefetch)", "items/s", *no_prefetch))
        print(
            f"\nSDK vs raw stub: {args.calls} calls per block, {args.rounds} interleaved rounds, server in a"
            " separate process.\nsdk/raw = median of per-round ratios (robust to load drift); min-max = spread."
        )
        print(f"{'scenario':<46} {'unit':>8} {'raw':>8} {'sdk':>8} {'sdk/raw':>8} {'min-max':>11}")
        for row in rows:
            raw_med, sdk_med = statistics.median(row.raw), statistics.median(row.sdk)
            spread = f"{min(row.ratios):.2f}-{max(row.ratios):.2f}"
            print(
                f"{row.name:<46} {row.unit:>8} {raw_med:>8.0f} {sdk_med:>8.0f} {row.ratio:>8.3f} {spread:>11}"
            )
        if args.json:
            out = [
                {"scenario": r.name, "unit": r.unit, "ratio": r.ratio, "raw": r.raw, "sdk": r.sdk}
                for r in rows
            ]
            print(json.dumps(out))
        bench.client.close()
        bench.channel.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
