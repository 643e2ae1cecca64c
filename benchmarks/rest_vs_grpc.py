"""REST vs gRPC through the same SDK, against one sandbox in a separate process, measured in one run.

    .venv/bin/python benchmarks/rest_vs_grpc.py [--seconds 2]

Prints calls/second per transport and the REST/gRPC ratio for sync sequential, sync 8 threads and
asyncio with 100 calls in flight (``simple.invoices.get`` of a seeded invoice).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from client_overhead import start_sandbox

import invora


def _client(info: dict[str, Any], transport: str, asynchronous: bool = False) -> Any:
    creds = invora.ClientCredentials(info["client_id"], info["client_secret"], token_url=info["token_url"])
    target = info["grpc_target"] if transport == "grpc" else info["rest_url"]
    cls = invora.AsyncClient if asynchronous else invora.Client
    return cls(target=target, transport=transport, credentials=creds, org_id=info["org_id"])


def sync_rate(client: invora.Client, key: str, seconds: float, threads: int) -> float:
    def worker(deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            client.simple.invoices.get(key=key)
            n += 1
        return n

    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(worker, [deadline] * threads))
    return total / (time.perf_counter() - start)


async def async_rate(client: Any, key: str, seconds: float, in_flight: int) -> float:
    deadline = time.perf_counter() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await client.simple.invoices.get(key=key)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    proc, info = start_sandbox(seed=3)
    try:
        rows = []
        keys: dict[str, str] = {}
        for scenario in ("sync sequential", "sync 8 threads", "asyncio 100 in flight"):
            rates = {}
            for transport in ("grpc", "rest"):
                if scenario.startswith("asyncio"):

                    async def run(t: str = transport) -> float:
                        async with _client(info, t, asynchronous=True) as ac:
                            await ac.simple.invoices.get(key=keys[t])  # warm up: token, connection
                            return await async_rate(ac, keys[t], args.seconds, 100)

                    rates[transport] = asyncio.run(run())
                else:
                    with _client(info, transport) as c:
                        if transport not in keys:
                            keys[transport] = next(iter(c.simple.invoices.list(page_size=1))).key
                        c.simple.invoices.get(key=keys[transport])
                        rates[transport] = sync_rate(
                            c, keys[transport], args.seconds, 1 if "sequential" in scenario else 8
                        )
            rows.append((scenario, rates["grpc"], rates["rest"], rates["rest"] / rates["grpc"]))
        print(f"{'scenario':<24}{'gRPC calls/s':>14}{'REST calls/s':>14}{'REST/gRPC':>11}")
        for name, g, r, ratio in rows:
            print(f"{name:<24}{g:>14.0f}{r:>14.0f}{ratio:>11.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
