"""The per-call cost of ``Client(schema_check="warn")`` after its one check: calls/s on vs off.

Two clients against the same sandbox process, same credentials and channel options; the "warn" client
checks ``SimpleInvoiceService`` (reconstructed wire facts) through reflection on its first call, which the
warm-up absorbs. Interleaved rounds of sequential ``Get`` calls; the ratio (on / off, median of per-round
ratios) should be 1.0 within noise: the check unwraps itself.

    python benchmarks/schema_check.py [--calls 1000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from typing import Any

from client_overhead import interleaved, start_sandbox

import invora


def measure(info: dict[str, Any], calls: int, rounds: int) -> tuple[list[float], list[float]]:
    """Calls/s per round: ``schema_check="off"``, then ``"warn"``."""
    creds = invora.ClientCredentials(info["client_id"], info["client_secret"], info["token_url"])

    def client(mode: str) -> invora.Client:
        return invora.Client(info["grpc_target"], credentials=creds, org_id=info["org_id"], schema_check=mode)

    off, warn = client("off"), client("warn")
    try:
        key = next(iter(off.simple.invoices.list(page_size=1))).key

        def loop(c: invora.Client) -> Any:
            def run() -> int:
                get = c.simple.invoices.get
                for _ in range(calls):
                    get(key=key)
                return calls

            return run

        return interleaved(rounds, loop(off), loop(warn))
    finally:
        off.close()
        warn.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=6)
    args = p.parse_args()
    proc, info = start_sandbox(10)
    try:
        off, warn = measure(info, args.calls, args.rounds)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    ratio = statistics.median(w / o for o, w in zip(off, warn, strict=True))
    print(f"schema_check off  {statistics.median(off):,.0f} calls/s")
    print(f"schema_check warn {statistics.median(warn):,.0f} calls/s")
    print(f"ratio warn/off    {ratio:.3f} (median of {args.rounds} interleaved rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
