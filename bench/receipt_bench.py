"""Receipt writes through the ledger vs a raw ``INSERT`` of the same rows (DESIGN §13, B4).

One run, one machine, one scratch PostgreSQL database (created, migrated, dropped):

* **raw**: a psycopg pool (autocommit connections, a liveness check on a connection
  idle 5 s, no reset on return), on the application role; per row one transaction
  that sets ``app.tenant_id`` (so row-level security applies, as it does for the
  ledger) and runs one plain ``INSERT``: ``BEGIN``, ``set_config``, ``INSERT``,
  ``COMMIT``, the least a transaction under RLS takes.
* **ledger**: ``ReceiptStore.write``, what the side-effect runner calls after a
  provider call, on ``Database`` with the same pool sizes: the redaction of
  ``details``, then the idempotent insert (``ON CONFLICT (tenant_id, internal_key) DO
  NOTHING``) in ``Database.tenant``: the same statements as raw, nothing read back.
* **record** (for comparison): ``ReceiptStore.record``, the insert with ``RETURNING``,
  giving back the :class:`Receipt`.

All write the same kind of rows (the drafts are built before the clock starts; the raw
rows carry the redacted details the ledger would store), C at a time, in ``--rounds``
chunks whose order rotates so that no path always meets the bigger table.

    python bench/receipt_bench.py [--n 6000] [--concurrency 10] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import scratch_database  # noqa: E402

TENANT = "bench-receipts"

_COLUMNS = (
    "tenant_id, workflow_id, run_id, activity_id, tool, tool_version, side_effect_class, "
    "internal_key, external_key, request_hash, provider, provider_object_id, status, "
    "amount_minor, currency, details"
)
_RAW_INSERT = f"INSERT INTO receipts ({_COLUMNS}) VALUES ({', '.join(['%s'] * 16)})"


def drafts(prefix: str, n: int) -> list[Any]:
    """Receipts like an order writes: a capture (FINANCIAL), a fulfilment (WRITE), an
    email (COMMUNICATION), in turn."""
    from autobiz.ledger.receipts import ReceiptDraft
    from kernel.contracts import SideEffect

    kinds = [
        ("stripe.capture_payment", SideEffect.FINANCIAL, "stripe", 2500, "USD"),
        ("printful.create_order", SideEffect.WRITE, "printful", None, None),
        ("sendgrid.send_email", SideEffect.COMMUNICATION, "sendgrid", None, None),
    ]
    out = []
    for i in range(n):
        tool, effect, provider, amount, currency = kinds[i % len(kinds)]
        out.append(
            ReceiptDraft(
                tenant_id=TENANT,
                workflow_id=f"order:{prefix}:{i // 3}",
                run_id=f"run-{prefix}-{i // 3}",
                activity_id=str(i % 3 + 1),
                tool=tool,
                tool_version="1",
                side_effect=effect,
                internal_key=f"{prefix}:{i:08d}:" + "k" * 40,
                external_key=f"autobiz:{prefix}:{i:08d}:" + "e" * 32,
                request_hash="h" * 64,
                provider=provider,
                provider_object_id=f"obj_{prefix}_{i}",
                status="succeeded",
                amount_minor=amount,
                currency=currency,
                details={"order_id": str(1000 + i // 3), "note": "to ana@example.com"},
            )
        )
    return out


def raw_params(draft: Any) -> tuple[Any, ...]:
    from psycopg.types.json import Jsonb

    from kernel.redaction import redact_value

    d = draft
    return (
        d.tenant_id,
        d.workflow_id,
        d.run_id,
        d.activity_id,
        d.tool,
        d.tool_version,
        d.side_effect.value,
        d.internal_key,
        d.external_key,
        d.request_hash,
        d.provider,
        d.provider_object_id,
        d.status,
        d.amount_minor,
        d.currency,
        Jsonb(redact_value(d.details)),
    )


async def run_chunk(
    items: Sequence[Any], concurrency: int, write: Callable[[Any], Awaitable[None]]
) -> tuple[float, float]:
    """Seconds to write every item with ``concurrency`` writers, and this process's CPU
    seconds meanwhile."""
    queue = list(reversed(items))

    async def writer() -> None:
        while queue:
            await write(queue.pop())

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    return time.perf_counter() - start, time.process_time() - cpu


async def bench(app_dsn: str, n: int, concurrency: int, rounds: int) -> None:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from autobiz.db.database import Database, _check_unless_fresh
    from autobiz.ledger.receipts import ReceiptStore

    rows: dict[str, list[Any]] = {
        "raw": [raw_params(d) for d in drafts("raw", n)],
        "ledger": drafts("ledger", n),
        "record": drafts("record", n),
    }
    warm = drafts("warm", 300)

    raw_pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        app_dsn,
        min_size=concurrency,
        max_size=concurrency,
        kwargs={"autocommit": True, "row_factory": dict_row},
        open=False,
        timeout=10.0,
        check=_check_unless_fresh,
        name="bench-raw",
    )
    await raw_pool.open(wait=True)

    async def raw(params: tuple[Any, ...]) -> None:
        async with raw_pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', %s, true)", (TENANT,))
            await conn.execute(_RAW_INSERT, params)

    async with Database(app_dsn, min_size=concurrency, max_size=concurrency) as db:
        store = ReceiptStore(db)

        async def ledger(draft: Any) -> None:
            await store.write(draft)

        async def record(draft: Any) -> None:
            await store.record(draft)

        paths: dict[str, Callable[[Any], Awaitable[None]]] = {
            "raw": raw,
            "ledger": ledger,
            "record": record,
        }
        # Warm the pools and the prepared statements (psycopg prepares after 5 uses).
        await run_chunk([raw_params(d) for d in warm[:100]], concurrency, raw)
        await run_chunk(warm[100:200], concurrency, ledger)
        await run_chunk(warm[200:], concurrency, record)

        size = n // rounds
        totals = dict.fromkeys(paths, 0.0)
        cpu = dict.fromkeys(paths, 0.0)
        names = list(paths)
        for r in range(rounds):
            chunk = slice(r * size, (r + 1) * size)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                wall, used = await run_chunk(rows[name][chunk], concurrency, paths[name])
                totals[name] += wall
                cpu[name] += used
        async with db.tenant(TENANT) as s:
            stored = await s.fetch_val("SELECT count(*) FROM receipts")
    await raw_pool.close()

    written = size * rounds
    expected = written * len(paths) + len(warm)
    if stored != expected:
        raise SystemExit(f"expected {expected} receipts stored, found {stored}")
    rate = {name: written / seconds for name, seconds in totals.items()}
    print(f"rows per path: {written}, concurrency {concurrency}, rounds {rounds}")
    labels = {
        "raw": "raw INSERT",
        "ledger": "ledger write",
        "record": "ledger record",
    }
    for name, label in labels.items():
        ms, cpu_ms = totals[name] / written * 1e3, cpu[name] / written * 1e3
        print(
            f"{label + ':':16}{rate[name]:8.0f} rows/s  ({ms:.3f} ms/row, client CPU {cpu_ms:.3f})"
        )
    print(f"receipt record (RETURNING) / raw INSERT: {rate['record'] / rate['raw']:.2f}x")
    print(f"receipt writes ledger / raw INSERT: {rate['ledger'] / rate['raw']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="rows per path")
    parser.add_argument("--concurrency", type=int, default=10, help="writers (and pool size)")
    parser.add_argument("--rounds", type=int, default=6, help="chunks per path")
    args = parser.parse_args(argv)
    with scratch_database(TENANT) as (_admin_dsn, app_dsn):
        asyncio.run(bench(app_dsn, args.n, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
