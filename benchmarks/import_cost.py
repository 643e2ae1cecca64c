"""Import cost of the SDK: ``import invora`` vs ``import grpc``, and the first use of a large service.

The schema has ~185 generated modules (the UBL models alone are megabytes of descriptors), so the SDK
loads them lazily. This script measures, each in fresh interpreters (median of N rounds; each round runs
every probe once, so a burst of load from elsewhere hits all of them alike, and the time ratios are the
median of the rounds' ratios):

- wall time and peak RSS of ``import grpc`` (the floor every gRPC client pays),
- the same for ``import invora`` (the package's ``__init__`` only: every name resolves on first use),
- and for ``import invora; invora.Client`` (what a program pays before its first call: client, grpc, auth,
  errors; the ratio that matters, target <= 1.2x ``import grpc``),
- the time from a started interpreter with ``invora`` imported to the first documents-service request
  message (which pulls in the documents and UBL modules), and the RSS after it.

    python benchmarks/import_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
{stmt}
t1 = time.perf_counter()
{after}
t2 = time.perf_counter()
try:  # the peak RSS of this image; ru_maxrss would inherit the parent's peak across fork on Linux
    rss = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
except (OSError, StopIteration):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"import": t1 - t0, "after": t2 - t1,
                   "rss_kb": rss,
                   "modules": len(sys.modules)}}))
"""

CLIENT_READY = "import invora; invora.Client"

FIRST_USE = (
    "from invora import _catalog\n"
    "_catalog.service('documents').method('Create').request_class()\n"
    "import invora._proto.services.documents\n"
)


def measure(probes: dict[str, tuple[str, str]], runs: int = 7) -> dict[str, list[dict[str, float]]]:
    """Every round runs each ``name: (statement, after)`` probe once; the samples per name, in round order."""
    # One unmeasured run each that may write bytecode: an installed package has its .pyc files (pip writes
    # them), a source checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise compile on every run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for stmt, after in probes.values():
        subprocess.run([sys.executable, "-c", f"{stmt}\n{after}"], env=env, capture_output=True, check=True)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in probes}
    for _ in range(runs):
        for name, (stmt, after) in probes.items():
            out = subprocess.run(
                [sys.executable, "-c", PROBE.format(stmt=stmt, after=after)],
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(json.loads(out.stdout))
    return samples


def median(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def time_ratio(ours: list[dict[str, float]], base: list[dict[str, float]], key: str = "import") -> float:
    """The median of the rounds' ``ours / base`` time ratios."""
    return statistics.median(o[key] / b[key] for o, b in zip(ours, base, strict=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    samples = measure(
        {
            "base": ("pass", "pass"),
            "grpc": ("import grpc", "pass"),
            "sdk": ("import invora", "pass"),
            "ready": (CLIENT_READY, "pass"),
            "first": (CLIENT_READY, FIRST_USE),
        },
        runs=args.runs,
    )
    base, grpc, sdk, ready, first = (median(samples[k]) for k in ("base", "grpc", "sdk", "ready", "first"))
    rows = [
        ("import grpc", grpc["import"], grpc["rss_kb"] - base["rss_kb"], grpc["modules"]),
        ("import invora", sdk["import"], sdk["rss_kb"] - base["rss_kb"], sdk["modules"]),
        ("invora.Client ready", ready["import"], ready["rss_kb"] - base["rss_kb"], ready["modules"]),
        ("first documents use", first["after"], first["rss_kb"] - base["rss_kb"], first["modules"]),
    ]
    print(f"{'step':<22}{'time ms':>10}{'RSS +MiB':>11}{'modules':>9}")
    for name, secs, rss, mods in rows:
        print(f"{name:<22}{secs * 1000:>10.1f}{rss / 1024:>11.1f}{mods:>9.0f}")
    g_rss = max(1, grpc["rss_kb"] - base["rss_kb"])
    for label, key, m in (("import invora", "sdk", sdk), ("invora.Client ready", "ready", ready)):
        print(
            f"ratio {label} / import grpc: time {time_ratio(samples[key], samples['grpc']):.2f}x, "
            f"RSS {(m['rss_kb'] - base['rss_kb']) / g_rss:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
