"""OpenLineage ingest: single RunEvents from 16 concurrent clients to POST /api/v1/lineage.

Each run is a START then a COMPLETE event (with input/output statistics and a parent run
facet, as the Airflow and Spark integrations send them). Prints events/s through a real
server process, latency percentiles, and the ratio to the same runs sent as single-run
POST /api/v1/runs reports by the same clients (what the OpenLineage mapping costs).

    .venv/bin/python bench/lineage_concurrent.py --db duckdb [--events 20000] [--clients 16]
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from common import (
    RawConnection,
    Report,
    Server,
    base_parser,
    environment_banner,
    fmt_rate,
    host_port,
    latency_summary,
    ms,
    scratch_database,
)


def lineage_events(runs: int) -> list[bytes]:
    """START events for every run, then COMPLETE events (clients interleave them)."""
    starts, completes = [], []
    for i in range(runs):
        run_id, parent = str(uuid.UUID(int=i + 1)), str(uuid.UUID(int=10**9 + i // 40))
        run: dict[str, Any] = {
            "runId": run_id,
            "facets": {
                "parent": {
                    "run": {"runId": parent},
                    "job": {"namespace": "airflow", "name": "retail_daily"},
                }
            },
        }
        job = {"namespace": "airflow", "name": f"retail_daily.task_{i % 40:02d}"}
        common = {
            "producer": "bench",
            "schemaURL": "https://openlineage.io/spec/2-0-2/x",
            "run": run,
            "job": job,
        }
        starts.append(
            orjson.dumps({**common, "eventType": "START", "eventTime": "2026-11-23T01:00:00Z"})
        )
        completes.append(
            orjson.dumps(
                {
                    **common,
                    "eventType": "COMPLETE",
                    "eventTime": "2026-11-23T01:05:00Z",
                    "inputs": [
                        {
                            "namespace": "pg",
                            "name": f"src_{i % 40}",
                            "inputFacets": {"inputStatistics": {"rowCount": 1000 + i}},
                        }
                    ],
                    "outputs": [
                        {
                            "namespace": "pg",
                            "name": f"dst_{i % 40}",
                            "outputFacets": {"outputStatistics": {"rowCount": 990 + i}},
                        }
                    ],
                }
            )
        )
    return starts + completes


def run_reports(runs: int) -> list[bytes]:
    """The same runs as POST /api/v1/runs reports (RUNNING, then SUCCESS)."""
    out, ends = [], []
    for i in range(runs):
        base = {
            "run_id": f"r-{i}",
            "pipeline": f"retail_daily.task_{i % 40:02d}",
            "batch_id": f"b-{i // 40}",
        }
        out.append(
            orjson.dumps({**base, "status": "RUNNING", "started_at": "2026-11-23T01:00:00Z"})
        )
        ends.append(
            orjson.dumps(
                {
                    **base,
                    "status": "SUCCESS",
                    "ended_at": "2026-11-23T01:05:00Z",
                    "rows_read": 1000 + i,
                    "rows_written": 990 + i,
                }
            )
        )
    return out + ends


async def load(
    base: str, path: str, bodies: Sequence[bytes], clients: int
) -> tuple[float, list[float]]:
    host, port = host_port(base)
    pending = iter(bodies)
    latencies: list[float] = []

    async def worker() -> None:
        conn = await RawConnection(host, port).connect()
        try:
            for body in pending:
                request = conn.build("POST", path, body)
                t0 = time.perf_counter()
                status, answer = await conn.send(request)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - t0, latencies


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    events = 2_000 if args.quick else args.events
    environment_banner(args.db, f"{events:,} events, {args.clients} clients")
    runs = events // 2
    report = Report(f"OpenLineage ingest, single events from {args.clients} clients")
    results: dict[str, float] = {}
    for path, bodies in (
        ("/api/v1/lineage", lineage_events(runs)),
        ("/api/v1/runs", run_reports(runs)),
    ):
        with scratch_database(args.db, args.pg_admin, "lineage") as url, Server(url) as server:
            elapsed, latencies = asyncio.run(load(server.base, path, bodies, args.clients))
            rate = len(bodies) / elapsed
            results[path] = rate
            lat = latency_summary(latencies)
            report.section(f"POST {path}")
            report.line("requests/s", fmt_rate(rate, "events/s"))
            report.line(
                "latency p50 / p95 / p99", f"{ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])}"
            )
    report.ratio("lineage / runs (events/s)", results["/api/v1/lineage"], results["/api/v1/runs"])


if __name__ == "__main__":
    main()
