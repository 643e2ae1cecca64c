"""Sandbox throughput vs a raw grpcio echo server serving the same message types.

Both servers run in their own process (so neither shares a GIL with the client) with the same grpcio
configuration; the client uses raw grpcio multicallables (what a generated stub holds) with the same metadata (bearer token + tenancy header)
against both. Measured, in interleaved rounds (median of ``--rounds``), for ``SimpleInvoiceService/Get``:

- sequential: one thread, one call at a time;
- 8 threads sharing one channel;
- asyncio (``grpc.aio``) with ``--inflight`` calls in flight.

The ratio column is sandbox / echo: how much of a bare grpcio server's throughput the sandbox keeps while
doing its real work per call (JWT check, scope, tenancy, rate limit and knobs, store lookup, call record).

    python benchmarks/sandbox_throughput.py [--calls 2000] [--rounds 3] [--inflight 50]
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
import httpx

from invora._catalog import service

SVC = service("simple.invoices")


def _read_line(proc: subprocess.Popen[str], what: str) -> str:
    line: list[str] = []
    t = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    t.start()
    t.join(120)
    if not line or not line[0].strip():
        proc.kill()
        raise SystemExit(f"{what} did not start")
    return line[0]


def _raw_get(channel: Any) -> Any:
    """SimpleInvoiceService/Get as a plain grpcio multicallable (sync or aio channel)."""
    get = SVC.method("Get")
    return channel.unary_unary(
        get.path,
        request_serializer=get.request_class.SerializeToString,
        response_deserializer=get.response_class.FromString,
    )


def serve_echo() -> None:
    """Child process: a bare grpcio server answering Get with a fixed, realistic invoice."""
    from invora.sandbox.app import Sandbox
    from invora.sandbox.domain import simple

    sb = Sandbox()  # not started: used only to compute one realistic invoice
    simple.seed_invoices(sb, sb.org_id, 1)
    (rec,) = sb.store.coll(sb.org_id, simple._coll(simple.INVOICES)).values()
    get = SVC.method("Get")
    response = get.response_class(details=rec.msg)

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        return response

    rpc = grpc.unary_unary_rpc_method_handler(
        handler, get.request_class.FromString, get.response_class.SerializeToString
    )
    generic = grpc.method_handlers_generic_handler(SVC.full_name, {"Get": rpc})
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32), handlers=[generic], options=[("grpc.so_reuseport", 0)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"grpc_target": f"127.0.0.1:{port}"}), flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        server.stop(0)


class Target:
    def __init__(self, name: str, grpc_target: str, metadata: tuple[tuple[str, str], ...], key: str) -> None:
        self.name = name
        self.target = grpc_target
        self.metadata = metadata
        self.channel = grpc.insecure_channel(grpc_target)
        self.get = _raw_get(self.channel)
        self.request = SVC.method("Get").request_class(key=key)

    def sequential(self, n: int) -> int:
        get, req, md = self.get, self.request, self.metadata
        for _ in range(n):
            get(req, metadata=md, timeout=30)
        return n

    def threads(self, n: int) -> int:
        get, req, md = self.get, self.request, self.metadata
        per = n // 8

        def worker() -> None:
            for _ in range(per):
                get(req, metadata=md, timeout=30)

        with futures.ThreadPoolExecutor(8) as pool:
            for f in [pool.submit(worker) for _ in range(8)]:
                f.result()
        return per * 8

    def aio(self, n: int, inflight: int) -> int:
        async def run() -> int:
            async with grpc.aio.insecure_channel(self.target) as ch:
                get = _raw_get(ch)
                req, md = self.request, self.metadata
                sem = asyncio.Semaphore(inflight)

                async def one() -> None:
                    async with sem:
                        await get(req, metadata=md, timeout=30)

                await asyncio.gather(*(one() for _ in range(n)))
            return n

        return asyncio.run(run())


def rate(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inflight", type=int, default=50)
    p.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_echo:
        serve_echo()
        return 0

    sandbox = subprocess.Popen(
        [sys.executable, "-m", "invora.sandbox", "--grpc-port", "0", "--http-port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    echo = subprocess.Popen(
        [sys.executable, __file__, "--serve-echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        info = json.loads(_read_line(sandbox, "the sandbox"))
        echo_info = json.loads(_read_line(echo, "the echo server"))
        token = httpx.post(
            info["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
            timeout=30,
        ).json()["access_token"]
        md = (("authorization", f"Bearer {token}"), ("x-target-org-id", info["org_id"]))
        probe = Target("probe", info["grpc_target"], md, "")
        lst = SVC.method("List")
        list_mc = probe.channel.unary_unary(
            lst.path,
            request_serializer=lst.request_class.SerializeToString,
            response_deserializer=lst.response_class.FromString,
        )
        key = list_mc(lst.request_class(), metadata=md, timeout=30).items[0].key
        sb = Target("sandbox", info["grpc_target"], md, key)
        raw = Target("echo", echo_info["grpc_target"], md, key)
        n = args.calls
        modes: dict[str, Callable[[Target], int]] = {
            "sequential": lambda t: t.sequential(n),
            "8 threads": lambda t: t.threads(n),
            f"asyncio, {args.inflight} in flight": lambda t: t.aio(n, args.inflight),
        }
        for t in (sb, raw):  # warm up channels, caches and thread pools
            t.sequential(200)
            t.threads(400)
        results: dict[str, dict[str, list[float]]] = {m: {"sandbox": [], "echo": []} for m in modes}
        for _ in range(args.rounds):
            for mode, fn in modes.items():
                for t in (sb, raw):
                    results[mode][t.name].append(rate(lambda t=t, fn=fn: fn(t)))  # type: ignore[misc]
        print(f"SimpleInvoiceService/Get, {n} calls per measurement, median of {args.rounds} rounds")
        print(f"{'mode':<28}{'sandbox calls/s':>18}{'echo calls/s':>16}{'ratio':>8}")
        for mode, r in results.items():
            s, e = statistics.median(r["sandbox"]), statistics.median(r["echo"])
            print(f"{mode:<28}{s:>18,.0f}{e:>16,.0f}{s / e:>8.2f}")
    finally:
        sandbox.terminate()
        if echo.stdin:
            echo.stdin.close()
        echo.terminate()
        sandbox.wait(30)
        echo.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
