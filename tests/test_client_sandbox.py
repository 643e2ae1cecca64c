"""The client end to end against the sandbox: real gRPC, real token endpoint, real JWTs, injected faults."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from _calls import changes, record

import invora
from invora.sandbox import Sandbox

FAST = invora.Retry(attempts=4, initial=0.01, maximum=0.05, deadline=20)
GET = "invora.simple.invoices.v1.SimpleInvoiceService/Get"
LIST = "invora.simple.invoices.v1.SimpleInvoiceService/List"


@pytest.fixture(scope="module")
def sb() -> Iterator[Any]:
    with Sandbox(grpc_port=0, http_port=0, seed=40) as box:
        yield box


@pytest.fixture()
def tenant(sb: Any) -> Any:
    """A fresh business tenant per test: token counts and data start from zero."""
    return sb.create_tenant(f"Tenant {time.monotonic_ns()}")


def client_for(sb: Any, tenant: Any, **kw: Any) -> invora.Client:
    kw.setdefault("retry", FAST)
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    return invora.Client(sb.grpc_target, credentials=creds, org_id=kw.pop("org_id", tenant.org_id), **kw)


def async_client_for(sb: Any, tenant: Any, **kw: Any) -> invora.AsyncClient:
    kw.setdefault("retry", FAST)
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    return invora.AsyncClient(sb.grpc_target, credentials=creds, org_id=kw.pop("org_id", tenant.org_id), **kw)


def calls_of(sb: Any, method: str, org_id: str | None = None) -> list[Any]:
    return [c for c in sb.calls if c.method == method and (org_id is None or c.org_id == org_id)]


def touch(client: invora.Client, org_id: str | None = None) -> int:
    """One cheap authenticated call (the first page of invoices); returns total_count."""
    total = client.simple.invoices.list(page_size=1, org_id=org_id).total_count
    assert total is not None
    return total


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


# -- the document lifecycle -------------------------------------------------------------------------------
def test_create_get_update_freeze(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client:
        inv = client.simple.invoices
        created = inv.create(changes=changes()).details
        assert created.key and not created.frozen
        got = inv.get(key=created.key).details
        assert got.buyer.name == "Acme Trading"
        updated = inv.update(
            key=created.key,
            concurrency_stamp=got.concurrency_stamp,
            mask={"paths": ["note"]},
            changes={"note": "thanks"},
        ).details
        assert updated.note == "thanks"
        with pytest.raises(invora.Aborted):  # stale stamp; not retried (Update is not idempotent)
            inv.update(
                key=created.key, concurrency_stamp=got.concurrency_stamp, changes={"note": "x"}, mask="note"
            )
        frozen = inv.freeze(key=created.key, concurrency_stamp=updated.concurrency_stamp).details
        assert frozen.frozen
        with pytest.raises(invora.FailedPrecondition):
            inv.update(
                key=created.key,
                concurrency_stamp=frozen.concurrency_stamp,
                changes={"note": "late"},
                mask="note",
            )
    assert len(calls_of(sb, "invora.simple.invoices.v1.SimpleInvoiceService/Update", tenant.org_id)) == 3


def test_validation_errors_carry_details(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client, pytest.raises(invora.InvalidArgument) as info:
        client.simple.invoices.create(changes={"currency_code": "SAR", "lines": []})
    err = info.value
    assert [v.field for v in err.field_violations] == ["changes.buyer.name", "changes.lines"]
    assert [v.code for v in err.validation_errors] == ["BUYER_NAME_REQUIRED", "LINES_REQUIRED"]
    # The two detail kinds repeat each other and the message names the first: str() says each thing once.
    text = str(err)
    assert text.count("the buyer name is required") == 1 and text.count("at least one line") == 1, text


def test_not_found(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client, pytest.raises(invora.NotFound):
        client.simple.invoices.get(key="does-not-exist")


# -- tenancy ----------------------------------------------------------------------------------------------------
def test_tenancy_header_on_the_wire(sb: Any, tenant: Any) -> None:
    platform = sb.create_tenant("Platform Co", kind="platform")
    child = sb.connect_business(platform, "Connected Shop")
    with client_for(sb, platform, org_id=None) as client:
        touch(client)
        home = sb.calls[-1]
        assert home.method == LIST and home.org_id == platform.org_id
        assert "x-target-org-id" not in home.metadata
        shop = client.with_org(child.org_id)
        shop.simple.invoices.create(changes=changes("Shop buyer"))
        rec = sb.calls[-1]
        assert rec.org_id == child.org_id and rec.metadata["x-target-org-id"] == child.org_id
        assert rec.metadata.get("authorization", "").startswith("Bearer ")
        touch(client, org_id=child.org_id)
        assert sb.calls[-1].org_id == child.org_id
        with pytest.raises(invora.PermissionDenied):
            client.with_org(tenant.org_id).simple.invoices.get(key="x")


@pytest.mark.parametrize("header", ["x-invora-org-id", "x-zitadel-orgid"])
def test_legacy_org_header_names(sb: Any, header: str) -> None:
    platform = sb.create_tenant("Platform Legacy", kind="platform")
    child = sb.connect_business(platform, "Legacy Shop")
    with client_for(sb, platform, org_id=child.org_id, org_header=header) as client:
        touch(client)
    rec = sb.calls[-1]
    assert rec.org_id == child.org_id and rec.metadata[header] == child.org_id


# -- credentials ------------------------------------------------------------------------------------------------
def test_64_threads_share_one_token_request(sb: Any, tenant: Any) -> None:
    before = sb.token_requests
    barrier = threading.Barrier(64)
    with client_for(sb, tenant) as client:

        def work() -> int:
            barrier.wait()
            return client.simple.invoices.list(page_size=1).total_count or 0

        with futures.ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda _: work(), range(64)))
    assert sb.token_requests - before == 1


async def test_200_tasks_share_one_token_request(sb: Any, tenant: Any) -> None:
    before = sb.token_requests
    async with async_client_for(sb, tenant) as client:
        created = await client.simple.invoices.create(changes=changes())
        results = await asyncio.gather(
            *(client.simple.invoices.get(key=created.details.key) for _ in range(200))
        )
    assert {r.details.key for r in results} == {created.details.key}
    assert sb.token_requests - before == 1


def test_revoked_token_is_replaced_once(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client:
        touch(client)
        before = sb.token_requests
        sb.revoke_tokens(tenant)
        sb.clear_calls()
        touch(client)
        codes = [c.code for c in calls_of(sb, LIST, tenant.org_id)]
        assert codes == [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK]
        assert sb.token_requests - before == 1


async def test_revoked_token_is_replaced_once_async(sb: Any, tenant: Any) -> None:
    async with async_client_for(sb, tenant) as client:
        await client.simple.invoices.list(page_size=1).fetch_total_count()
        before = sb.token_requests
        sb.revoke_tokens(tenant)
        await asyncio.gather(
            *(client.simple.invoices.list(page_size=1).fetch_total_count() for _ in range(20))
        )
    assert sb.token_requests - before == 1


def test_static_token_refused_is_not_retried(sb: Any, tenant: Any) -> None:
    expired = sb.mint_token(tenant, expired=True)
    with invora.Client(sb.grpc_target, credentials=expired, retry=FAST) as client:
        sb.clear_calls()
        with pytest.raises(invora.Unauthenticated) as info:
            client.simple.invoices.get(key="x")
    assert expired not in str(info.value) and len(sb.calls) == 1


def test_missing_scope_is_permission_denied(sb: Any) -> None:
    reader = sb.create_tenant("Reader", scopes=["openid", "Invora.Simple.Invoices.v1.List"])
    with client_for(sb, reader) as client:
        touch(client)
        with pytest.raises(invora.PermissionDenied):
            client.simple.invoices.create(changes=changes())


def test_token_expiry_triggers_a_refresh() -> None:
    # The sandbox's exp is whole seconds (int(now) + ttl): a token lives between ttl - 1 and ttl seconds, so
    # with ttl 3 each call below reaches the server at least 2 s before its token expires.
    with Sandbox(grpc_port=0, http_port=0, token_ttl=3.0) as box, client_for(box, box.tenant) as client:
        touch(client)
        assert box.token_requests == 1
        time.sleep(2.1)  # within 1 s of expiry: the client waits for a new token (no refresh behind)
        touch(client)
        assert box.token_requests == 2
        assert all(c.code == grpc.StatusCode.OK for c in box.calls)


@pytest.mark.parametrize(
    ("kind", "text"),
    [("status500", "HTTP 500"), ("garbage", "non-JSON"), ("no_access_token", "no access_token")],
)
def test_token_endpoint_faults(sb: Any, tenant: Any, kind: str, text: str) -> None:
    sb.inject_token_fault(kind)
    with client_for(sb, tenant) as client, pytest.raises(invora.AuthenticationError, match=text) as info:
        client.simple.invoices.get(key="x")
    assert tenant.client_secret not in str(info.value)
    with client_for(sb, tenant) as client:  # the fault was one-shot: the next fetch works
        touch(client)


def test_slow_token_endpoint_times_out(sb: Any, tenant: Any) -> None:
    sb.inject_token_fault("slow")
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url, timeout=0.5)
    with (
        invora.Client(sb.grpc_target, credentials=creds) as client,
        pytest.raises(invora.AuthenticationError, match="did not answer"),
    ):
        client.simple.invoices.get(key="x")


def test_discovery_from_the_issuer(sb: Any, tenant: Any) -> None:
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, issuer=sb.issuer)
    with invora.Client(sb.grpc_target, credentials=creds, org_id=tenant.org_id) as client:
        touch(client)
    assert creds.token_url == sb.token_url


def test_wrong_secret(sb: Any, tenant: Any) -> None:
    creds = invora.ClientCredentials(tenant.client_id, "wrong-secret", sb.token_url)
    with (
        invora.Client(sb.grpc_target, credentials=creds) as client,
        pytest.raises(invora.AuthenticationError) as info,
    ):
        client.simple.invoices.get(key="x")
    assert info.value.http_status in (400, 401) and "wrong-secret" not in str(info.value)


# -- retries ----------------------------------------------------------------------------------------------------
def test_injected_unavailable_is_retried_for_reads(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client:
        key = client.simple.invoices.create(changes=changes()).details.key
        sb.inject_error("simple.invoices.get", grpc.StatusCode.UNAVAILABLE, times=2)
        sb.clear_calls()
        assert client.simple.invoices.get(key=key).details.key == key
    assert [c.code for c in calls_of(sb, GET)] == [grpc.StatusCode.UNAVAILABLE] * 2 + [grpc.StatusCode.OK]


def test_retry_info_is_honoured(sb: Any, tenant: Any) -> None:
    # backoff alone would wait up to 1000 s: completing proves the server's 50 ms delay was used
    slow = invora.Retry(attempts=3, initial=1000, maximum=1000, deadline=None)
    with client_for(sb, tenant, retry=slow) as client:
        sb.inject_error(GET, grpc.StatusCode.RESOURCE_EXHAUSTED, times=1, retry_delay=0.05)
        with pytest.raises(invora.NotFound):
            client.simple.invoices.get(key="missing")
    assert [c.code for c in calls_of(sb, GET, tenant.org_id)][-2:] == [
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
    ]


def test_unsafe_write_is_not_retried(sb: Any, tenant: Any) -> None:
    method = "invora.simple.invoices.v1.SimpleInvoiceService/Update"
    with client_for(sb, tenant) as client:
        created = client.simple.invoices.create(changes=changes()).details
        sb.inject_error("simple.invoices.update", grpc.StatusCode.UNAVAILABLE, times=1)
        sb.clear_calls()
        with pytest.raises(invora.Unavailable):
            client.simple.invoices.update(
                key=created.key, concurrency_stamp=created.concurrency_stamp, mask="note"
            )
    assert len(calls_of(sb, method)) == 1


def test_write_with_request_id_is_retried_and_applied_once(sb: Any, tenant: Any) -> None:
    method = "invora.simple.invoices.v1.SimpleInvoiceService/Create"
    with client_for(sb, tenant) as client:
        sb.inject_error(method, grpc.StatusCode.UNAVAILABLE, times=1)
        sb.clear_calls()
        created = client.simple.invoices.create(changes=changes("Once Ltd")).details
        total = client.simple.invoices.list(filter={"text_search": "Once Ltd"}).total_count
    assert [c.code for c in calls_of(sb, method)] == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]
    assert created.key and total == 1


async def test_async_retries_and_unsafe_writes(sb: Any, tenant: Any) -> None:
    async with async_client_for(sb, tenant) as client:
        created = (await client.simple.invoices.create(changes=changes())).details
        sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=2)
        assert (await client.simple.invoices.get(key=created.key)).details.key == created.key
        sb.inject_error("simple.invoices.update", grpc.StatusCode.ABORTED, times=1)
        sb.clear_calls()
        with pytest.raises(invora.Aborted):
            await client.simple.invoices.update(key=created.key, concurrency_stamp=created.concurrency_stamp)
    assert len(sb.calls) == 1


# -- pagination ------------------------------------------------------------------------------------------------
def test_pages_are_prefetched_before_the_consumer_asks(sb: Any) -> None:
    with client_for(sb, sb.tenant) as client:
        sb.clear_calls()
        pager = client.simple.invoices.list(page_size=5)
        pages = pager.pages
        first = next(pages)
        assert len(first.items) == 5 and pager.total_count is not None and pager.total_count >= 40
        assert wait_until(lambda: len(calls_of(sb, LIST)) == 2), "page 2 was not requested ahead"
        keys = [i.key for i in first.items]
        for page in pages:
            keys += [i.key for i in page.items]
    assert len(keys) == len(set(keys)) == pager.total_count
    assert len(calls_of(sb, LIST)) == -(-len(keys) // 5)


async def test_async_pages_are_prefetched(sb: Any) -> None:
    async with async_client_for(sb, sb.tenant) as client:
        sb.clear_calls()
        pager = client.simple.invoices.list(page_size=10)
        pages = pager.pages
        await pages.__anext__()
        for _ in range(500):
            if len(calls_of(sb, LIST)) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(calls_of(sb, LIST)) == 2
        rest = [p async for p in pages]
    assert sum(len(p.items) for p in rest) + 10 == pager.total_count


def test_malformed_and_foreign_cursors(sb: Any, tenant: Any) -> None:
    with client_for(sb, sb.tenant) as client:
        pager = client.simple.invoices.list(page_size=5)
        next(pager.pages)
        cursor = pager.next_page_cursor
        assert cursor
        with pytest.raises(invora.OutOfRange, match="cursor"):
            list(client.simple.invoices.list(pagination={"cursor": cursor[:-3] + "AAA"}))
        resumed = list(client.simple.invoices.list(pagination={"cursor": cursor, "limit": 5}, max_items=7))
        assert len(resumed) == 7
    with client_for(sb, tenant) as other, pytest.raises(invora.OutOfRange, match="cursor"):
        list(other.simple.invoices.list(pagination={"cursor": cursor}))


def test_observer_hook(sb: Any, tenant: Any) -> None:
    seen: list[tuple[str, grpc.StatusCode, int, int]] = []
    with client_for(sb, tenant, hooks=[record(seen)]) as client:
        client.simple.invoices.create(changes=changes())
        with pytest.raises(invora.NotFound):
            client.simple.invoices.get(key="nope")
    assert [(m.rsplit("/", 1)[1], c) for m, c, _, _ in seen] == [
        ("Create", grpc.StatusCode.OK),
        ("Get", grpc.StatusCode.NOT_FOUND),
    ]
    assert seen[0][2] > 0 and seen[0][3] > 0 and seen[1][3] == 0


def test_generic_invoke_and_raw(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client:
        created = client.invoke("simple.invoices.create", {"changes": changes()})
        got = client.invoke(
            "invora.simple.invoices.v1.SimpleInvoiceService/Get", {"key": created.details.key}
        )
        assert got.details.key == created.details.key
        raw = client.raw("simple.invoices.get", {"key": created.details.key})
        assert raw.code is grpc.StatusCode.OK and raw.response.details.key == created.details.key
        assert isinstance(raw.trailing_metadata, tuple)


# -- TLS, rate limits, latency ---------------------------------------------------------------------------------
def test_sandbox_over_tls_with_custom_roots(tmp_path: Any) -> None:
    from test_client_tls import make_cert

    cert, key = make_cert()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert)
    with Sandbox(grpc_port=0, http_port=0, tls=(cert, key), seed=2) as box:
        assert box.token_url.startswith("https://")
        creds = invora.ClientCredentials(box.client_id, box.client_secret, box.token_url, verify=str(ca))
        pem_creds = invora.ClientCredentials(box.client_id, box.client_secret, box.token_url, verify=cert)
        assert pem_creds.metadata()[0][1].startswith("Bearer ")
        with invora.Client(
            box.grpc_target, credentials=creds, org_id=box.org_id, root_certificates=cert
        ) as client:
            assert touch(client) == 2
        # system roots do not trust the sandbox: the call fails, it never hangs
        untrusted = invora.Client(box.grpc_target, credentials=creds, tls=True, retry=None, timeout=5)
        with untrusted, pytest.raises(invora.Unavailable):
            untrusted.simple.invoices.get(key="x")
        bad_verify = invora.ClientCredentials(box.client_id, box.client_secret, box.token_url)
        with pytest.raises(invora.AuthenticationError, match="unreachable"):
            bad_verify.metadata()


def test_rate_limited_reads_are_retried() -> None:
    with Sandbox(grpc_port=0, http_port=0, rate_limit=40.0) as box, client_for(box, box.tenant) as client:
        for _ in range(50):
            touch(client)
        limited = [c for c in box.calls if c.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
        ok = [c for c in box.calls if c.code == grpc.StatusCode.OK]
    assert len(ok) == 50 and limited  # the limit was hit and every read still succeeded


def test_server_latency_beyond_the_deadline(sb: Any, tenant: Any) -> None:
    with client_for(
        sb, tenant, timeout=0.2, retry=invora.Retry(attempts=2, initial=0.01, maximum=0.01)
    ) as client:
        sb.set_latency(0.5, method=GET)
        try:
            sb.clear_calls()
            with pytest.raises(invora.DeadlineExceeded) as info:
                client.simple.invoices.get(key="x")
            assert info.value.attempts == 2  # a read: retried once with a fresh attempt deadline
        finally:
            sb.set_latency(0.0, method=GET)


# -- with_options ----------------------------------------------------------------------------------------------
def test_with_options_copy_shares_channels_and_changes_only_what_is_asked(sb: Any, tenant: Any) -> None:
    seen: list[str] = []
    client = client_for(sb, tenant)
    copy = client.with_options(retry=None, hooks=[lambda e: lambda done: seen.append(done.code.name)])
    assert copy.org_id == tenant.org_id and copy._scope.core.transport is client._scope.core.transport
    key = client.simple.invoices.create(changes=changes()).details.key
    sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=1)
    with pytest.raises(invora.Unavailable):
        copy.simple.invoices.get(key=key)  # retry=None on the copy
    assert seen == ["UNAVAILABLE"]
    sb.inject_error(GET, grpc.StatusCode.UNAVAILABLE, times=1)
    assert client.simple.invoices.get(key=key).details.key == key  # the original still retries
    assert seen == ["UNAVAILABLE"]  # and has no observer
    copy.close()  # a copy over shared channels leaves them open
    assert copy.simple.invoices.get(key=key).details.key == key
    client.close()
    with pytest.raises(invora.ClientClosedError):
        copy.simple.invoices.get(key=key)


async def test_with_options_new_target_owns_its_channels(sb: Any, tenant: Any) -> None:
    creds = invora.ClientCredentials(tenant.client_id, tenant.client_secret, sb.token_url)
    client = invora.AsyncClient(environment="staging", credentials=creds, org_id=tenant.org_id)
    moved = client.with_options(target=sb.grpc_target, timeout=7)
    assert moved.target != client.target and moved._scope.core.timeout == 7.0
    await client.close()
    assert (await moved.simple.invoices.list(page_size=1).fetch_total_count()) >= 0
    await moved.close()
    with pytest.raises(invora.ClientClosedError):
        await moved.simple.invoices.get(key="x")


def test_with_options_refuses_unknown_names(sb: Any, tenant: Any) -> None:
    with client_for(sb, tenant) as client, pytest.raises(invora.ConfigurationError, match="timeot"):
        client.with_options(timeot=5)
