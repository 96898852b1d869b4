"""``flowdeck import`` of a Parquet ``pipeline_stats`` table: rows/s, by phase.

Writes a realistic table (daily batches of 40 processes, timestamps without a zone, a JSON
custom_stats column, 1 % of rows with a bad value) to a Parquet file, then imports it the
way ``flowdeck import FILE --db URL`` does, in this process (no CLI start-up in the figure):
read the file, check every row, write through the single writer. Then imports it again
(every run already stored). Prints figures; the target is 200,000 rows/s on DuckDB.

    .venv/bin/python bench/import_parquet.py --db duckdb [--rows 500000]
    .venv/bin/python bench/import_parquet.py --db postgres --quick
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common import base_parser, environment_banner, fmt_rate, scratch_database
from flowdeck.ingest.file_import import import_direct
from flowdeck.ingest.pipeline_stats import parse_table, read_table
from flowdeck.ingest.stats_columnar import parse_columns

TARGET = 200_000  # rows/s from Parquet on DuckDB
PIPELINES = 40


def make_table(rows: int, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    day0 = datetime(2023, 1, 1, 1, 0)
    cols: dict[str, list[object]] = {
        "process_queue_id": [],
        "data_contract_name": [],
        "execution_start": [],
        "execution_end": [],
        "execution_time_seconds": [],
        "rows_read": [],
        "rows_written": [],
        "rows_invalid": [],
        "read_throughput_rows_per_sec": [],
        "write_throughput_rows_per_sec": [],
        "custom_stats": [],
        "timestamp": [],
        "env": [],
    }
    for i in range(rows):
        batch, process = divmod(i, PIPELINES)
        start = day0 + timedelta(days=batch, seconds=rng.randint(0, 3600))
        seconds = rng.uniform(5, 1800)
        end = start + timedelta(seconds=seconds)
        read = rng.randint(0, 2_000_000)
        invalid = 0 if rng.random() < 0.9 else rng.randint(1, 500)
        written = max(read - invalid, 0)
        cols["process_queue_id"].append(20230101 + batch)
        cols["data_contract_name"].append(f"contract_{process:02d}")
        cols["execution_start"].append(start)
        cols["execution_end"].append(end)
        cols["execution_time_seconds"].append(seconds)
        cols["rows_read"].append(read if rng.random() > 0.01 else -1)  # 1 % rejected
        cols["rows_written"].append(written)
        cols["rows_invalid"].append(invalid)
        cols["read_throughput_rows_per_sec"].append(read / seconds)
        cols["write_throughput_rows_per_sec"].append(written / seconds)
        cols["custom_stats"].append(
            json.dumps({"scd2_new": rng.randint(0, 999), "scd2_changed": rng.randint(0, 99)})
        )
        cols["timestamp"].append(end + timedelta(seconds=1))
        cols["env"].append("prod")
    return pa.table(cols)


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    rows = 20_000 if args.quick else args.rows
    environment_banner(args.db, f"{rows:,} rows")

    with tempfile.TemporaryDirectory(prefix="flowdeck-import-") as tmp:
        path = Path(tmp) / "pipeline_stats.parquet"
        pq.write_table(make_table(rows), path)
        size = path.stat().st_size
        print(f"file: {rows:,} rows, {size / 1e6:.1f} MB Parquet")
        with scratch_database(args.db, args.pg_admin, "import") as url:
            for attempt in ("first import", "again (all stored)"):
                t0 = time.perf_counter()
                table = read_table(path)
                t1 = time.perf_counter()
                # As `flowdeck import` does: in columns into DuckDB, row by row otherwise.
                parsed = parse_columns(table) if url.startswith("duckdb:") else None
                if parsed is None:
                    parsed = parse_table(table)
                t2 = time.perf_counter()
                written = import_direct(parsed, url)
                t3 = time.perf_counter()
                total = t3 - t0
                print(
                    f"{attempt}: {fmt_rate(rows / total, 'rows/s')} overall "
                    f"({written:,} runs, {len(parsed.rejected):,} rejected, {total:.1f} s) · "
                    f"read {fmt_rate(rows / (t1 - t0), 'rows/s')} · "
                    f"check {fmt_rate(rows / (t2 - t1), 'rows/s')} · "
                    f"write {fmt_rate(written / (t3 - t2), 'runs/s')} · "
                    f"target {TARGET:,} rows/s: {rows / total / TARGET:.2f}×"
                )


if __name__ == "__main__":
    main()
