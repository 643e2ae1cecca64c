"""Locust runs for real: headless and as one master with two workers, as subprocesses against the session
sandbox over loopback. What Locust recorded is checked against what the sandbox served.

Locust monkey-patches the standard library on import, so it is never imported into the test process.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _hardening import free_port

import invora

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LOCUST = [sys.executable, "-m", "locust"]
LIST = "invora.simple.invoices.v1.SimpleInvoiceService/List"
GET = "invora.simple.invoices.v1.SimpleInvoiceService/Get"
CREATE = "invora.simple.invoices.v1.SimpleInvoiceService/Create"


def env_for(sb: Any, tenant: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVORA_")}
    env.update(
        INVORA_TOKEN_URL=sb.token_url,
        INVORA_CLIENT_ID=tenant.client_id,
        INVORA_CLIENT_SECRET=tenant.client_secret,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


# Loaded next to the locustfile under test (`-f file,stop.py`): stops the run once the statistics hold enough
# calls (rather than after some seconds, which a loaded machine fills with fewer), then writes Locust's
# failures as its CSV report groups them (that file is only rewritten every second, so may miss the last ones).
STOP = """
import json

import gevent
from locust import events
from locust.runners import WorkerRunner
from locust.stats import StatsError

NEED, CALLS, FAILURES = {need!r}, {calls!r}, {failures!r}


@events.test_start.add_listener
def stop_when_enough(environment, **kwargs):
    if isinstance(environment.runner, WorkerRunner):
        return  # the master sees every worker's calls and stops them all

    def watch():
        stats = environment.stats
        while not (
            stats.total.num_requests >= CALLS
            and all(sum(e.num_requests for e in stats.entries.values() if e.name == name) >= n
                    for name, n in NEED.items())
        ):
            gevent.sleep(0.05)
        environment.runner.quit()

    gevent.spawn(watch)


@events.quitting.add_listener
def write_failures(environment, **kwargs):
    if not isinstance(environment.runner, WorkerRunner):
        rows = [[e.method, e.name, StatsError.parse_error(e.error), e.occurrences]
                for e in environment.stats.errors.values()]
        with open(FAILURES, "w") as f:
            json.dump(rows, f)
"""


def run_until(tmp_path: Path, locustfile: Path, need: dict[str, int], users: int) -> str:
    """``-f`` for ``locustfile`` plus the stop above: every name in ``need`` called that often, and more than
    ten calls per user in all, so that `accounted` has calls to account for."""
    stop = tmp_path / "stop.py"
    stop.write_text(STOP.format(need=need, calls=10 * users + 1, failures=str(tmp_path / "failures.json")))
    return f"{locustfile},{stop}"


def headless(users: int, json_file: Path) -> list[str]:
    # -t only caps a run that never collects its calls (its assertions then say what is missing).
    return ["--headless", "-u", str(users), "-r", str(users), "-t", "60s", "--stop-timeout", "10",
            "--json-file", str(json_file.with_suffix(""))]  # fmt: skip


def stats(json_file: Path) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in json.loads(json_file.read_text())}


def served(sb: Any, tenant: Any, transport: str) -> collections.Counter[tuple[str, str]]:
    """(method, status) of every call the sandbox served for the tenant over the transport."""
    return collections.Counter(
        (c.method, c.code.name) for c in sb.calls if c.org_id == tenant.org_id and c.transport == transport
    )


def recorded(entries: dict[str, dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    out: collections.Counter[tuple[str, str]] = collections.Counter()
    for name, e in entries.items():
        out[name, "OK"] += e["num_requests"] - e["num_failures"]
        if e["num_failures"]:
            out[name, "NOT_FOUND"] += e["num_failures"]
    return +out


def accounted(
    entries: dict[str, dict[str, Any]], served: collections.Counter[tuple[str, str]], users: int
) -> None:
    """Every recorded call was served, once. The only calls served but not recorded are those a user had in
    flight when Locust killed it at the end of the run (a waiting user that has just woken up is killed
    mid-call): at most one per user."""
    rec = recorded(entries)
    assert not rec - served, f"recorded but never served: {rec - served}"
    unrecorded = served - rec
    assert sum(unrecorded.values()) <= users, f"served but not recorded: {unrecorded}"
    assert sum(rec.values()) > 10 * users


def check(r: subprocess.CompletedProcess[str], secret: str, code: int = 0) -> None:
    assert r.returncode == code, (
        f"exit {r.returncode}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    )
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert secret not in r.stdout + r.stderr


def test_example_locustfile_headless_over_grpc(invora_sandbox: Any, tmp_path: Path) -> None:
    tenant = invora_sandbox.create_tenant("Locust gRPC Co")
    out = tmp_path / "stats.json"
    tokens_before = invora_sandbox.token_requests
    locustfile = run_until(tmp_path, ROOT / "examples" / "locustfile.py", {LIST: 1, GET: 1, CREATE: 1}, 5)
    r = subprocess.run(
        [*LOCUST, "-f", locustfile, "--host", invora_sandbox.grpc_target, *headless(5, out)],
        env=env_for(invora_sandbox, tenant), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    check(r, tenant.client_secret)
    entries = stats(out)
    assert set(entries) == {LIST, GET, CREATE}
    assert {e["method"] for e in entries.values()} == {"grpc"}
    assert all(e["num_requests"] > 0 and e["num_failures"] == 0 for e in entries.values())
    assert all(e["total_content_length"] > 0 for e in entries.values())  # response sizes are reported
    accounted(entries, served(invora_sandbox, tenant, "grpc"), users=5)
    assert invora_sandbox.token_requests - tokens_before == 1  # five users, one client, one token


LOCUSTFILE = """
    import invora
    from locust import constant, task
    from invora.loadtest.locust import InvoraUser


    class Reader(InvoraUser):
        wait_time = constant(0.01)

        @task(2)
        def read_all(self):
            assert len(list(self.client.simple.invoices.list(page_size=10))) == 25  # three pages

        @task(1)
        def missing(self):
            try:
                self.client.simple.invoices.get(key="no-such-invoice")
            except invora.NotFound:
                pass
