"""``flowdeck import`` on CSV, Parquet and Delta files, into both stores, twice; and beside
a running server that holds the DuckDB file."""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from flowdeck import cli_import
from flowdeck.cli import main
from flowdeck.ingest.file_import import ImportFailed, import_direct, import_http
from flowdeck.ingest.pipeline_stats import Parsed
from flowdeck.store import RunQuery, open_store
from tests.servers import ServerProcess, threaded_server

HEADER = [
    "process_queue_id",
    "data_contract_name",
    "execution_start",
    "execution_end",
    "execution_time_seconds",
    "rows_read",
    "rows_written",
    "rows_invalid",
    "read_throughput_rows_per_sec",
    "write_throughput_rows_per_sec",
    "custom_stats",
    "timestamp",
    "env",
]
# One row per way a status is derived, a rerun, and two bad rows.
ROWS = [
    [
        "101",
        "load_sales",
        "2026-11-20 01:00:00",
        "2026-11-20 01:10:00",
        "600",
        "1000",
        "990",
        "0",
        "",
        "",
        '{"scd2_new": 10, "scd2_changed": 4}',
        "2026-11-20 01:10:01",
        "prod",
    ],
    [
        "101",
        "load_stock",
        "2026-11-20 01:00:00",
        "2026-11-20 01:05:00",
        "300",
        "500",
        "480",
        "20",
        "",
        "",
        "",
        "",
        "prod",
    ],
    [
        "101",
        "load_prices",
        "2026-11-20 01:00:00",
        "2026-11-20 01:05:00",
        "",
        "10",
        "10",
        "0",
        "",
        "",
        "",
        "",
        "prod",
    ],
    ["101", "load_promos", "2026-11-20 01:00:00", "", "", "", "", "", "", "", "", "", "prod"],
    ["101", "load_returns", "", "", "", "", "", "", "", "", "", "", "prod"],
    [
        "101",
        "load_stock",
        "2026-11-20 00:30:00",
        "2026-11-20 00:40:00",
        "600",
        "1",
        "1",
        "0",
        "",
        "",
        "",
        "",
        "prod",
    ],
    [
        "101",
        "load_bad",
        "2026-11-20 01:00:00",
        "2026-11-20 01:05:00",
        "300",
        "-3",
        "",
        "",
        "",
        "",
        "",
        "",
        "prod",
    ],
    ["101", "", "2026-11-20 01:00:00", "", "", "", "", "", "", "", "", "", "prod"],
]
EXPECTED_STATUS = {
    "load_sales": "SUCCESS",
    "load_stock": "FAILED",  # rows_invalid > 0 (the later of its two rows)
    "load_prices": "FAILED",  # ended without a duration
    "load_promos": "RUNNING",
    "load_returns": "PENDING",
}


def write_csv(path: Path, rows: list[list[str]] = ROWS) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        out.writerows(rows)
    return path


def typed_table() -> pa.Table:
    """The same rows with the types a warehouse table has (naive timestamps, ints)."""

    def ts(text: str) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    def num(text: str) -> int | None:
        return int(text) if text else None

    columns: dict[str, list[Any]] = {name: [] for name in HEADER}
    for r in ROWS:
        values = dict(zip(HEADER, r, strict=True))
        columns["process_queue_id"].append(int(values["process_queue_id"]))
        columns["data_contract_name"].append(values["data_contract_name"] or None)
        for name in ("execution_start", "execution_end", "timestamp"):
            columns[name].append(ts(values[name]))
        columns["execution_time_seconds"].append(
            float(values["execution_time_seconds"]) if values["execution_time_seconds"] else None
        )
        for name in ("rows_read", "rows_written", "rows_invalid"):
            columns[name].append(num(values[name]))
        for name in ("read_throughput_rows_per_sec", "write_throughput_rows_per_sec"):
            columns[name].append(None)
        columns["custom_stats"].append(values["custom_stats"] or None)
        columns["env"].append(values["env"])
    types = {
        "process_queue_id": pa.int64(),
        "data_contract_name": pa.string(),
        "execution_start": pa.timestamp("us"),
        "execution_end": pa.timestamp("us"),
        "timestamp": pa.timestamp("us"),
        "execution_time_seconds": pa.float64(),
        "rows_read": pa.int64(),
        "rows_written": pa.int64(),
        "rows_invalid": pa.int64(),
        "read_throughput_rows_per_sec": pa.float64(),
        "write_throughput_rows_per_sec": pa.float64(),
        "custom_stats": pa.string(),
        "env": pa.string(),
    }
    return pa.table({name: pa.array(columns[name], type=types[name]) for name in HEADER})


