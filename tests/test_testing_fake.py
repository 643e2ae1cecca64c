"""invora.testing.FakeTransport: unit tests of user code without sockets, through the real client pipeline."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest

import invora
from invora.testing import FakeTransport


def test_five_line_unit_test() -> None:
    fake = FakeTransport().respond("simple.invoices.get", {"details": {"key": "k1", "number": "INV-1"}})
    client = invora.Client(transport=fake, org_id="org-7")
    assert client.simple.invoices.get(key="k1").details.number == "INV-1"
    assert fake.calls[0].request.key == "k1"  # type: ignore[attr-defined]
    assert fake.calls[0].metadata["x-target-org-id"] == "org-7"


def test_errors_retries_and_request_ids_run_for_real() -> None:
    fake = FakeTransport()
    created = {"details": {"key": "d1"}}
    fake.respond("simple.invoices.create", fake.fail(grpc.StatusCode.ABORTED), created)
    client = invora.Client(transport=fake, retry=invora.Retry(initial=0.001, maximum=0.002))
    assert client.simple.invoices.create(changes={"buyer": {"name": "B"}}).details.key == "d1"
    first, second = fake.requests("simple.invoices.create")
    # Create carries request_id: filled by the client, reused on the retry, so ABORTED was retried.
    assert first.request_id and first.request_id == second.request_id  # type: ignore[attr-defined]

    fake.respond("simple.invoices.update", fake.fail(grpc.StatusCode.ABORTED, "stale stamp"))
    with pytest.raises(invora.Aborted, match="stale stamp"):
        client.simple.invoices.update(key="d1", concurrency_stamp="s")
    assert len(fake.requests("simple.invoices.update")) == 1  # an unsafe write is not repeated

    with pytest.raises(
        invora.Unimplemented, match=re.escape("no answer for invora.billing.plans.v2.PlansService/Get")
    ):
        client.billing.plans.get(id="p1")


def test_pages_and_callables() -> None:
    fake = FakeTransport()
    pages = [
        {"items": [{"key": "a"}, {"key": "b"}], "totalCount": "3", "nextPageCursor": "c2"},
        {"items": [{"key": "c"}], "totalCount": "3"},
    ]
    fake.respond("simple.invoices.list", *pages)
    fake.respond("billing.customers.get", lambda req: {"customer": {"id": req.id, "name": "Echo"}})
    client = invora.Client(transport=fake)
    assert [s.key for s in client.simple.invoices.list(page_size=2)] == ["a", "b", "c"]
    assert [r.pagination.cursor for r in fake.requests("simple.invoices.list")] == ["", "c2"]  # type: ignore[attr-defined]
    assert client.billing.customers.get(id="c9").customer.name == "Echo"


async def test_async_client_shares_answers_and_record() -> None:
    fake = FakeTransport().respond("billing.plans.get", {"plan": {"id": "p1", "code": "pro"}})
    async with invora.AsyncClient(transport=fake.aio) as client:
        assert (await client.billing.plans.get(id="p1")).plan.code == "pro"
    assert fake.requests("billing.plans.get")[0].id == "p1"  # type: ignore[attr-defined]
    with pytest.raises(invora.ConfigurationError, match=re.escape("fake.aio")):
        async with invora.AsyncClient(transport=fake) as wrong:
            await wrong.billing.plans.get(id="p1")


def test_a_wrong_answer_says_what_is_expected() -> None:
    fake = FakeTransport().respond("billing.plans.get", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("invora.billing.plans.v2.GetResponse, a dict")):
        invora.Client(transport=fake).billing.plans.get(id="p1")


def test_from_env_reads_what_the_cli_reads(invora_sandbox: Any) -> None:
    env = {
        "INVORA_TARGET": invora_sandbox.grpc_target,
        "INVORA_TOKEN_URL": invora_sandbox.token_url,
        "INVORA_CLIENT_ID": invora_sandbox.client_id,
        "INVORA_CLIENT_SECRET": invora_sandbox.client_secret,
        "INVORA_ORG_ID": invora_sandbox.org_id,
    }
    with invora.Client.from_env(env, timeout=5) as client:
        assert client.org_id == invora_sandbox.org_id
        assert client.simple.invoices.list(page_size=1).pages  # a real call needs the credentials
        list(client.simple.invoices.list(page_size=1))
    # The sandbox's secret is never posted to Invora's production token endpoint.
    with pytest.raises(invora.ConfigurationError, match="token endpoint"):
        invora.Client.from_env({k: v for k, v in env.items() if k != "INVORA_TOKEN_URL"})
    with pytest.raises(invora.ConfigurationError, match=re.escape("INVORA_TRANSPORT: invalid value 'soap'")):
        invora.AsyncClient.from_env({**env, "INVORA_TRANSPORT": "soap"})
