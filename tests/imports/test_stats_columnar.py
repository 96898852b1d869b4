"""``pipeline_stats`` rows read in columns (ingest/stats_columnar.py) against
``parse_table``, row by row: the same rejections with the same reasons, the same reruns
replaced, and every run the same as ``row_report`` + ``merge`` make it. Then the import
itself: a file imported in columns leaves the database as the row-by-row import does, and
importing it again, or a grown or corrected copy, changes only what changed."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.ingest.file_import import import_direct
from flowdeck.ingest.pipeline_stats import Parsed, parse_table
from flowdeck.ingest.stats_columnar import parse_columns
from flowdeck.runs import RunRecord, merge
from flowdeck.store.duckdb import DuckDBStore
from tests.test_columnar import same, snapshot

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def runs_of(parsed: Parsed) -> dict[str, tuple[int, RunRecord | dict[str, Any]]]:
    """Each run of a parse by run id: its row, and the record (reports merged as the
    writer merges a new run) or the row read in columns."""
    out: dict[str, tuple[int, RunRecord | dict[str, Any]]] = {}
    for report, row in zip(parsed.reports, parsed.row_numbers, strict=True):
        out[report["run_id"]] = (row, merge(None, report, NOW))
    if parsed.columns is not None:
        for values, row in zip(parsed.columns.to_pylist(), parsed.column_rows, strict=True):
            out[values["run_id"]] = (row, values)
    return out


def agree(table: pa.Table) -> Parsed | None:
    expected = parse_table(table, project="p", env="qa")
    got = parse_columns(table, project="p", env="qa")
    if got is None:
        return None
    assert sorted(map(str, got.rejected)) == sorted(map(str, expected.rejected))
    assert got.superseded == expected.superseded
    assert got.ignored_columns == expected.ignored_columns
    want, have = runs_of(expected), runs_of(got)
    assert want.keys() == have.keys()
    for run_id, (row, record) in want.items():
        got_row, got_run = have[run_id]
        assert got_row == row, run_id
        assert isinstance(record, RunRecord)
        if isinstance(got_run, RunRecord):
            assert got_run == record
        else:
            assert same(record, got_run, False), (record, got_run)
    return got


# -- values as a CSV file holds them (text) and as a Parquet file does (typed) -------------

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1))
spellings = st.sampled_from(
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f"]
)
zones = st.sampled_from(["", "", "Z", "+00:00", "+05:30", "-08:00", "+0530"])
time_texts = st.one_of(
    st.builds(lambda t, f, z: t.strftime(f) + z, moments, spellings, zones),
    st.sampled_from(
        ["2026-02-30 00:00:00", "2026-01-01T24:00:00", "2026-01-01", "x", " 2026-01-01 01:00:00"]
    ),
    st.none(),
)
time_values = st.one_of(moments, st.none())
count_texts = st.one_of(
    st.integers(0, 10**7).map(str),
    st.sampled_from(["-1", "1.0", "1.5", "1e3", " 7", "007", "1_000", "x", "123.", "٣"]),
    st.none(),
)
counts = st.one_of(st.integers(-3, 10**7), st.none())
float_counts = st.one_of(
    st.floats(-2, 10**7), st.sampled_from([math.nan, math.inf, 2.0**60, 3.0]), st.none()
)
number_texts = st.one_of(
    st.floats(0, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["-1", "nan", "inf", "1e3", "2.5", " 3", "0.1"]),
    st.none(),
)
numbers = st.one_of(st.floats(-1, 1e6), st.sampled_from([math.nan, math.inf, -0.0]), st.none())
stat_values = st.one_of(
    st.integers(-5, 10**6), st.sampled_from([3.0, 2.5, "12", "1\u0663", "", True, None, [1]])
)
stats_texts = st.one_of(
    st.dictionaries(
        st.sampled_from(["scd2_new", "scd2_changed", "dq_failed_rows", "sku"]), stat_values
    ).map(json.dumps),
    st.sampled_from(
        [
            "x",
            "[]",
            "null",
            '{"a": 1, "a": 2}',
            '{"recorded_at": "x"}',
            '{"scd2_new": 1e400}',
            '{"n": 12345678901234567890}',
            '  {"scd2_new": 3}  ',
            '{"scd2_new": "1\\u0663"}',
            "{}",
            '{"scd2_new": 3,}',
            '{"sku": [1, 2,]}',
            '{"scd2_new": 3} x',
            "{bad",
            '{"scd2_new": 3}\n',
            '{"scd2_new": NaN}',
        ]
    ),
    st.none(),
)
names = st.one_of(
    st.sampled_from(["1", "2", "load_sales", "load_stock", "café"]),
    st.sampled_from(["", " x ", "x" * 201, "a\x1fb", "1.0", "k" * 60]),
    st.none(),
)
batch_ints = st.one_of(st.integers(-2, 3), st.none())


# Values of a clean row: each one this reader takes (the odd ones above are mostly left to
# Python, so a row of them only tests the hand-over).
clean_time_texts = st.builds(lambda t, f, z: t.strftime(f) + z, moments, spellings, zones)
clean_counts = st.one_of(st.integers(0, 10**7), st.none())
clean_stats = st.one_of(
    st.dictionaries(
        st.sampled_from(["scd2_new", "scd2_changed", "dq_failed_rows", "sku"]),
        st.one_of(st.integers(0, 10**6), st.sampled_from([3.0, "12", "x"])),
    ).map(json.dumps),
    st.none(),
)
clean_names = st.sampled_from(["1", "2", "load_sales", "load_stock", "café"])


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 12))
    typed = draw(st.booleans())  # a Parquet file's types, or a CSV file's text
    clean = draw(st.lists(st.booleans(), min_size=n, max_size=n))

    def column(
        text: st.SearchStrategy[Any],
        value: st.SearchStrategy[Any],
        tidy: st.SearchStrategy[Any],
        tidy_text: st.SearchStrategy[Any] | None = None,
    ) -> list[Any]:
        good = tidy if typed or tidy_text is None else tidy_text
        odd = value if typed else text
        return [draw(good if c else odd) for c in clean]

    batch = draw(st.sampled_from([names, batch_ints]))
    read = draw(st.sampled_from([counts, float_counts]))
    invalid = draw(st.sampled_from([counts, float_counts]))
    count_text = clean_counts.map(lambda v: None if v is None else str(v))
    rate_text = st.one_of(st.floats(0, 1e6).map(repr), st.none())
    whole = clean_counts.map(lambda v: None if v is None else float(v))
    cols: dict[str, Any] = {
        "process_queue_id": column(
            names, batch, st.integers(0, 3) if batch is batch_ints else clean_names, clean_names
        ),
        "data_contract_name": column(names, names, clean_names),
        "execution_start": column(time_texts, time_values, moments, clean_time_texts),
        "execution_end": column(time_texts, time_values, st.none(), st.none()),
        "execution_time_seconds": column(
            number_texts, numbers, st.floats(0, 1e6) | st.none(), rate_text
        ),
        "rows_read": column(
            count_texts, read, whole if read is float_counts else clean_counts, count_text
        ),
        "rows_written": column(count_texts, counts, clean_counts, count_text),
        "rows_invalid": column(
            count_texts, invalid, whole if invalid is float_counts else clean_counts, count_text
        ),
        "read_throughput_rows_per_sec": column(
            number_texts, numbers, st.floats(0, 1e6) | st.none(), rate_text
        ),
        "custom_stats": column(stats_texts, stats_texts, clean_stats),
        "timestamp": column(time_texts, time_values, moments, clean_time_texts),
    }
    # A clean row ends after it starts, spelled as its start is.
    for i, start in enumerate(cols["execution_start"]):
        if clean[i] and start is not None and draw(st.integers(0, 3)):
            later = draw(st.timedeltas(timedelta(0), timedelta(hours=5)))
            if isinstance(start, datetime):
                cols["execution_end"][i] = start + later
            else:
                fmt = "%Y-%m-%d %H:%M:%S.%f"
                text = start.replace("T", " ")
                cut = 26 if "." in text else 19
                body, zone = text[:cut], text[cut:]
                moment = datetime.strptime(body, fmt if "." in body else fmt[:-3]) + later
                cols["execution_end"][i] = moment.strftime(fmt) + zone
    if draw(st.booleans()):
        cols["env"] = column(names, names, clean_names)
    if draw(st.booleans()):
        cols["extra"] = [1] * n
    return pa.table(cols)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_reading_in_columns_agrees_with_reading_row_by_row(table: pa.Table) -> None:
    assert agree(table) is not None


def test_columns_of_types_it_does_not_read_leave_the_file_to_python() -> None:
    table = pa.table({"process_queue_id": [1], "data_contract_name": ["a"], "rows_read": [True]})
    assert parse_columns(table) is None
    assert parse_columns(pa.table({"data_contract_name": ["a"]})) is None  # a column missing


def test_a_column_of_a_type_its_reader_does_not_take_leaves_the_file_to_python() -> None:
    # A timestamp is a type the reader knows, but not as env: the rows are read (and
    # rejected, with the reason) row by row instead of the reader failing.
    table = pa.table(
        {
            "process_queue_id": [1, 2],
            "data_contract_name": ["a", "b"],
            "env": pa.array([datetime(2026, 1, 1), None], pa.timestamp("us")),
        }
    )
    assert parse_columns(table) is None
    parsed = parse_table(table)
    assert [(r.row, r.column) for r in parsed.rejected] == [(1, "env")]
    assert parsed.runs == 1


def test_zoned_timestamps_and_reruns() -> None:
    t0 = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    table = pa.table(
        {
            "process_queue_id": [7, 7, 7, 8],
            "data_contract_name": ["a", "a", "a", "a"],
            "execution_start": [t0, t0 + timedelta(hours=1), t0, None],
            "execution_end": [t0 + timedelta(minutes=m) for m in (5, 65, 5, 5)],
            "rows_read": [1, 2, 3, -1],
        }
    )
    got = agree(table)
    assert got is not None and got.superseded == 2 and len(got.rejected) == 1
    assert got.columns is not None and got.columns.column("rows_read").to_pylist() == [2]


# -- the import: in columns, then again ----------------------------------------------------


def pipeline_stats(
    rows: int, *, day0: datetime, written: int = 10, batch0: int = 20260101
) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in ("process_queue_id", "data_contract_name")}
    cols.update({c: [] for c in ("execution_start", "execution_end", "rows_read")})
    cols.update({c: [] for c in ("rows_written", "rows_invalid", "custom_stats", "timestamp")})
    for i in range(rows):
        batch, process = divmod(i, 5)
        start = day0 + timedelta(days=batch, minutes=process)
        cols["process_queue_id"].append(batch0 + batch)
        cols["data_contract_name"].append(f"contract_{process}")
        cols["execution_start"].append(start)
        cols["execution_end"].append(start + timedelta(minutes=3) if i % 7 else None)
        cols["rows_read"].append(100 + i if i % 11 else -1)  # every 11th row is rejected
        cols["rows_written"].append(written)
        cols["rows_invalid"].append(i % 3)
        cols["custom_stats"].append(json.dumps({"scd2_new": i}))
        cols["timestamp"].append(start + timedelta(minutes=4))
    return pa.table(cols)


def imported(tmp_path: Path, name: str, tables: list[pa.Table], columns: bool) -> DuckDBStore:
    url = f"duckdb://{tmp_path / name}"
    for i, table in enumerate(tables):
        path = tmp_path / f"{name}-{i}.parquet"
        pq.write_table(table, path)
        parsed = parse_columns(pq.read_table(path)) if columns else None
        if parsed is None:
            parsed = parse_table(pq.read_table(path))
        runs = parsed.runs
        assert runs == parsed.rows - len(parsed.rejected) - parsed.superseded
        assert import_direct(parsed, url) == runs
    store = DuckDBStore(url)
    store.migrate()
    return store


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(lambda t: t, id="the same file again"),
        pytest.param(
            lambda t: pa.concat_tables(
                [t, pipeline_stats(20, day0=datetime(2026, 2, 1, 1), batch0=20260201)]
            ),
            id="the file grown",
        ),
        pytest.param(
            lambda t: pipeline_stats(t.num_rows, day0=datetime(2026, 1, 1, 1), written=99),
            id="every row corrected",
        ),
    ],
)
def test_importing_in_columns_leaves_what_importing_row_by_row_leaves(
    tmp_path: Path, later: Any
) -> None:
    first = pipeline_stats(60, day0=datetime(2026, 1, 1, 1))
    files = [first, later(first)]
    fast = imported(tmp_path, "columns.duckdb", files, columns=True)
    slow = imported(tmp_path, "rows.duckdb", files, columns=False)
    try:
        a, b = snapshot(fast), snapshot(slow)
        strip = ("created_at", "updated_at")
        assert [{k: v for k, v in vars_of(r).items() if k not in strip} for r in a["runs"]] == [
            {k: v for k, v in vars_of(r).items() if k not in strip} for r in b["runs"]
        ]
        assert a["batches"] == b["batches"]
        assert a["pipelines"] == b["pipelines"]
    finally:
        fast.close()
        slow.close()


def test_a_file_imported_again_writes_nothing(tmp_path: Path) -> None:
    table = pipeline_stats(30, day0=datetime(2026, 1, 1, 1))
    store = imported(tmp_path, "again.duckdb", [table], columns=True)
    before = snapshot(store)
    store.close()
    parsed = parse_columns(table)
    assert parsed is not None
    url = f"duckdb://{tmp_path / 'again.duckdb'}"
    runs = parsed.runs
    assert import_direct(parsed, url) == runs
    assert parsed.unchanged == runs
    store = DuckDBStore(url)
    try:
        assert snapshot(store) == before  # not even updated_at moved
    finally:
        store.close()


def vars_of(record: RunRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in RunRecord.__dataclass_fields__}
