"""Load testing at scale: is the sandbox ever the bottleneck, and does ``invora bench`` use more cores?

Three measurements against one sandbox process (``make bench`` runs them; alone:
``.venv/bin/python benchmarks/scale.py [--seconds 2] [--rounds 3]``):

- **sandbox REST vs sandbox gRPC, 100 in flight**: the sandbox's two servers, each driven by the leanest
  client for its protocol so that the server, not the client, is measured — raw ``grpc.aio`` stubs (100
  calls in flight on one channel) and a minimal asyncio HTTP/1.1 client (100 keep-alive connections, one
  request each at a time, JSON-decoding every answer). Also each server's CPU time per call, read from
  ``/proc`` (what a call costs the sandbox, independent of the client).
- **sandbox gRPC vs a bare grpcio server, 50 in flight**: the same raw stubs against the sandbox and
  against an echo server answering the same message types with a fixed invoice
  (``sandbox_throughput.py --serve-echo``).
- **invora bench --processes 2 vs 1**: the console script, ``simple.invoices.get``, closed loop, 100 in
  flight, 2 channels per process, against the sandbox.

Rounds are interleaved (A B, B A, A B…) and the ratio is the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc.aio
import httpx
import raw_stub
from client_overhead import start_sandbox
from sandbox_throughput import SVC, _read_line

from invora import _catalog, transcoding

GET = _catalog.method("simple.invoices.get")
HERE = Path(__file__).resolve().parent
INVORA = str(Path(sys.executable).with_name("invora"))
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def token(info: dict[str, Any]) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
    }
    return str(httpx.post(info["token_url"], data=form, timeout=30).json()["access_token"])


def metadata(info: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token(info)}"), ("x-target-org-id", info["org_id"]))


def first_key(info: dict[str, Any], md: tuple[tuple[str, str], ...]) -> str:
    async def go() -> str:
        async with grpc.aio.insecure_channel(info["grpc_target"]) as ch:
            stub = raw_stub.stub_class(SVC)(ch)
            resp = await stub.List(SVC.method("List").request_class(), metadata=md, timeout=30)
            return str(resp.items[0].key)

    return asyncio.run(go())


def get_path(key: str) -> str:
    """``SimpleInvoiceService/Get``'s REST path, from its HTTP rule (the SDK's own transcoding)."""
    verb, path, _, _ = transcoding.expand(GET.http, GET.request_class(key=key))
    assert verb == "GET"
    return path


# -- clients ----------------------------------------------------------------------------------------------
def grpc_rate(target: str, md: tuple[tuple[str, str], ...], key: str, seconds: float, inflight: int) -> float:
    """Raw ``grpc.aio`` stub, ``inflight`` calls of ``Get`` in flight on one channel, for ``seconds``."""

    async def go() -> float:
        async with grpc.aio.insecure_channel(target) as ch:
            get = raw_stub.stub_class(SVC)(ch).Get
            req = SVC.method("Get").request_class(key=key)
            await get(req, metadata=md, timeout=30)
            count = 0
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal count
                while time.perf_counter() < deadline:
                    await get(req, metadata=md, timeout=30)
                    count += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(inflight)))
            return count / (time.perf_counter() - t0)

    return asyncio.run(go())


def rest_rate(
    rest_url: str, md: tuple[tuple[str, str], ...], key: str, seconds: float, inflight: int
) -> float:
    """A minimal HTTP/1.1 client: ``inflight`` keep-alive connections, one ``GET`` each at a time."""
    url = urllib.parse.urlsplit(rest_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    path = get_path(key)
    head = f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\naccept: application/json\r\n"
    request = (head + "".join(f"{k}: {v}\r\n" for k, v in md) + "\r\n").encode()

    async def go() -> float:
        count = 0
        deadline = time.perf_counter() + seconds

        async def connection() -> None:
            nonlocal count
            reader, writer = await asyncio.open_connection(host, port)
            try:
                while time.perf_counter() < deadline:
                    writer.write(request)
                    status_and_headers = await reader.readuntil(b"\r\n\r\n")
                    if not status_and_headers.startswith(b"HTTP/1.1 200"):
                        raise SystemExit(f"REST answered {status_and_headers[:60]!r}")
                    length = 0
                    for line in status_and_headers.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    json.loads(await reader.readexactly(length))
                    count += 1
            finally:
                writer.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(inflight)))
        return count / (time.perf_counter() - t0)

    return asyncio.run(go())


def check_rest_route(info: dict[str, Any], md: tuple[tuple[str, str], ...], key: str) -> None:
    path = get_path(key)
    r = httpx.get(info["rest_url"] + path, headers=dict(md), timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:200]}")


def measured(pid: int, fn: Callable[[], float]) -> tuple[float, float]:
    """(rate, server CPU µs per call) of one measurement."""
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    rate = fn()
    calls = rate * (time.perf_counter() - t0)
    return rate, (cpu_seconds(pid) - c0) / max(calls, 1) * 1e6


# -- the rows ---------------------------------------------------------------------------------------------
def rest_vs_grpc_server(
    info: dict[str, Any], pid: int, seconds: float, rounds: int
) -> dict[str, list[float]]:
    md = metadata(info)
    key = first_key(info, md)
    check_rest_route(info, md, key)
    out: dict[str, list[float]] = {"grpc": [], "rest": [], "grpc_cpu": [], "rest_cpu": []}
    sides = {
        "grpc": lambda: grpc_rate(info["grpc_target"], md, key, seconds, 100),
        "rest": lambda: rest_rate(info["rest_url"], md, key, seconds, 100),
    }
    for i in range(rounds):
        for name in ordered(sides, i):
            rate, cpu = measured(pid, sides[name])
            out[name].append(rate)
            out[f"{name}_cpu"].append(cpu)
    return out


def ordered(sides: dict[str, Any], i: int) -> list[str]:
    """A, B in even rounds, B, A in odd ones: a load that drifts during a round favours neither side."""
    names = list(sides)
    return names if i % 2 == 0 else names[::-1]


def start_echo() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "sandbox_throughput.py"), "--serve-echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def sandbox_vs_echo(info: dict[str, Any], seconds: float, rounds: int) -> dict[str, list[float]]:
    md = metadata(info)
    key = first_key(info, md)
    echo = start_echo()
    try:
        echo_target = json.loads(_read_line(echo, "the echo server"))["grpc_target"]
        grpc_rate(echo_target, md, key, 0.5, 50)  # warm up both
        grpc_rate(info["grpc_target"], md, key, 0.5, 50)
        out: dict[str, list[float]] = {"echo": [], "sandbox": []}
        sides = {
            "echo": lambda: grpc_rate(echo_target, md, key, seconds, 50),
            "sandbox": lambda: grpc_rate(info["grpc_target"], md, key, seconds, 50),
        }
        for i in range(rounds):
            for name in ordered(sides, i):
                out[name].append(sides[name]())
        return out
    finally:
        if echo.stdin:
            echo.stdin.close()
        echo.terminate()
        echo.wait(30)


def bench_rps(info: dict[str, Any], key: str, processes: int, seconds: float) -> float:
    env = {
        **os.environ,
        "INVORA_TARGET": info["grpc_target"],
        "INVORA_TOKEN_URL": info["token_url"],
        "INVORA_CLIENT_ID": info["client_id"],
        "INVORA_CLIENT_SECRET": info["client_secret"],
        "INVORA_ORG_ID": info["org_id"],
    }
    cmd = [INVORA, "bench", "simple.invoices.get", "--data", json.dumps({"key": key}), "-c", "100",
           "--connections", "2", "-d", f"{seconds}s", "-p", str(processes), "-o", "json", "-q"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"invora bench failed: {proc.stderr[-400:]}")
    s = json.loads(proc.stdout)
    if s["ok"] != s["count"]:
        raise SystemExit(f"invora bench saw errors: {s['errors']}")
    return float(s["rps"])


def bench_processes(info: dict[str, Any], seconds: float, rounds: int) -> dict[str, list[float]]:
    key = first_key(info, metadata(info))
    out: dict[str, list[float]] = {"1": [], "2": []}
    for i in range(rounds):
        for name in ordered(out, i):
            out[name].append(bench_rps(info, key, int(name), seconds))
    return out


def median_ratio(base: list[float], ours: list[float]) -> float:
    return statistics.median(o / b for b, o in zip(base, ours, strict=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    proc, info = start_sandbox(3)
    try:
        r = rest_vs_grpc_server(info, proc.pid, args.seconds, args.rounds)
        e = sandbox_vs_echo(info, args.seconds, args.rounds)
        b = bench_processes(info, max(args.seconds, 3.0), args.rounds)
    finally:
        proc.terminate()
        proc.wait(10)
    med = statistics.median
    print(f"{'measurement':<46}{'baseline':>12}{'ours':>12}{'ratio':>8}")
    print(f"{'sandbox REST / gRPC, 100 in flight (calls/s)':<46}{med(r['grpc']):>12,.0f}{med(r['rest']):>12,.0f}"
          f"{median_ratio(r['grpc'], r['rest']):>8.2f}")  # fmt: skip
    print(f"{'sandbox CPU per call, REST / gRPC (µs)':<46}{med(r['grpc_cpu']):>12,.0f}{med(r['rest_cpu']):>12,.0f}"
          f"{median_ratio(r['grpc_cpu'], r['rest_cpu']):>8.2f}")  # fmt: skip
    print(f"{'sandbox gRPC / bare grpcio, 50 in flight':<46}{med(e['echo']):>12,.0f}{med(e['sandbox']):>12,.0f}"
          f"{median_ratio(e['echo'], e['sandbox']):>8.2f}")  # fmt: skip
    print(f"{'invora bench -p 2 / -p 1 (calls/s)':<46}{med(b['1']):>12,.0f}{med(b['2']):>12,.0f}"
          f"{median_ratio(b['1'], b['2']):>8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
