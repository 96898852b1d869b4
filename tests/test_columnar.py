"""The columnar bulk path (ingest/columnar.py, store/bulk.py) against the general one: a
body the columnar reader accepts gives exactly the runs ``parse_reports`` + ``merge``
give, one it cannot read exactly is left to the general path, and a table of new runs
appended in SQL leaves runs, batches and pipelines as the general writer leaves them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.errors import InvalidInput
from flowdeck.events import table_run_events
from flowdeck.ingest.columnar import COLUMNS, read_columnar
from flowdeck.ingest.reports import parse_reports
from flowdeck.ingest.writer import run_event
from flowdeck.pipelines import key_of, recount, sort_time
from flowdeck.runs import RunProblem, RunRecord, merge
from flowdeck.store import bulk
from flowdeck.store.bulk import RunsExist
from flowdeck.store.duckdb import DuckDBStore
from flowdeck.store.sql import batch_from_row, record_from_row

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def general(body: bytes) -> list[RunRecord] | None:
    """What the general path makes of a body of new runs (None: it rejects the body)."""
    try:
        reports, _ = parse_reports(body, 10_000)
        return [merge(None, report, NOW) for report in reports]
    except (InvalidInput, RunProblem):
        return None


def columnar(body: bytes) -> list[dict[str, Any]] | None:
    columns = read_columnar(body, 10_000, min_bytes=0)
    return None if columns is None else columns.table.to_pylist()


def same(record: RunRecord, row: dict[str, Any], generated_id: bool) -> bool:
    for name in COLUMNS:
        if generated_id and name in ("run_id", "batch_id"):
            continue
        if name == "derived":
            expected: Any = ",".join(sorted(record.derived))
        else:
            expected = getattr(record, name)
        got = row[name]
        if name in ("custom_stats", "labels"):
            got = orjson.loads(got)
        if expected != got:
            return False
    return True


def timestamps() -> st.SearchStrategy[Any]:
    moments = st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    )
    zones = st.sampled_from(["Z", "+00:00", "+05:30", "-08:00"])
    spelled = st.builds(
        lambda t, z: (
            t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + z
        ),
        moments,
        zones,
    )
    odd = st.sampled_from(
        ["2026-01-01T02:00:00", "2026-02-30T00:00:00Z", "2026-01-01 02:00:00Z", "x", 12, None]
    )
    return st.one_of(spelled, spelled, odd)


counts = st.one_of(
    st.integers(0, 10_000_000),
    st.sampled_from([-1, 5.0, 5.5, "7", True, None, 2**62, 2**62 + 1, 2**64]),
)
rates = st.one_of(
    st.floats(0, 1e9, allow_nan=False), st.integers(0, 10**6), st.sampled_from([-1.5, "2.5", None])
)
names = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["", "x" * 201, 5, None, 'quote " and \\ slash', "caf\u00e9"]),
)
stats = st.dictionaries(
    st.sampled_from(["scd2_new", "scd2_changed", "dq_failed_rows", "sku_count"]),
    st.one_of(
        st.integers(-5, 10**6),
        st.sampled_from([3.0, 2.5, "12", "1\u0663", "", True, None, {"a": 1}, [1], 1e300]),
    ),
)
labels: st.SearchStrategy[Any] = st.one_of(
    st.dictionaries(st.text(min_size=0, max_size=5), st.text(max_size=8), max_size=3),
    st.sampled_from([{"k": 1}, {"k": "v" * 1001}, {"k" * 101: "v"}, None, []]),
)
reports = st.fixed_dictionaries(
    {"pipeline": names},
    optional={
        "run_id": names,
        "project": names,
        "batch_id": st.one_of(names, st.integers(-5, 10**12)),
        "env": names,
        "status": st.sampled_from(["PENDING", "RUNNING", "SUCCESS", "FAILED", "DONE", None]),
        "started_at": timestamps(),
        "ended_at": timestamps(),
        "duration_s": rates,
        "read_throughput": rates,
        "write_throughput": rates,
        "rows_read": counts,
        "rows_written": counts,
        "rows_invalid": counts,
        "rows_inserted": counts,
        "rows_updated": counts,
        "dq_errors": counts,
        "custom_stats": st.one_of(stats, st.sampled_from([None, [], "x"])),
        "labels": labels,
        "error_message": st.one_of(st.text(max_size=20), st.sampled_from([None, 3])),
        "unknown_field": st.just(1),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(reports, min_size=1, max_size=6), st.booleans())
def test_the_columnar_reader_agrees_with_the_general_path(
    runs: list[dict[str, Any]], indent: bool
) -> None:
    body = json.dumps(runs, indent=2 if indent else None).encode()
    expected = general(body)
    got = columnar(body)
    if got is None:
        return  # left to the general path: always allowed
    assert expected is not None, f"columnar accepted what the general path rejects: {body!r}"
    assert len(got) == len(expected)
    for report, record, row in zip(runs, expected, got, strict=True):
        assert same(record, row, "run_id" not in report or report["run_id"] is None), (
            record,
            row,
        )


def realistic(n: int, prefix: str = "r", day: int = 0) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 1, 2, tzinfo=UTC) + timedelta(days=day)
    out = []
    for i in range(n):
        status = ["SUCCESS", "FAILED", "RUNNING", "PENDING", None][i % 5]
        run: dict[str, Any] = {
            "run_id": f"{prefix}{i}",
            "pipeline": f"p{i % 7}",
            "batch_id": 1000 + day + i % 3,
            "env": ["prod", "dev"][i % 2],
            "labels": {"team": "core"},
            "custom_stats": {"scd2_new": i, "dq_failed_rows": str(i % 4)},
        }
        if status is not None:
            run["status"] = status
        if status != "PENDING":
            run["started_at"] = (start + timedelta(minutes=(i * 37) % 600)).isoformat()
        if status in ("SUCCESS", "FAILED", None) and i % 10 != 4:
            run["ended_at"] = (start + timedelta(minutes=(i * 37) % 600 + 9)).isoformat()
            run["rows_read"] = 100 * i
            run["rows_invalid"] = i % 3
        out.append(run)
    return out


def test_realistic_bodies_take_the_columnar_path_and_agree() -> None:
    runs = realistic(500)
    runs[3].pop("run_id")
    body = orjson.dumps(runs)
    got = columnar(body)
    assert got is not None
    for report, record, row in zip(runs, general(body) or [], got, strict=True):
        assert same(record, row, "run_id" not in report)


def test_the_run_events_are_those_of_the_general_path() -> None:
    runs = realistic(50)
    body = orjson.dumps(runs)
    columns = read_columnar(body, 10_000, min_bytes=0)
    assert columns is not None and columns.events is not None
    expected = tuple(run_event(r) for r in general(body) or [])
    assert tuple(columns.events) == expected
    assert columns.events[:3] == expected[:3] and columns.events[-1] == expected[-1]
    # The alert engine reads only their pipelines, in the order they first appear.
    assert columns.events.pipeline_keys() == list(
        dict.fromkeys((e["project"], e["pipeline"], e["env"]) for e in expected)
    )
    assert table_run_events(columns.table, columns.run_ids) == expected


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"rows_read": -1}, "a negative count"),
        ({"rows_read": 5.5}, "a fractional count"),
        ({"env": 5}, "a number where a string belongs"),
        ({"started_at": "2026-01-01T02:00:00"}, "a timestamp without a zone"),
        ({"colour": "red"}, "an unknown field"),
        ({"labels": {"team": 1}}, "a label that is not a string"),
        ({"pipeline": ""}, "an empty name"),
        (
            {"started_at": "2026-01-02T00:00:00Z", "ended_at": "2026-01-01T00:00:00Z"},
            "an end before the start",
        ),
    ],
)
def test_what_the_general_path_rejects_is_left_to_it(change: dict[str, Any], why: str) -> None:
    runs = realistic(50)
    runs[7].update(change)
    body = orjson.dumps(runs)
    assert general(body) is None, why
    assert columnar(body) is None, why


def _with_element(text: bytes) -> bytes:
    """A body of realistic runs with ``text`` as one more element, written as it is."""
    return orjson.dumps(realistic(20))[:-1] + b"," + text + b"]"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_with_element(b"1"), "an element that is a number"),
        (_with_element(b"null"), "an element that is null"),
        (_with_element(b"[]"), "an element that is a list"),
        (_with_element(b'{"pipeline": "p", "pipeline": "q"}'), "a key twice"),
        (_with_element(b'{"pipeline, env": "p"}'), "a key with a comma in it"),
        (_with_element(b'{"pipeline": "p", "[env]": "dev"}'), "a key with brackets in it"),
        (_with_element(b'{"pipeline": "p"}') + b" x", "text after the list"),
        (orjson.dumps(realistic(20))[:-1], "a list that does not end"),
        (b"[]", "an empty list"),
    ],
)
def test_odd_bodies_are_left_to_the_general_path(body: bytes, why: str) -> None:
    """The reader looks at the keys of all elements in one parse of the body: whatever is
    not a list of run objects with known, distinct keys goes the general way."""
    assert columnar(body) is None, why


def test_each_read_takes_its_own_body() -> None:
    """The reader's queries are prepared once on its scratch file: each read still reads
    the body it is given, whatever the sizes before it, and draws fresh run ids."""
    for n in (300, 2, 50):
        runs = realistic(n, prefix=f"size{n}-")
        columns = read_columnar(orjson.dumps(runs), 10_000, min_bytes=0)
        assert columns is not None
        assert columns.run_ids == [r["run_id"] for r in runs]
    anonymous = orjson.dumps([{"pipeline": "p"}] * 3)
    first, second = (read_columnar(anonymous, 10_000, min_bytes=0) for _ in range(2))
    assert first is not None and second is not None
    assert len(set(first.run_ids + second.run_ids)) == 6


def test_small_bodies_and_single_objects_take_the_general_path() -> None:
    small = orjson.dumps(realistic(3))
    assert read_columnar(small, 10_000) is None  # under the size where columns pay off
    one = orjson.dumps(realistic(1)[0])
    assert read_columnar(one, 10_000, min_bytes=0) is None
    assert read_columnar(orjson.dumps(realistic(20)), 10, min_bytes=0) is None  # over the limit


# -- the store: appending new runs leaves what the general writer leaves ------------------


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[DuckDBStore, DuckDBStore]]:
    a = DuckDBStore(f"duckdb://{tmp_path / 'a.duckdb'}")
    b = DuckDBStore(f"duckdb://{tmp_path / 'b.duckdb'}")
    a.migrate()
    b.migrate()
    yield a, b
    a.close()
    b.close()


def upsert(store: DuckDBStore, runs: list[dict[str, Any]], now: datetime) -> None:
    from flowdeck.store.base import WritePlan

    reports, _ = parse_reports(orjson.dumps(runs), 10_000)

    def plan(existing: dict[str, RunRecord]) -> WritePlan:
        records: dict[str, RunRecord] = {}
        for report in reports:
            rid = report["run_id"]
            records[rid] = merge(records.get(rid) or existing.get(rid), report, now)
        keys = {(r.project, r.batch_id) for r in records.values()}
        return WritePlan(list(records.values()), keys, False)

    store.upsert_runs([r["run_id"] for r in reports], plan)


def append(store: DuckDBStore, runs: list[dict[str, Any]], now: datetime) -> None:
    columns = read_columnar(orjson.dumps(runs), 10_000, min_bytes=0)
    assert columns is not None
    touched = store.append_runs(columns.table, now)
    # What it says of the batches it touched is what it stored.
    with store.reader() as cur:
        cur.execute("SELECT * FROM batches")
        stored = {b.key: b for b in map(batch_from_row, cur.fetchall())}
    assert touched and all(b == stored[b.key] for b in touched)


@pytest.fixture(params=["ordered", "parallel"])
def insert_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Appends as small tables take them (in order, on one thread) and as large ones do."""
    if request.param == "parallel":
        monkeypatch.setattr(bulk, "PARALLEL_ROWS", 1)
    return str(request.param)


