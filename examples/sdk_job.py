"""A nightly batch instrumented with the flowdeck SDK.

    flowdeck serve &                       # or point FLOWDECK_URL at your flowdeck
    python examples/sdk_job.py             # then open /api/v1/batches?env=dev

Each step is a run in one batch: RUNNING when it starts, SUCCESS or FAILED (with the
exception's message) when it ends, with its row counts, custom stats, duration, CPU time
and peak memory. Beside the runs it sends metric points (a counter, a gauge and a
histogram): query them at /api/v1/metrics/query or open /metrics-explorer. If flowdeck is
down, nothing here waits or fails: the reports and points wait in a spool folder and are
sent when flowdeck is back.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from flowdeck.sdk import Client, current_run

client = Client(os.environ.get("FLOWDECK_URL", "http://127.0.0.1:8000"), env="dev")


def extract(batch_id: str) -> list[dict[str, int]]:
    # The context-manager form: the run is at hand as `run`.
    with client.run("extract_orders", batch_id=batch_id, labels={"source": "shop"}) as run:
        rows = [{"order_id": i, "amount": random.randint(1, 500)} for i in range(10_000)]
        run.rows_read += len(rows)
        run.custom_stats["max_amount"] = max(r["amount"] for r in rows)
        # Metric points: buffered, sent in the background every few seconds.
        client.counter("orders.extracted", len(rows), tags={"source": "shop"})
        for r in rows:
            client.histogram("orders.amount", r["amount"], tags={"source": "shop"})
        client.gauge("orders.queue_depth", random.randint(0, 40), tags={"queue": "orders"})
        return rows


async def validate(batch_id: str, rows: list[dict[str, int]]) -> list[dict[str, int]]:
    # The async form: nothing here blocks the event loop.
    async with client.run("validate_orders", batch_id=batch_id) as run:
        await asyncio.sleep(0.01)
        good = [r for r in rows if r["amount"] < 490]
        run.rows_read = len(rows)
        run.rows_written = len(good)
        run.rows_invalid = len(rows) - len(good)  # counted as DQ errors
        return good


def main() -> int:
    batch = client.batch(labels={"schedule": "nightly"})

    # The decorator form: each call is a run named after the function (or as given).
    @batch.job("load_orders")
    def load(rows: list[dict[str, int]]) -> None:
        run = current_run()
        assert run is not None
        run.rows_written += len(rows)
        run.custom_stats["scd2_new"] = len(rows) // 10  # becomes rows_inserted

    @batch.job("publish_report")
    def publish() -> None:
        raise RuntimeError("report share is read-only")

    rows = extract(str(batch.batch_id))
    good = asyncio.run(validate(str(batch.batch_id), rows))
    load(good)
    try:
        publish()
    except RuntimeError as exc:
        print(f"publish_report failed as intended: {exc}", file=sys.stderr)
    sent = client.flush(timeout=5)  # runs and metric points
    print(f"batch {batch.batch_id}: reported to {client.url}" if sent else "flowdeck busy")
    if client.spooled:
        print(f"flowdeck unreachable: {client.spooled} reports spooled for later")
    return 0


if __name__ == "__main__":
    sys.exit(main())
