"""Quick start (asyncio client): create invoices concurrently, then iterate them with ``async for``.

python examples/quickstart_async.py       # INVORA_TARGET etc. from the environment, else a local sandbox
"""

from __future__ import annotations

import asyncio

from _connect import connect

import invora
from invora import from_decimal, to_decimal

BUYERS = ["Najd Foods", "Red Sea Logistics", "Oasis Tech", "Al Noor Trading", "Delta Supplies"]


async def create(client: invora.AsyncClient, buyer: str, amount: int) -> str:
    line = {"description": "Monthly service", "quantity": from_decimal(1), "unit_price": from_decimal(amount)}
    response = await client.simple.invoices.create(
        changes={"currency_code": "SAR", "buyer": {"name": buyer}, "lines": [line]},
        freeze_immediately=True,  # draft and freeze in one call
    )
    return str(response.details.number)


async def main() -> None:
    with connect() as conn:
        async with conn.async_client(timeout=10) as client:
            # One token fetch serves all concurrent calls; they share one HTTP/2 channel.
            numbers = await asyncio.gather(*(create(client, b, 100 * (i + 1)) for i, b in enumerate(BUYERS)))
            print("frozen:", ", ".join(sorted(numbers)))

            total = 0
            async for summary in client.simple.invoices.list(filter={"part": {"frozen": True}}, page_size=2):
                total += 1
                print(f"  {summary.number}  {summary.buyer_name:<18} {to_decimal(summary.payable_amount)}")
            print(f"{total} frozen invoices")

            try:
                await client.simple.invoices.freeze(key="no-such-invoice", concurrency_stamp="x")
            except invora.InvoraError as exc:  # the base class catches every SDK error
                print(f"{type(exc).__name__}: {exc.code.name} -> HTTP {exc.http_status}")


if __name__ == "__main__":
    asyncio.run(main())
