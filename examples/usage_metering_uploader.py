"""Batch-upload usage events for billing, safely retryable thanks to ``transaction_id`` deduplication.

Usage events (API calls, messages sent, GB stored…) go to ``invora.billing.events.v2.EventsService``
``BatchCreate`` (``POST /api/billing/v2/events/batch-create``) in batches. The billing engine keeps one
event per ``transaction_id``: re-sending a batch never double-counts. That makes the write idempotent, so
the SDK already retries a failed BatchCreate by itself; the loop below covers what outlasts those retries
(an outage, a deploy, a crash and restart) by re-sending the same batch later.

    python examples/usage_metering_uploader.py [events.jsonl]   # one JSON event per line; default: generated
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import grpc
from _connect import connect

import invora

BATCH_SIZE = 100  # the API's maximum events per BatchCreate
RETRYABLE = (invora.Unavailable, invora.DeadlineExceeded, invora.ResourceExhausted, invora.Aborted)


def generated_events(count: int = 250) -> Iterator[dict[str, Any]]:
    """Synthetic API-call events; a stable transaction_id per event is the whole trick."""
    rng = random.Random(7)
    for i in range(count):
        yield {
            "transaction_id": str(uuid.UUID(int=rng.getrandbits(128))),  # stable across re-runs
            "external_subscription_id": f"sub_{i % 5:03d}",
            "code": "api_calls",
            "properties": {"endpoint": rng.choice(["/invoices", "/credit-notes"]), "count": 1},
            "timestamp": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z"),
        }


def batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def upload_batch(client: invora.Client, batch: list[dict[str, Any]], attempts: int = 5) -> int:
    """Send one batch, re-sending it on transient errors; returns the attempts it took."""
    for attempt in range(1, attempts + 1):
        try:
            # Dicts are accepted for message fields; Struct and Timestamp take their JSON forms.
            client.billing.events.batch_create(events=batch, timeout=10)
            return attempt
        except RETRYABLE as exc:
            if attempt == attempts:
                raise
            delay = exc.retry_delay or min(8.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            print(
                f"  batch of {len(batch)}: {exc.code.name}, re-sending in {delay:.2f}s (safe: deduplicated)"
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def upload(client: invora.Client, events: Iterable[dict[str, Any]]) -> tuple[int, int]:
    sent = calls = 0
    for batch in batches(events, BATCH_SIZE):
        calls += upload_batch(client, batch)
        sent += len(batch)
    return sent, calls


def main(argv: list[str]) -> None:
    if argv:
        with open(argv[0], encoding="utf-8") as fh:
            events = [json.loads(line) for line in fh if line.strip()]
    else:
        events = list(generated_events())
    with connect() as conn, conn.client() as client:
        if conn.sandbox is not None:  # show the re-send path: an outage longer than the SDK's own retries
            outage = invora.Retry().attempts
            conn.sandbox.inject_error(
                "billing.events.batch_create", grpc.StatusCode.UNAVAILABLE, times=outage
            )
        sent, calls = upload(client, events)
        print(f"uploaded {sent} events in {calls} BatchCreate calls")
        sample = events[0]["transaction_id"]
        first = stored_copy(client, sample)

        # A crash-and-restart re-sends everything: nothing is counted twice.
        sent_again, _ = upload(client, events)
        again = stored_copy(client, sample)
        same = (again.id, again.received_at) == (first.id, first.received_at)
        print(f"re-uploaded {sent_again} events; event {sample} kept its first copy: {same}")
        if not same:
            raise SystemExit("duplicate usage event stored")


def stored_copy(client: invora.Client, transaction_id: str) -> Any:
    """The stored event for a transaction id (events are read by their own ``id``; a text search finds it)."""
    for event in client.billing.events.list(filter={"text_search": transaction_id}):
        if event.transaction_id == transaction_id:
            return event
    raise SystemExit(f"event {transaction_id} was not stored")


if __name__ == "__main__":
    main(sys.argv[1:])
