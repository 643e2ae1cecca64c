"""SDK/raw of two source trees measured in the same minutes: did a change make the per-call layer slower?

The SDK/raw ratios swing by several percent from one run to the next on a shared 2-core machine, so a
figure from last week compared with one from today says little. This starts one sandbox (this tree's) and
runs each tree's own ``Bench`` (its client and its raw baseline, each as that tree measures them: sync
sequential, sync 8 threads, asyncio 100 in flight) in turn, in fresh interpreters with that tree's ``src``
and ``benchmarks`` first on the path, ``--runs`` times. It prints, per tree and shape, the median of the
runs' SDK/raw ratios and, for blocking calls, the client CPU per call above the raw stub's (process time,
which a slow neighbour moves less than wall time).

    git worktree add /tmp/v010 f75d597   # the 0.1.0 tree
    .venv/bin/python benchmarks/compare_trees.py /tmp/v010 . [--runs 10] [--calls 300] [--rounds 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from client_overhead import start_sandbox

# One run in a tree: for each shape, interleaved blocks of raw and SDK calls; per block the wall rate and,
# for the blocking shapes, the process CPU per call (asyncio's rounds report rates only).
WORKER = r"""
import argparse, asyncio, json, statistics, sys, time
from client_overhead import Bench
info = json.load(open(sys.argv[1]))
calls, rounds = int(sys.argv[2]), int(sys.argv[3])
bench = Bench(info, argparse.Namespace(calls=calls, rounds=rounds, page_size=50, work_ms=5.0))

def block(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    n = fn()
    return (time.process_time() - c0) / n * 1e6, n / (time.perf_counter() - w0)

def blocking(raw, sdk, n, rounds):
    bench.args.calls = n
    raw(), sdk()  # warm-up
    cpu, ratio = [], []
    for r in range(rounds):
        order = [raw, sdk] if r % 2 == 0 else [sdk, raw]
        got = {fn.__name__: block(fn) for fn in order}
        (raw_cpu, raw_rate), (sdk_cpu, sdk_rate) = got[raw.__name__], got[sdk.__name__]
        cpu.append(sdk_cpu - raw_cpu)
        ratio.append(sdk_rate / raw_rate)
    return {"ratio": statistics.median(ratio), "cpu_us": statistics.median(cpu)}

out = {
    "sequential": blocking(bench.raw_seq, bench.sdk_seq, calls, rounds),
    "8 threads": blocking(bench.raw_threads, bench.sdk_threads, calls * 8 // 3, rounds // 2),
}
bench.args.calls = calls * 8 // 3
raw, sdk = asyncio.run(bench.async_rounds(rounds // 2))
out["asyncio 100"] = {"ratio": statistics.median(s / r for r, s in zip(raw, sdk))}
print(json.dumps(out))
"""


def run_tree(tree: Path, info_path: str, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree / "src"), str(tree / "benchmarks")]))
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, info_path, str(calls), str(rounds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the run in {tree} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trees", nargs="+", type=Path, help="source trees (each with src/ and benchmarks/)")
    p.add_argument("--runs", type=int, default=10, help="runs per tree, alternating between the trees")
    p.add_argument(
        "--calls", type=int, default=300, help="calls per sequential block (8/3 of it for the others)"
    )
    p.add_argument("--rounds", type=int, default=16, help="raw/SDK block pairs per run (half for the others)")
    args = p.parse_args()
    trees = [t.resolve() for t in args.trees]
    proc, info = start_sandbox(50)
    results: dict[Path, list[dict[str, dict[str, float]]]] = {t: [] for t in trees}
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(info, f)
            f.flush()
            for i in range(args.runs):
                for tree in trees if i % 2 == 0 else trees[::-1]:
                    results[tree].append(run_tree(tree, f.name, args.calls, args.rounds))
                    print(f"run {i + 1}/{args.runs} {tree}: {json.dumps(results[tree][-1])}", file=sys.stderr)
    finally:
        proc.kill()
        proc.wait()
    print(f"\n{'tree':<34} {'shape':<12} {'SDK/raw':>8} {'range':>12} {'CPU µs/call over raw':>21}")
    for tree, runs in results.items():
        for shape in runs[0]:
            ratios = sorted(r[shape]["ratio"] for r in runs)
            cpus = [r[shape]["cpu_us"] for r in runs if "cpu_us" in r[shape]]
            cpu = f"{statistics.median(cpus):.1f}" if cpus else "-"
            spread = f"{ratios[0]:.3f}-{ratios[-1]:.3f}"
            print(f"{tree!s:<34} {shape:<12} {statistics.median(ratios):>8.3f} {spread:>12} {cpu:>21}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