def snapshot(store: DuckDBStore) -> dict[str, Any]:
    store.flush_pipelines()  # the states the writer keeps back from their table for a while
    with store.reader() as cur:
        cur.execute("SELECT * FROM runs ORDER BY run_id")
        runs = [record_from_row(row) for row in cur.fetchall()]
        cur.execute("SELECT * EXCLUDE (updated_at) FROM batches ORDER BY project, batch_id")
        batches = cur.fetchall()
        cur.execute("SELECT * FROM pipelines ORDER BY project, pipeline, env")
        pipelines = cur.fetchall()
    return {"runs": runs, "batches": batches, "pipelines": pipelines}


def test_appended_runs_leave_what_the_general_writer_leaves(
    stores: tuple[DuckDBStore, DuckDBStore], insert_mode: str
) -> None:
    a, b = stores
    # Both start from the same history, written the general way…
    for day in range(3):
        history = realistic(60, prefix=f"h{day}-", day=day)
        upsert(a, history, NOW + timedelta(minutes=day))
        upsert(b, history, NOW + timedelta(minutes=day))
    # …then take new runs: appended in SQL, or merged one by one. Some of them are older
    # than the history (late successes and failures), some in batches already stored.
    for day, n in ((1, 40), (5, 300), (0, 25)):
        fresh = realistic(n, prefix=f"n{day}-", day=day)
        at = NOW + timedelta(hours=day + 1)
        append(a, fresh, at)
        upsert(b, fresh, at)
        assert snapshot(a) == snapshot(b)


