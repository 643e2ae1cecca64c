"""fork(): a client whose channels were opened before fork fails clearly in the child; nothing hangs.

An asyncio client used under ``asyncio.run`` has no usable channel once that loop closed; the transport
releases it before fork, as grpc.aio's poller thread (alive while any aio channel is) makes grpc skip its
fork preparation, which on grpcio < 1.80 stalls every later call in the child and the parent's next ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from invora import _catalog

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCRIPT = r"""
import asyncio, json, os, sys
import invora

target, loop_at_fork = sys.argv[1:]
used = invora.Client(target, retry=None, timeout=5)
used.simple.invoices.get(key="a")
# grpc's first call in a forked child can meet file descriptors inherited from the parent's poller and
# fail with UNAVAILABLE; the default retry policy (on here) absorbs that for idempotent calls.
unused = invora.Client(target, timeout=5)
async_used = invora.AsyncClient(target, retry=None, timeout=5)

async def first_async():
    await async_used.simple.invoices.get(key="a")
if loop_at_fork == "open":  # its channel stays usable in the parent, so it must fail in the child
    asyncio.new_event_loop().run_until_complete(first_async())
else:
    asyncio.run(first_async())

def attempt(fn):
    try:
        fn()
        return "ok"
    except invora.ClientForkedError as exc:
        return "forked: " + str(exc)
    except Exception as exc:
        return "other: " + repr(exc)

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    out = {
        "used": attempt(lambda: used.simple.invoices.get(key="a")),
        "used_list": attempt(lambda: list(used.simple.invoices.list())),
        "async_used": attempt(lambda: asyncio.run(first_async())),
    }
    if loop_at_fork == "closed":  # with a live aio channel at fork, grpc < 1.80 cannot serve the child
        out["unused"] = attempt(lambda: unused.simple.invoices.get(key="a"))
        out["fresh"] = attempt(lambda: invora.Client(target, timeout=5).simple.invoices.get(key="a"))
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
data = b""
while chunk := os.read(r, 65536):
    data += chunk
os.waitpid(pid, 0)
result = json.loads(data)
result["parent_after"] = attempt(lambda: used.simple.invoices.get(key="a"))
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    svc = _catalog.service("simple.invoices")

    def handler(name: str) -> grpc.RpcMethodHandler:
        m = svc.method(name)
        return grpc.unary_unary_rpc_method_handler(
            lambda req, ctx: m.response_class(),
            request_deserializer=m.request_class.FromString,
            response_serializer=m.response_class.SerializeToString,
        )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(svc.full_name, {n: handler(n) for n in ("Get", "List")}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def run_script(target: str, loop_at_fork: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, target, loop_at_fork], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def assert_forked(result: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert result[key].startswith("forked: "), (key, result[key])
        assert "create clients after forking" in result[key]


def test_fork_fails_clearly_or_works_never_hangs(target: str) -> None:
    result = run_script(target, "closed")
    assert_forked(result, "used", "used_list")
    # Its loop closed before fork, so its channel was released: like an unused client, it is adopted.
    assert result["async_used"] == "ok"
    assert result["unused"] == "ok"  # nothing was opened before fork: the child adopts it
    assert result["fresh"] == "ok"
    assert result["parent_after"] == "ok"


def test_fork_with_an_open_event_loop_fails_clearly(target: str) -> None:
    result = run_script(target, "open")
    assert_forked(result, "used", "used_list", "async_used")
    assert result["parent_after"] == "ok"
