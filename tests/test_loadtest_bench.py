"""``invora bench``: templates, the report, and the console script against a real sandbox.

The sandbox runs in this process (its servers on real loopback ports, in threads) so tests can set its
latency and error knobs; the load generator runs as the real ``invora`` console script in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import invora
from invora import _catalog
from invora.loadtest.engine import Plan
from invora.loadtest.report import Recorder, Summary, format_csv, format_json, format_text
from invora.loadtest.template import Template, TemplateError
from invora.sandbox import Sandbox

INVORA = str(Path(sys.executable).with_name("invora"))
LIST = "invora.simple.invoices.v1.SimpleInvoiceService/List"
CREATE = _catalog.method("simple.invoices.create")


# -- templates ------------------------------------------------------------------------------------------
def test_static_template_is_parsed_once_and_reused() -> None:
    t = Template(CREATE.request_class, {"key": "k1", "freezeImmediately": True})
    first, second = t.render(), t.render()
    assert first is second and not t.dynamic
    assert first.key == "k1" and first.freeze_immediately


def test_placeholders_fill_each_call() -> None:
    t = Template(
        CREATE.request_class,
        {
            "key": "inv-{{seq}}",
            "requestId": "{{uuid}}",
            "changes": {
                "currencyCode": "{{choice:SAR, EGP}}",
                "note": "{{randint:3,5}}",
                "lines": [{"description": "at {{now}}"}],
            },
        },
        seed=7,
    )
    made = [t.render() for _ in range(50)]
    assert [m.key for m in made] == [f"inv-{i}" for i in range(1, 51)]
    assert len({m.request_id for m in made}) == 50
    assert all(uuid.UUID(m.request_id).version == 4 for m in made)
    assert {m.changes.currency_code for m in made} == {"SAR", "EGP"}
    assert {m.changes.note for m in made} == {"3", "4", "5"}
    stamp = made[0].changes.lines[0].description.removeprefix("at ")
    parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - parsed).total_seconds()) < 60


def test_placeholders_fill_integer_fields() -> None:
    t = Template(LIST_INFO.request_class, {"pagination": {"limit": "{{randint:1,3}}", "skip": "{{seq}}"}})
    made = [t.render() for _ in range(3)]
    assert [m.pagination.skip for m in made] == [1, 2, 3]
    assert all(1 <= m.pagination.limit.value <= 3 for m in made)


LIST_INFO = _catalog.method(LIST)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "{{uid}}"}, "unknown placeholder '{{uid}}'"),
        ({"key": "{{choice:}}"}, "{{choice:...}} needs comma-separated values"),
        ({"key": "{{randint:9,1}}"}, "LO must not exceed HI"),
        ({"key": "{{randint:a,b}}"}, "needs two integers"),
        ({"invoice": {}}, 'has no field named "invoice"'),
        ({"pagination": {"limit": "{{uuid}}"}}, "invalid request for invora.simple.invoices.v1.ListRequest"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_templates_fail_before_any_call(data: object, message: str) -> None:
    info = LIST_INFO if "pagination" in str(data) else CREATE
    with pytest.raises(TemplateError) as err:
        Template(info.request_class, data)
    assert message in str(err.value)


# -- report ---------------------------------------------------------------------------------------------
def _summary(rec: Recorder, **kw: object) -> Summary:
    base: dict[str, object] = {
        "method": LIST,
        "transport": "grpc",
        "target": "127.0.0.1:1",
        "mode": "closed",
        "concurrency": 4,
        "connections": 1,
        "target_rps": None,
        "scheduled": rec.count,
        "sent": rec.count,
        "duration_s": 2.0,
    }
    base.update(kw)
    return Summary.build(rec, **base)  # type: ignore[arg-type]


def test_summary_percentiles_histogram_and_formats() -> None:
    rec = Recorder()
    for ms in range(1, 1001):  # 1 ms … 1000 ms, one call each
        rec.record(ms / 1000, "OK" if ms % 10 else "UNAVAILABLE", 100)
    s = _summary(rec)
    assert s.count == 1000 and s.ok == 900 and s.errors == {"UNAVAILABLE": 100}
    assert s.rps == 500.0
    lat = s.latency_ms
    assert lat["min"] == pytest.approx(1, rel=0.01) and lat["max"] == pytest.approx(1000, rel=0.01)
    assert lat["p50"] == pytest.approx(500, rel=0.01) and lat["p99"] == pytest.approx(990, rel=0.01)
    assert lat["p99.9"] == pytest.approx(999, rel=0.01)
    assert sum(b["count"] for b in s.histogram) == 1000 and len(s.histogram) == 10
    assert all(90 <= b["count"] <= 110 for b in s.histogram)  # uniform input, equal-width buckets
    data = json.loads(format_json(s))
    assert data["errors"] == {"UNAVAILABLE": 100} and data["latency_ms"]["p90"] == pytest.approx(
        900, rel=0.01
    )
    header, row = format_csv(s).splitlines()
    fields = dict(zip(header.split(","), row.split(","), strict=True))
    assert fields["errors"] == "100" and fields["errors_UNAVAILABLE"] == "100" and "p99_9_ms" in fields
    text = format_text(s)
    assert "Status codes: OK 900, UNAVAILABLE 100" in text and "p99.9" in text


def test_summary_of_nothing_renders() -> None:
    s = _summary(Recorder())
    assert s.count == 0 and s.latency_ms == {} and "Count:        0" in format_text(s)
    assert json.loads(format_json(s))["count"] == 0


def test_plan_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="duration or a total"):
        Plan(duration=None, total=None)
    with pytest.raises(ValueError, match="rps"):
        Plan(rps=0)
    with pytest.raises(ValueError, match="concurrency"):
        Plan(concurrency=0)


# -- the console script against a sandbox ----------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=3) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    yield sandbox
    sandbox.set_latency(0)
    sandbox.set_error_rate(0, LIST)


def bench(
    sb: Sandbox, *args: str, rest: bool = False, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INVORA_TARGET": sb.rest_url if rest else sb.grpc_target,
        "INVORA_TRANSPORT": "rest" if rest else "grpc",
        "INVORA_TOKEN_URL": sb.token_url,
        "INVORA_CLIENT_ID": sb.client_id,
        "INVORA_CLIENT_SECRET": secret or sb.client_secret,
    }
    return subprocess.run(
        [INVORA, "bench", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _calls(sb: Sandbox, method: str) -> int:
    return sum(1 for c in sb.calls if c.method == method)


def test_text_summary_and_progress(sb: Sandbox) -> None:
    proc = bench(
        sb, "simple.invoices.list", "--data", '{"pagination": {"limit": "2"}}', "-d", "1.5", "-c", "4"
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in (
        "Summary:",
        f"Method:       {LIST}",
        "Mode:         closed loop, 4 concurrent",
        "Latency (ms):",
    ):
        assert line in out
    assert "Histogram (ms):" in out and "p99.9" in out
    assert "done, 0 errors" in proc.stderr  # live progress, once a second


def test_json_output_counts_every_call_the_server_saw(sb: Sandbox) -> None:
    sb.clear_calls()
    proc = bench(
        sb, "invora.simple.invoices.v1.SimpleInvoiceService/List", "-n", "120", "-c", "8",
        "--connections", "3", "-o", "json", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --quiet
    s = json.loads(proc.stdout)
    assert {"count", "ok", "errors", "rps", "latency_ms", "histogram", "duration_s", "sent"} <= set(s)
    assert s["count"] == s["ok"] == s["sent"] == 120 and s["errors"] == {}
    assert s["connections"] == 3 and s["mode"] == "closed" and s["transport"] == "grpc"
    assert set(s["latency_ms"]) == {"min", "mean", "stdev", "p50", "p90", "p95", "p99", "p99.9", "max"}
    assert (
        s["latency_ms"]["min"] <= s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
    )
    # 120 measured calls plus one warm-up call per connection, nothing hidden, nothing invented.
    assert _calls(sb, LIST) == 120 + 3


def test_token_is_fetched_once_for_all_connections(sb: Sandbox) -> None:
    before = sb.token_requests
    proc = bench(sb, "simple.invoices.list", "-n", "50", "-c", "10", "--connections", "4", "-q", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert sb.token_requests - before == 1


def test_templates_reach_the_server(sb: Sandbox) -> None:
    data = json.dumps(
        {
            "key": "bench-{{seq}}",
            "requestId": "{{uuid}}",
            "changes": {
                "currencyCode": "{{choice:SAR,EGP}}",
                "buyer": {"name": "B{{seq}}"},
                "lines": [
                    {
                        "description": "x",
                        "quantity": {"units": "{{randint:1,9}}"},
                        "unitPrice": {"units": "10"},
                    }
                ],
            },
        }
    )
    proc = bench(sb, "simple.invoices.create", "--data", data, "-n", "30", "-c", "3", "-q", "-o", "csv")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    fields = dict(zip(header.split(","), row.split(","), strict=True))
    assert fields["count"] == fields["ok"] == "30"
    # The warm-up call renders the template too: keys bench-1 … bench-31 all exist, each created once.
    with sb_client(sb) as client:
        keys = {inv.key for inv in client.simple.invoices.list(filter={"text_search": "bench-"})}
    assert {f"bench-{i}" for i in range(1, 32)} <= keys


def sb_client(sb: Sandbox) -> invora.Client:
    return invora.Client(
        sb.grpc_target, credentials=invora.ClientCredentials(sb.client_id, sb.client_secret, sb.token_url)
    )


def test_errors_are_counted_by_status_code(sb: Sandbox) -> None:
    sb.set_error_rate(0.3, LIST)
    proc = bench(sb, "simple.invoices.list", "-n", "300", "-c", "10", "-q", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["count"] == 300 and set(s["errors"]) == {"UNAVAILABLE"}
    assert s["ok"] + s["errors"]["UNAVAILABLE"] == 300 and s["ok"] > 0 and s["errors"]["UNAVAILABLE"] > 0


def test_every_call_failing_exits_1(sb: Sandbox) -> None:
    proc = bench(sb, "simple.invoices.get", "--data", '{"key": "no-such-invoice"}', "-n", "20", "-q")
    assert proc.returncode == 1
    assert "Status codes: OK 0, NOT_FOUND 20" in proc.stdout


def test_rest_transport(sb: Sandbox) -> None:
    proc = bench(
        sb, "simple.invoices.list", "-n", "40", "-c", "4", "--connections", "2", "-q", "-o", "json", rest=True
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["transport"] == "rest" and s["ok"] == 40 and s["target"] == sb.rest_url.removeprefix("http://")


def test_warmup_with_a_total_counts_only_the_measured_calls(sb: Sandbox) -> None:
    sb.clear_calls()
    proc = bench(sb, "simple.invoices.list", "-n", "40", "-c", "4", "--warmup", "0.3", "-o", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["count"] == s["ok"] == 40
    assert _calls(sb, LIST) > 40 + 1  # the warm-up calls reached the server and were left out


# -- --processes ------------------------------------------------------------------------------------------
def test_merged_recorders_equal_one_recorder_of_every_call() -> None:
    """HDR histograms add bucket by bucket: the merge's percentiles are those of the union."""
    import random

    rng = random.Random(5)
    values = [rng.lognormvariate(-6, 1.2) for _ in range(5000)]
    whole, parts = Recorder(), [Recorder(), Recorder(), Recorder()]
    for i, v in enumerate(values):
        code = "OK" if i % 7 else "UNAVAILABLE"
        whole.record(v, code, 10)
        parts[i % 3].record(v, code, 10)
    merged = Recorder()
    for part in parts:
        merged.merge(part.export())
    assert merged.count == whole.count == 5000 and merged.codes == whole.codes
    assert merged.response_bytes == whole.response_bytes
    for p in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert merged.histogram.get_value_at_percentile(p) == whole.histogram.get_value_at_percentile(p)


