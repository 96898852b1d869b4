"""Rows of a pipeline_stats table as run reports: checks, derivation inputs, stable ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flowdeck.ingest.pipeline_stats import (
    BadFile,
    RowProblem,
    detect_format,
    parse_table,
    row_report,
    run_id_for,
)


def row(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "process_queue_id": 20261123,
        "data_contract_name": "load_sales",
        "execution_start": "2026-11-23 01:00:00",
        "execution_end": "2026-11-23 01:10:00",
        "execution_time_seconds": "600",
        "rows_read": "1000",
        "rows_written": "990",
        "rows_invalid": "0",
        "read_throughput_rows_per_sec": "1.6667",
        "write_throughput_rows_per_sec": "1.65",
        "custom_stats": '{"scd2_new": 5, "sku_count": 12}',
        "timestamp": "2026-11-23T01:10:01",
    }
    base.update(fields)
    return base


def test_a_full_row() -> None:
    assert row_report(row(), "default", "default") == {
        "run_id": "ps:default:default:20261123:load_sales",
        "project": "default",
        "pipeline": "load_sales",
        "batch_id": "20261123",
        "env": "default",
        "started_at": datetime(2026, 11, 23, 1, 0, tzinfo=UTC),
        "ended_at": datetime(2026, 11, 23, 1, 10, tzinfo=UTC),
        "duration_s": 600.0,
        "rows_read": 1000,
        "rows_written": 990,
        "rows_invalid": 0,
        "read_throughput": 1.6667,
        "write_throughput": 1.65,
        "custom_stats": {"scd2_new": 5, "sku_count": 12, "recorded_at": "2026-11-23T01:10:01Z"},
    }


def test_empty_values_are_absent_and_zones_are_kept() -> None:
    got = row_report(
        row(
            execution_end="",
            execution_time_seconds=None,
            rows_written="",
            custom_stats="",
            timestamp=None,
            execution_start="2026-11-23T03:00:00+02:00",
            env="prod",
        ),
        "retail",
        "default",
    )
    assert got["started_at"] == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert got["env"] == "prod"
    assert got["run_id"] == "ps:retail:prod:20261123:load_sales"
    for key in ("ended_at", "duration_s", "rows_written", "custom_stats", "status"):
        assert key not in got


@pytest.mark.parametrize(
    ("fields", "column", "reason"),
    [
        ({"process_queue_id": None}, "process_queue_id", "is required"),
        ({"data_contract_name": " "}, "data_contract_name", "is required"),
        ({"data_contract_name": "x" * 201}, "data_contract_name", "must be at most 200 characters"),
        ({"rows_read": "-5"}, "rows_read", "must be a whole number ≥ 0, got '-5'"),
        ({"rows_written": "many"}, "rows_written", "must be a whole number ≥ 0, got 'many'"),
        ({"rows_invalid": 1.5}, "rows_invalid", "must be a whole number ≥ 0, got 1.5"),
        (
            {"execution_time_seconds": "nan"},
            "execution_time_seconds",
            "must be a number ≥ 0, got 'nan'",
        ),
        (
            {"execution_start": "yesterday"},
            "execution_start",
            "is not an ISO-8601 timestamp: 'yesterday'",
        ),
        ({"execution_end": "2026-11-23T00:59:00"}, "execution_end", "is before execution_start"),
        (
            {"custom_stats": "{oops"},
            "custom_stats",
            "is not valid JSON (Expecting property name enclosed in double quotes at char 1)",
        ),
        ({"custom_stats": "[1, 2]"}, "custom_stats", "must be a JSON object"),
    ],
)
def test_bad_values_name_the_column_and_rule(
    fields: dict[str, Any], column: str, reason: str
) -> None:
    with pytest.raises(RowProblem) as caught:
        row_report(row(**fields), "default", "default")
    assert (caught.value.column, caught.value.reason) == (column, reason)


def test_typed_values_from_parquet() -> None:
    got = row_report(
        row(
            execution_start=datetime(2026, 11, 23, 1, 0),  # naive: read as UTC
            execution_end=datetime(2026, 11, 23, 1, 10, tzinfo=UTC),
            execution_time_seconds=600.0,
            rows_read=1000,
            rows_invalid=3.0,
            custom_stats=[("sku_count", "12")],
        ),
        "default",
        "default",
    )
    assert got["started_at"] == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert (got["rows_read"], got["rows_invalid"]) == (1000, 3)
    assert got["custom_stats"]["sku_count"] == "12"


def test_long_keys_get_a_digest_id() -> None:
    short = run_id_for("default", "prod", "1", "p")
    assert short == "ps:default:prod:1:p"
    long = run_id_for("default", "prod", "1", "p" * 200)
    assert long.startswith("ps:") and len(long) == 43
    assert long == run_id_for("default", "prod", "1", "p" * 200)


def test_a_table_rejects_rows_and_keeps_the_latest_of_a_rerun() -> None:
    rows = [
        row(
            data_contract_name="a",
            execution_start="2026-11-23T02:00:00",
            execution_end="2026-11-23T02:05:00",
        ),
        row(data_contract_name="b", rows_read="-1"),
        row(data_contract_name="a"),  # an earlier run of the same process and batch
        row(data_contract_name="c", custom_stats="nope"),
        row(data_contract_name="d", extra="ignored"),
    ]
    table = pa.Table.from_pylist([{"extra": None, **r} for r in rows])
    parsed = parse_table(table, env="prod")
    assert parsed.rows == 5
    assert [str(r) for r in parsed.rejected] == [
        "row 2: rows_read: must be a whole number ≥ 0, got '-1'",
        "row 4: custom_stats: is not valid JSON (Expecting value at char 0)",
    ]
    assert [r["pipeline"] for r in parsed.reports] == ["a", "d"]
    assert parsed.row_numbers == [1, 5]
    assert parsed.reports[0]["started_at"].hour == 2
    assert parsed.superseded == 1
    assert parsed.ignored_columns == ["extra"]
    assert {r["env"] for r in parsed.reports} == {"prod"}


def test_a_table_without_the_key_columns_is_refused() -> None:
    with pytest.raises(BadFile, match=r"required column\(s\) missing: data_contract_name"):
        parse_table(pa.Table.from_pylist([{"process_queue_id": 1}]))


def test_formats_by_name(tmp_path: Path) -> None:
    assert detect_format(Path("x.csv")) == "csv"
    assert detect_format(Path("x.parquet")) == "parquet"
    (tmp_path / "t" / "_delta_log").mkdir(parents=True)
    assert detect_format(tmp_path / "t") == "delta"
    with pytest.raises(BadFile, match=r"cannot tell the format of x\.xlsx"):
        detect_format(Path("x.xlsx"))