"""


def seed(sb: Any, tenant: Any, count: int) -> None:
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    with invora.Client(sb.grpc_target, credentials=creds) as client:
        for i in range(count):
            line = {"description": "Item", "quantity": {"units": 1}, "unit_price": {"units": 10}}
            client.simple.invoices.create(
                changes={"currency_code": "SAR", "buyer": {"name": f"Buyer {i}"}, "lines": [line]}
            )


def test_pages_and_failures_over_rest(invora_sandbox: Any, tmp_path: Path) -> None:
    tenant = invora_sandbox.create_tenant("Locust REST Co")
    seed(invora_sandbox, tenant, 25)
    (tmp_path / "locustfile.py").write_text(textwrap.dedent(LOCUSTFILE))
    out = tmp_path / "stats.json"
    locustfile = run_until(tmp_path, tmp_path / "locustfile.py", {LIST: 3, GET: 1}, 3)
    r = subprocess.run(
        [*LOCUST, "-f", locustfile, "--host", invora_sandbox.rest_url, *headless(3, out)],
        cwd=tmp_path, env=env_for(invora_sandbox, tenant, INVORA_TRANSPORT="rest"), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    check(r, tenant.client_secret, code=1)  # Locust exits 1 when any request failed
    entries = stats(out)
    assert {e["method"] for e in entries.values()} == {"rest"}
    pages, gets = entries[LIST], entries[GET]
    # Every page is a request of its own: each read_all is three List requests, and `accounted` below
    # holds only if all of them were reported.
    assert pages["num_requests"] >= 3 and pages["num_failures"] == 0
    assert gets["num_requests"] > 0 and gets["num_failures"] == gets["num_requests"]
    accounted(
        entries, served(invora_sandbox, tenant, "rest") - collections.Counter({(CREATE, "OK"): 25}), users=3
    )
    # Failures group by status: one row, whatever the message.
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert len(failures) == 1, failures
    assert failures[0][:2] == ["rest", GET] and failures[0][2].startswith("NotFound(code=NOT_FOUND"), failures
    assert failures[0][3] == gets["num_failures"]
    assert "HTTP Request:" not in r.stderr  # httpx's per-request log lines are kept out of Locust's log


def test_master_and_two_workers_on_loopback(invora_sandbox: Any, tmp_path: Path) -> None:
    tenant = invora_sandbox.create_tenant("Locust Distributed Co")
    env = env_for(invora_sandbox, tenant)
    locustfile = run_until(tmp_path, ROOT / "examples" / "locustfile.py", {LIST: 1, GET: 1, CREATE: 1}, 4)
    port = free_port()
    out = tmp_path / "stats.json"
    tokens_before = invora_sandbox.token_requests
    master = subprocess.Popen(
        [*LOCUST, "-f", locustfile, "--host", invora_sandbox.grpc_target, "--master", "--master-bind-host",
         "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "2", "--expect-workers-max-wait",
         "30", *headless(4, out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = [*LOCUST, "-f", locustfile, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    workers = [
        subprocess.Popen(worker, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        m_out, m_err = master.communicate(timeout=120)
        results = [w.communicate(timeout=30) for w in workers]
    finally:
        for p in (master, *workers):
            p.kill() if p.poll() is None else None
    check(subprocess.CompletedProcess([], master.returncode, m_out, m_err), tenant.client_secret)
    for w, (w_out, w_err) in zip(workers, results, strict=True):
        check(subprocess.CompletedProcess([], w.returncode, w_out, w_err), tenant.client_secret)
    entries = stats(out)
    assert set(entries) == {LIST, GET, CREATE}
    # The master's totals are the sum of both workers' calls: everything the sandbox served.
    accounted(entries, served(invora_sandbox, tenant, "grpc"), users=4)
    # Both workers ran users: each worker process fetched one token, shared by its users.
    assert invora_sandbox.token_requests - tokens_before == 2


def test_a_missing_target_is_a_clear_error(invora_sandbox: Any, tmp_path: Path) -> None:
    tenant = invora_sandbox.create_tenant("Locust Misconfigured Co")
    script = textwrap.dedent("""
        import invora
        from locust.env import Environment
        from invora.loadtest.locust import InvoraUser

        class U(InvoraUser):
            pass

        try:
            U(Environment(user_classes=[U]))
        except invora.ConfigurationError as exc:
            print(exc)
    """)
    r = subprocess.run([sys.executable, "-c", script], env=env_for(invora_sandbox, tenant), capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    check(r, tenant.client_secret)
    assert "U: no target: pass --host" in r.stdout and "never defaults to production" in r.stdout