def run_import(*args: str) -> Any:
    return CliRunner().invoke(main, ["import", *args], catch_exceptions=False)


def stored_runs(db_url: str) -> dict[str, dict[str, Any]]:
    """Every run of batch 101 by pipeline, all fields but updated_at."""
    store = open_store(db_url)
    try:
        _, records = store.list_batch_runs(RunQuery("default", "101", limit=None))
    finally:
        store.close()
    return {
        r.pipeline: {k: v for k, v in dataclasses.asdict(r).items() if k != "updated_at"}
        for r in records
    }


def check_imported(db_url: str) -> dict[str, dict[str, Any]]:
    runs = stored_runs(db_url)
    assert {p: r["status"] for p, r in runs.items()} == EXPECTED_STATUS
    sales = runs["load_sales"]
    assert sales["run_id"] == "ps:default:prod:101:load_sales"
    assert sales["started_at"] == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert (sales["rows_inserted"], sales["rows_updated"]) == (10, 4)
    assert sales["read_throughput"] == pytest.approx(1000 / 600)
    assert sales["custom_stats"]["recorded_at"] == "2026-11-20T01:10:01Z"
    assert runs["load_stock"]["started_at"] == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert runs["load_stock"]["dq_errors"] == 20
    return runs


def test_csv_import_then_again_changes_nothing(db_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "pipeline_stats.csv")
    first = run_import(str(path), "--db", db_url)
    assert first.exit_code == 1  # some rows were rejected; the rest is imported
    assert first.stdout.startswith(f"imported 6 of 8 rows from {path} as 5 runs into {db_url} in ")
    assert "(1 rows replaced by a later row of the same run; 2 rows rejected)" in first.stdout
    assert first.stderr.splitlines() == [
        "row 7: rows_read: must be a whole number ≥ 0, got '-3'",
        "row 8: data_contract_name: is required",
    ]
    before = check_imported(db_url)

    again = run_import(str(path), "--db", db_url)
    assert again.exit_code == 1
    assert stored_runs(db_url) == before


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_parquet_and_delta_tables(fmt: str, tmp_path: Path) -> None:
    db_url = f"duckdb://{tmp_path / 'flowdeck.duckdb'}"
    table = typed_table()
    if fmt == "parquet":
        path = tmp_path / "pipeline_stats.parquet"
        pq.write_table(table, path)
    else:
        from deltalake import write_deltalake

        path = tmp_path / "pipeline_stats"
        write_deltalake(path, table)
    result = run_import(str(path), "--db", db_url)
    assert result.exit_code == 1, result.output
    assert "as 5 runs" in result.stdout
    assert "row 7: rows_read: must be a whole number ≥ 0, got -3" in result.stderr
    check_imported(db_url)
    before = stored_runs(db_url)
    run_import(str(path), "--db", db_url)
    assert stored_runs(db_url) == before


def test_a_clean_file_exits_0_and_rejects_go_to_a_file(tmp_path: Path) -> None:
    db_url = f"duckdb://{tmp_path / 'flowdeck.duckdb'}"
    clean = run_import(str(write_csv(tmp_path / "ok.csv", ROWS[:5])), "--db", db_url)
    assert clean.exit_code == 0, clean.output
    rejects = tmp_path / "rejects.csv"
    dirty = run_import(
        str(write_csv(tmp_path / "all.csv")), "--db", db_url, "--rejects", str(rejects)
    )
    assert dirty.exit_code == 1
    assert rejects.read_text().splitlines() == [
        "row,column,reason",
        "7,rows_read,\"must be a whole number ≥ 0, got '-3'\"",
        "8,data_contract_name,is required",
    ]


