"""Seeing what happens: hooks (``Client(hooks=...)``), request ids on the wire and on errors, and the
DEBUG log of each attempt (``INVORA_LOG=debug``) — against the sandbox over real sockets."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from _calls import changes

import invora
from invora.sandbox import Sandbox

GET = "invora.simple.invoices.v1.SimpleInvoiceService/Get"
CREATE = "invora.simple.invoices.v1.SimpleInvoiceService/Create"
FAST = invora.Retry(attempts=3, initial=0.01, maximum=0.02, deadline=10)


@pytest.fixture(scope="module")
def sb() -> Iterator[Any]:
    with Sandbox(grpc_port=0, http_port=0, seed=3) as box:
        yield box


@pytest.fixture()
def tenant(sb: Any) -> Any:
    return sb.create_tenant(f"Hooks {time.monotonic_ns()}")


def make(sb: Any, tenant: Any, transport: str = "grpc", cls: Any = invora.Client, **kw: Any) -> Any:
    kw.setdefault("retry", FAST)
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    target = sb.grpc_target if transport == "grpc" else sb.rest_url
    return cls(target, credentials=creds, org_id=tenant.org_id, transport=transport, **kw)


class Recorder:
    """A hook keeping every event, started and ended."""

    def __init__(self, add: tuple[tuple[str, str], ...] = ()) -> None:
        self.started: list[invora.CallEvent] = []
        self.ended: list[invora.CallEvent] = []
        self.add = add

    def __call__(self, event: invora.CallEvent) -> Any:
        assert event.code is None and event.error is None  # nothing is known yet
        self.started.append(event)
        event.metadata.extend(self.add)
        return self.ended.append


def sent_ids(sb: Any, method: str) -> list[str]:
    return [c.metadata.get("x-request-id", "") for c in sb.calls if c.method == method]


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_hook_sees_each_attempt_with_one_request_id(sb: Any, tenant: Any, transport: str) -> None:
    rec = Recorder(add=(("x-hook-mark", "m1"),))
    with make(sb, tenant, transport, hooks=[rec]) as client:
        key = client.simple.invoices.create(changes=changes("Hooked")).details.key
        sb.clear_calls()
        sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=1)
        assert client.simple.invoices.get(key=key).details.key == key
    create, first, second = rec.ended
    assert create.method == CREATE and create.code == grpc.StatusCode.OK
    # Create carries an idempotency key: it names the call on the wire too.
    assert create.request_id == create.request.request_id and create.request_id
    assert [(e.method, e.attempt, e.code) for e in (first, second)] == [
        (GET, 1, grpc.StatusCode.UNAVAILABLE),
        (GET, 2, grpc.StatusCode.OK),
    ]
    assert isinstance(first.error, invora.Unavailable) and second.error is None
    assert first.request_id == second.request_id and len(first.request_id) == 32
    assert second.response.details.key == key and second.response_bytes > 0 and second.request_bytes > 0
    assert first.duration > 0 and second.duration > 0
    assert first.transport == transport and first.target == client.target
    # Both attempts went out with the same id and the metadata the hook added.
    assert sent_ids(sb, GET) == [first.request_id] * 2
    assert all(c.metadata.get("x-hook-mark") == "m1" for c in sb.calls if c.method == GET)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_errors_carry_the_sdk_and_server_request_ids(sb: Any, tenant: Any, transport: str) -> None:
    with make(sb, tenant, transport) as client:
        sb.clear_calls()
        with pytest.raises(invora.NotFound) as info:
            client.simple.invoices.get(key="missing")
    err = info.value
    assert err.request_id and sent_ids(sb, GET) == [err.request_id]
    assert err.server_request_id == err.request_id  # the sandbox's RequestInfo names the call by it
    assert f"(request id {err.request_id})" in str(err)


def test_a_callers_own_request_id_names_the_call(sb: Any, tenant: Any) -> None:
    with make(sb, tenant) as client:
        sb.clear_calls()
        with pytest.raises(invora.NotFound) as info:
            client.simple.invoices.get(key="missing", metadata=[("x-request-id", "trace-42")])
    assert info.value.request_id == "trace-42" and sent_ids(sb, GET) == ["trace-42"]
    with pytest.raises(invora.ConfigurationError, match="per call"):
        invora.Client(sb.grpc_target, metadata={"x-request-id": "fixed"})


def test_every_call_gets_a_fresh_id(sb: Any, tenant: Any) -> None:
    with make(sb, tenant) as client:
        key = client.simple.invoices.create(changes=changes("Ids")).details.key
        sb.clear_calls()
        for _ in range(3):
            client.simple.invoices.get(key=key)
    ids = sent_ids(sb, GET)
    assert len(ids) == 3 and len(set(ids)) == 3 and all(len(i) == 32 for i in ids)


def test_a_failing_hook_is_logged_and_changes_nothing(
    sb: Any, tenant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_start(event: invora.CallEvent) -> Any:
        raise RuntimeError("start broke")

    def broken_end(event: invora.CallEvent) -> Any:
        def done(event: invora.CallEvent) -> None:
            raise RuntimeError("end broke")

        return done

    rec = Recorder()
    with (
        caplog.at_level(logging.ERROR, "invora"),
        make(sb, tenant, hooks=[broken_start, broken_end, rec]) as c,
    ):
        assert c.simple.invoices.list(page_size=1).total_count is not None
    assert [e.code for e in rec.ended] == [grpc.StatusCode.OK]  # later hooks still ran
    assert "start broke" in caplog.text and "end broke" in caplog.text


def test_hooks_are_validated_and_kept_by_with_options(sb: Any, tenant: Any) -> None:
    with pytest.raises(invora.ConfigurationError, match="hooks"):
        invora.Client(sb.grpc_target, hooks=["not callable"])  # type: ignore[list-item]
    rec = Recorder()
    with make(sb, tenant, hooks=[rec]) as client:
        assert client.with_options(timeout=5).simple.invoices.list(page_size=1).total_count is not None
        assert client.with_options(hooks=()).simple.invoices.list(page_size=1).total_count is not None
    assert len(rec.ended) == 1


async def test_async_client_hooks(sb: Any, tenant: Any) -> None:
    rec = Recorder()
    async with make(sb, tenant, cls=invora.AsyncClient, hooks=[rec]) as client:
        sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=1)
        with pytest.raises(invora.NotFound) as info:
            await client.simple.invoices.get(key="missing")
    assert [(e.attempt, e.code) for e in rec.ended] == [
        (1, grpc.StatusCode.UNAVAILABLE),
        (2, grpc.StatusCode.NOT_FOUND),
    ]
    assert {e.request_id for e in rec.ended} == {info.value.request_id}


def test_debug_log_names_each_attempt_and_no_secret(
    sb: Any, tenant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, "invora"), make(sb, tenant) as client:
        sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=1)
        with pytest.raises(invora.NotFound) as info:
            client.simple.invoices.get(key="missing")
        token = client.credentials.metadata()[0][1].split()[1]
    lines = [r.getMessage() for r in caplog.records if r.name == "invora.calls"]
    rid = info.value.request_id
    assert f"{GET} attempt 1 -> UNAVAILABLE" in "\n".join(lines)
    assert f"{GET}: retrying UNAVAILABLE in" in "\n".join(lines)
    assert any(line.startswith(f"{GET} attempt 2 -> NOT_FOUND in ") and rid in line for line in lines)
    assert all(sb.grpc_target in line for line in lines if " attempt " in line)
    assert token not in caplog.text and tenant.client_secret not in caplog.text


def test_invora_log_env_turns_on_the_debug_log(sb: Any, tenant: Any) -> None:
    script = (
        "import invora, os\n"
        "creds = invora.ClientCredentials(os.environ['T_ID'], os.environ['T_SECRET'], os.environ['T_URL'])\n"
        "with invora.Client(os.environ['T_TARGET'], credentials=creds) as c:\n"
        "    c.simple.invoices.list(page_size=1).total_count\n"
    )
    env = {
        **os.environ,
        "INVORA_LOG": "debug",
        "T_ID": tenant.client_id,
        "T_SECRET": tenant.client_secret,
        "T_URL": sb.token_url,
        "T_TARGET": sb.grpc_target,
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "SimpleInvoiceService/List attempt 1 -> OK in " in out.stderr
    assert tenant.client_secret not in out.stderr and "Bearer" not in out.stderr
    env["INVORA_LOG"] = "loud"
    bad = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "INVORA_LOG: invalid value 'loud'" in bad.stderr