def test_seq_interleaves_between_workers() -> None:
    made = [Template(CREATE.request_class, {"key": "k{{seq}}"}, seq=(i + 1, 3)) for i in range(3)]
    keys = [t.render().key for t in made for _ in range(4)]
    assert sorted(keys, key=lambda k: int(k[1:])) == [f"k{i}" for i in range(1, 13)]


def test_processes_merge_exactly_what_the_server_served(sb: Sandbox) -> None:
    sb.clear_calls()
    before = sb.token_requests
    proc = bench(
        sb, "simple.invoices.list", "-n", "301", "-c", "7", "--processes", "3", "--connections", "2",
        "-o", "json", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["processes"] == 3 and s["connections"] == 6 and s["concurrency"] == 7
    assert s["count"] == s["ok"] == s["sent"] == 301 and s["errors"] == {}
    assert sum(b["count"] for b in s["histogram"]) == 301
    # 301 measured calls plus one warm-up per connection (2 in each of 3 workers); one token per worker.
    assert _calls(sb, LIST) == 301 + 6
    assert sb.token_requests - before == 3


def test_processes_split_the_open_loop_timetable(sb: Sandbox) -> None:
    sb.clear_calls()
    proc = bench(sb, "simple.invoices.list", "--rps", "120", "-d", "2", "-p", "2", "-o", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    # Worker i takes calls i, i + 2, …: together they keep the single-process timetable.
    assert s["mode"] == "open" and s["target_rps"] == 120 and s["scheduled"] == 240
    assert s["count"] == s["sent"] == s["ok"] == 240
    assert _calls(sb, LIST) == 240 + 2


def test_processes_show_merged_progress_and_errors(sb: Sandbox) -> None:
    sb.set_error_rate(0.3, LIST)
    proc = bench(sb, "simple.invoices.list", "-d", "2.5", "-c", "6", "-p", "2")
    assert proc.returncode == 0, proc.stderr
    assert "2 processes" in proc.stdout and "UNAVAILABLE" in proc.stdout
    assert "done, " in proc.stderr and " in flight" in proc.stderr  # the parent's merged progress line


def test_processes_bad_credentials_exit_3(sb: Sandbox) -> None:
    secret = "definitely-not-the-secret-0123456789"
    proc = bench(sb, "simple.invoices.list", "-n", "10", "-p", "2", secret=secret)
    assert proc.returncode == 3, proc.stderr
    assert "authentication failed" in proc.stderr and secret not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_open_loop_keeps_its_schedule_when_the_server_is_slow(sb: Sandbox) -> None:
    """At 40 req/s for 3 s against a server that takes 0.25 s per call, all 120 calls go out on time.

    A closed loop with 4 workers can complete at most 4 / 0.25 = 16 calls a second against the same
    server, so its count is bounded by the latency, not by the schedule.
    """
    sb.set_latency(0.25)
    proc = bench(sb, "simple.invoices.list", "--rps", "40", "-d", "3", "-q", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["mode"] == "open" and s["scheduled"] == 120
    assert s["sent"] >= 0.9 * 40 * 3 and s["count"] == s["sent"] and s["ok"] == s["count"]
    assert s["latency_ms"]["p50"] >= 250
    closed = json.loads(bench(sb, "simple.invoices.list", "-c", "4", "-d", "3", "-q", "-o", "json").stdout)
    assert closed["mode"] == "closed" and closed["count"] <= 4 * 3 / 0.25 + 4


@pytest.mark.slow
def test_open_loop_counts_queueing_when_in_flight_is_capped(sb: Sandbox) -> None:
    """Capping in-flight calls below what the schedule needs delays sends; latency counts that delay."""
    sb.set_latency(0.2)
    proc = bench(sb, "simple.invoices.list", "--rps", "20", "-n", "20", "-c", "1", "-q", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    # One call at a time, 0.2 s each, due every 0.05 s: call i starts at 0.2 i, not at its due time
    # 0.05 i, so its latency is at least 0.2 + 0.15 i seconds — 3.05 s for the last one.
    assert s["count"] == 20 and s["latency_ms"]["max"] >= 0.9 * (200 + 150 * 19)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simple.invoices.lst"], "unknown method 'simple.invoices.lst' (did you mean: simple.invoices.list"),
        (["simple.invoices.list", "--data", '{"filter": {"nope": 1}}'], "invalid request for"),
        (["simple.invoices.list", "--data", '{"key": "{{bogus}}"}'], "unknown placeholder"),
        (["simple.invoices.list", "-c", "0"], "must be at least 1"),
        (["simple.invoices.list", "--rps", "-5"], "must be positive"),
        (["simple.invoices.list", "-d", "soon"], "expected a number"),
        (["simple.invoices.list", "--processes", "0"], "must be at least 1"),
        (["simple.invoices.list", "--processes", "many"], "expected a whole number"),
    ],
)
def test_usage_errors_exit_2(sb: Sandbox, args: list[str], message: str) -> None:
    proc = bench(sb, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_credentials_exit_3_without_the_secret(sb: Sandbox) -> None:
    secret = "definitely-not-the-secret-0123456789"
    proc = bench(sb, "simple.invoices.list", "-n", "5", secret=secret)
    assert proc.returncode == 3
    assert "authentication failed" in proc.stderr and "HTTP 401" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_module_entry_point_matches_console_script(sb: Sandbox) -> None:
    env = {
        **os.environ,
        "INVORA_TARGET": sb.grpc_target,
        "INVORA_TOKEN_URL": sb.token_url,
        "INVORA_CLIENT_ID": sb.client_id,
        "INVORA_CLIENT_SECRET": sb.client_secret,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "invora", "bench", "simple.invoices.list", "-n", "5", "-q", "-o", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] == 5


def test_status_code_names_cover_the_grpc_codes() -> None:
    from invora.errors import error_class
    from invora.loadtest.engine import _code_of

    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        assert _code_of(error_class(code)("boom")) == code.name
    assert _code_of(RuntimeError("x")) == "RuntimeError"