def test_a_stored_run_id_makes_the_append_fail_whole(
    stores: tuple[DuckDBStore, DuckDBStore], insert_mode: str
) -> None:
    a, _ = stores
    append(a, realistic(10), NOW)
    before = snapshot(a)
    again = realistic(10, prefix="x") + realistic(1)  # one run_id is stored already
    columns = read_columnar(orjson.dumps(again), 10_000, min_bytes=0)
    assert columns is not None
    with pytest.raises(RunsExist):
        a.append_runs(columns.table, NOW)
    assert snapshot(a) == before


def stored_streaks(store: DuckDBStore) -> dict[tuple[str, str, str], dict[str, datetime]]:
    """Each pipeline's failed runs after its last success, counted from the stored runs."""
    with store.reader() as cur:
        cur.execute("SELECT * FROM runs")
        runs = [record_from_row(row) for row in cur.fetchall()]
    out: dict[tuple[str, str, str], dict[str, datetime]] = {}
    for key in {key_of(r) for r in runs}:
        state = recount(key, runs)
        assert state is not None
        since = state.last_success_t
        out[key] = {
            r.run_id: sort_time(r)
            for r in runs
            if key_of(r) == key and r.status == "FAILED" and (since is None or sort_time(r) > since)
        }
    return out


def test_an_append_leaves_the_failure_streaks_it_knows_remembered(
    stores: tuple[DuckDBStore, DuckDBStore],
) -> None:
    """A bulk append keeps each pipeline's failures since its last success in the writer's
    cache, so that the next late success needs no count of the stored runs; what it keeps
    is what the stored runs say."""
    a, b = stores
    for day, n in ((2, 200), (1, 150), (4, 300), (0, 100)):
        fresh = realistic(n, prefix=f"n{day}-", day=day)
        at = NOW + timedelta(hours=day + 1)
        append(a, fresh, at)
        upsert(b, fresh, at)
        remembered = dict(a._write_cache.streaks._items)
        assert any(remembered.values()), "no streak of failures to check"
        truth = stored_streaks(a)
        for key, streak in remembered.items():
            assert streak == truth[key], key
        assert snapshot(a) == snapshot(b)