def test_env_and_project_options(tmp_path: Path) -> None:
    db_url = f"duckdb://{tmp_path / 'flowdeck.duckdb'}"
    rows = [r[:-1] for r in ROWS[:1]]
    path = tmp_path / "no_env.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([HEADER[:-1], *rows])
    assert (
        run_import(str(path), "--db", db_url, "--env", "test", "--project", "retail").exit_code == 0
    )
    store = open_store(db_url)
    try:
        run = store.get_run("ps:retail:test:101:load_sales")
    finally:
        store.close()
    assert (run.env, run.project) == ("test", "retail")


def test_a_large_file_shows_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_import, "BAR_FROM_ROWS", 1)
    db_url = f"duckdb://{tmp_path / 'flowdeck.duckdb'}"
    result = run_import(str(write_csv(tmp_path / "ok.csv", ROWS[:5])), "--db", db_url)
    assert "checking rows" in result.stderr and "importing" in result.stderr


def test_bad_files_are_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "x.csv"
    missing.write_text("process_queue_id,rows_read\n1,2\n")
    result = CliRunner().invoke(main, ["import", str(missing), "--db", "duckdb:///unused.duckdb"])
    assert result.exit_code == 1
    assert "required column(s) missing: data_contract_name" in result.stderr
    odd = tmp_path / "x.xlsx"
    odd.write_text("")
    result = CliRunner().invoke(main, ["import", str(odd)])
    assert "cannot tell the format of x.xlsx" in result.stderr


@pytest.mark.slow
def test_beside_a_running_server_holding_the_duckdb_file(tmp_path: Path) -> None:
    db_url = f"duckdb://{tmp_path / 'flowdeck.duckdb'}"
    path = write_csv(tmp_path / "pipeline_stats.csv", ROWS[:5])
    server = ServerProcess("serve", "--db", db_url).wait_healthy()
    try:
        direct = CliRunner().invoke(main, ["import", str(path), "--db", db_url])
        assert direct.exit_code == 1
        assert "import through it with --url http://HOST:PORT" in direct.stderr
        through = run_import(str(path), "--url", server.base)
        assert through.exit_code == 0, through.output
        assert f"as 5 runs into {server.base}" in through.stdout
        batch = httpx2.get(f"{server.base}/api/v1/batches/101").json()
        assert (batch["total"], batch["succeeded"], batch["failed"]) == (5, 1, 2)
        again = run_import(str(path), "--url", server.base)
        assert again.exit_code == 0
        assert httpx2.get(f"{server.base}/api/v1/batches/101").json()["total"] == 5
    finally:
        server.stop()


def refused_parsed() -> Parsed:
    """One good report and one the store refuses although the file check let it through."""
    good = {"run_id": "r-good", "pipeline": "a", "batch_id": "7"}
    bad = {
        "run_id": "r-bad",
        "pipeline": "b",
        "batch_id": "7",
        "started_at": datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
        "ended_at": datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
    }
    return Parsed(rows=12, reports=[good, bad], row_numbers=[3, 12])


def test_rows_the_store_refuses_are_reported_and_the_rest_written(db_url: str) -> None:
    parsed = refused_parsed()
    assert import_direct(parsed, db_url) == 1
    assert [str(r) for r in parsed.rejected] == ["row 12: ended_at: must not be before started_at"]


def test_rows_the_server_refuses_are_reported_and_the_rest_sent(tmp_path: Path) -> None:
    parsed = refused_parsed()
    with threaded_server(f"duckdb://{tmp_path / 'flowdeck.duckdb'}") as base:
        assert import_http(parsed, base) == 1
        assert httpx2.get(f"{base}/api/v1/runs/r-good").status_code == 200
    assert [str(r) for r in parsed.rejected] == ["row 12: ended_at: must not be before started_at"]
    with pytest.raises(ImportFailed, match=f"cannot reach flowdeck at {base}"):
        import_http(refused_parsed(), base)
