"""Recording latencies into an HDR histogram and reporting them as text, JSON or CSV.

Latencies are recorded in microseconds with 3 significant digits from 1 µs to one hour, so percentiles
up to p99.9 are exact to 0.1 % whatever the spread; every call is recorded, failed ones included (a fast
error is still a response the caller waited for), and errors are also counted by status code.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PERCENTILES", "Recorder", "Summary", "format_csv", "format_json", "format_text"]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_MAX_US = 3_600_000_000


def _histogram() -> Any:
    try:
        from hdrh.histogram import HdrHistogram
    except ImportError:
        raise ImportError(
            "invora bench needs the HDR histogram package: pip install 'invora[bench]'"
        ) from None
    return HdrHistogram(1, _MAX_US, 3)


class Recorder:
    """Counts and latencies of one run (single-threaded: the asyncio loop records)."""

    def __init__(self) -> None:
        self.histogram = _histogram()
        self.codes: Counter[str] = Counter()
        self.count = 0
        self.response_bytes = 0

    def record(self, seconds: float, code: str, response_bytes: int = 0) -> None:
        self.histogram.record_value(min(max(int(seconds * 1e6), 1), _MAX_US))
        self.codes[code] += 1
        self.count += 1
        self.response_bytes += response_bytes

    def export(self) -> dict[str, Any]:
        """Everything recorded, as plain data another process can :meth:`merge` (HDR's compressed form)."""
        return {
            "histogram": self.histogram.encode(),
            "codes": dict(self.codes),
            "count": self.count,
            "response_bytes": self.response_bytes,
        }

    def merge(self, exported: dict[str, Any]) -> None:
        """Add another recorder's :meth:`export`: the histograms add bucket by bucket (exact percentiles
        of the union, not an average of percentiles)."""
        from hdrh.histogram import HdrHistogram

        self.histogram.add(HdrHistogram.decode(exported["histogram"]))
        self.codes.update(exported["codes"])
        self.count += int(exported["count"])
        self.response_bytes += int(exported["response_bytes"])


@dataclass(frozen=True)
class Summary:
    """Everything a run measured; ``format_*`` render it, ``asdict`` makes it JSON."""

    method: str
    transport: str
    target: str
    mode: str  # "closed" (concurrency workers, back to back) or "open" (fixed schedule at --rps)
    concurrency: int
    connections: int
    target_rps: float | None
    count: int  # completed calls
    ok: int
    errors: dict[str, int]  # status code name -> count (OK excluded)
    scheduled: int  # open loop: calls due by the schedule; closed loop: equals sent
    sent: int
    duration_s: float
    rps: float  # completed calls per second of the run
    latency_ms: dict[str, float]  # min, mean, stdev, p50 … p99.9, max
    histogram: list[dict[str, float]] = field(default_factory=list)  # [{"le_ms", "count"}], 10 buckets
    processes: int = 1  # load-generating processes (--processes); connections and concurrency are totals

    @classmethod
    def build(
        cls,
        rec: Recorder,
        *,
        method: str,
        transport: str,
        target: str,
        mode: str,
        concurrency: int,
        connections: int,
        target_rps: float | None,
        scheduled: int,
        sent: int,
        duration_s: float,
        processes: int = 1,
    ) -> Summary:
        h = rec.histogram
        latency: dict[str, float] = {}
        buckets: list[dict[str, float]] = []
        if rec.count:
            latency["min"] = h.get_min_value() / 1000
            latency["mean"] = round(h.get_mean_value() / 1000, 3)
            latency["stdev"] = round(h.get_stddev() / 1000, 3)
            for p in PERCENTILES:
                latency[f"p{p:g}"] = h.get_value_at_percentile(p) / 1000
            latency["max"] = h.get_max_value() / 1000
            buckets = _buckets(h, latency["min"], latency["max"])
        errors = {k: v for k, v in sorted(rec.codes.items()) if k != "OK"}
        return cls(
            method=method,
            transport=transport,
            target=target,
            mode=mode,
            concurrency=concurrency,
            connections=connections,
            target_rps=target_rps,
            count=rec.count,
            ok=rec.codes.get("OK", 0),
            errors=errors,
            scheduled=scheduled,
            sent=sent,
            duration_s=round(duration_s, 3),
            rps=round(rec.count / duration_s, 1) if duration_s > 0 else 0.0,
            latency_ms=latency,
            histogram=buckets,
            processes=processes,
        )


def _buckets(h: Any, lo_ms: float, hi_ms: float, n: int = 10) -> list[dict[str, float]]:
    """``n`` equal-width buckets from the fastest to the slowest call (upper bounds, counts)."""
    width = (hi_ms - lo_ms) / n or 0.001
    bounds = [lo_ms + width * (i + 1) for i in range(n)]
    counts = [0] * n
    for item in h.get_recorded_iterator():
        ms = h.get_highest_equivalent_value(item.value_iterated_to) / 1000
        i = min(int((ms - lo_ms) / width), n - 1) if ms > lo_ms else 0
        counts[i] += item.count_at_value_iterated_to
    return [{"le_ms": round(b, 3), "count": c} for b, c in zip(bounds, counts, strict=True)]


def format_json(summary: Summary) -> str:
    return json.dumps(asdict(summary), indent=2)


def format_csv(summary: Summary) -> str:
    """One header row and one data row; errors as ``errors_<CODE>`` columns, latencies as ``<stat>_ms``."""
    row: dict[str, Any] = {}
    for key, value in asdict(summary).items():
        if key == "errors":
            row["errors"] = sum(value.values())
            row.update({f"errors_{code}": n for code, n in value.items()})
        elif key == "latency_ms":
            row.update({f"{stat.replace('.', '_')}_ms": v for stat, v in value.items()})
        elif key != "histogram":
            row[key] = "" if value is None else value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return out.getvalue()


def format_text(s: Summary) -> str:
    mode = (
        f"open loop at {s.target_rps:g} req/s (max {s.concurrency} in flight)"
        if s.mode == "open"
        else f"closed loop, {s.concurrency} concurrent"
    )
    lines = [
        "Summary:",
        f"  Method:       {s.method}",
        f"  Target:       {s.target} ({s.transport}, {s.connections} connection{'s' * (s.connections != 1)}"
        + (f", {s.processes} processes)" if s.processes > 1 else ")"),
        f"  Mode:         {mode}",
        f"  Count:        {s.count}",
        f"  Duration:     {s.duration_s:.2f} s",
        f"  Requests/sec: {s.rps:.1f}",
    ]
    if s.mode == "open":
        lines.append(f"  Sent:         {s.sent} of {s.scheduled} scheduled")
    status = ", ".join([f"OK {s.ok}"] + [f"{code} {n}" for code, n in s.errors.items()])
    lines.append(f"  Status codes: {status}")
    if s.latency_ms:
        lat = s.latency_ms
        lines += ["", "Latency (ms):"]
        for key in ("min", "mean", "stdev", *(f"p{p:g}" for p in PERCENTILES), "max"):
            lines.append(f"  {key:<6} {lat[key]:10.3f}")
        lines += ["", "Histogram (ms):"]
        top = max(b["count"] for b in s.histogram) or 1
        for b in s.histogram:
            bar = "■" * round(40 * b["count"] / top)
            lines.append(f"  {b['le_ms']:10.3f} [{int(b['count']):>8}] |{bar}")
    return "\n".join(lines) + "\n"
