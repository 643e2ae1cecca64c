"""A Locust load test of the Simple invoices API: accountants browsing, issuing and re-reading invoices.

    make sandbox                                   # or any Invora target; writes sandbox.env
    source sandbox.env                             # in another shell: the INVORA_* credentials
    locust -f examples/locustfile.py --host 127.0.0.1:50051 --headless -u 20 -r 10 -t 30s

Distributed, unchanged: ``locust -f examples/locustfile.py --master`` on one machine and
``locust -f examples/locustfile.py --worker --master-host <master>`` on each load machine.

Every RPC shows up in Locust's statistics under its full name, each page of a list separately.
"""

from __future__ import annotations

import uuid

from locust import between, task

from invora import from_decimal
from invora.loadtest.locust import InvoraUser


class Accountant(InvoraUser):
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.keys: list[str] = []

    @task(3)
    def browse(self) -> None:
        # Up to three pages of 10, each one List request in the statistics. max_items (rather than breaking
        # out of the loop) also tells the pager not to prefetch a page that would go unread.
        for _ in self.client.simple.invoices.list(page_size=10, max_items=30):
            pass

    @task(2)
    def issue(self) -> None:
        # request_id makes the create safe to repeat; freeze_immediately numbers it in the same call.
        created = self.client.simple.invoices.create(
            request_id=str(uuid.uuid4()),
            freeze_immediately=True,
            changes={
                "currency_code": "SAR",
                "buyer": {"name": "Load Test Buyer"},
                "lines": [
                    {
                        "description": "Widget",
                        "quantity": from_decimal("2"),
                        "unit_price": from_decimal("25.00"),
                        "tax_rate": from_decimal("15"),
                    }
                ],
            },
        )
        self.keys.append(created.details.key)
        del self.keys[:-20]

    @task(1)
    def reread(self) -> None:
        if self.keys:
            self.client.simple.invoices.get(key=self.keys[-1])
