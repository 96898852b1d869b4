"""Bulk run reports read straight into columns by DuckDB's JSON reader.

A list of thousands of new runs is the common bulk request, and through Python objects it
costs about 25 µs a run (validation, merge, staging). Here DuckDB parses the body, checks
every rule the API's validation checks, and derives status and fields exactly as
``runs.merge`` does for a new run, all in one query that runs without the GIL. The result
is an Arrow table the writer appends as it is (see ``store/bulk.py``).

The reader is deliberately narrower than the API: whatever it is not sure to read exactly
as ``parse_reports`` would (a string where a number belongs, a timestamp in another
spelling, an unknown field, a duplicate key…) makes it answer None, and the request takes
the general path, which accepts it or names every problem. So a request either gets the
same result both ways or goes the general way; ``tests/test_columnar.py`` holds the two
paths to that.
"""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, get_args

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowdeck.events import TableRunEvents
from flowdeck.models import RunIn, StatusName
from flowdeck.runs import DEFAULT_ENV, DEFAULT_PROJECT, RunRecord

# Smaller bodies take the general path: the query's fixed cost (about 1 ms) buys nothing.
MIN_BODY_BYTES: Final = 64 * 1024

FIELDS: Final = tuple(RunIn.__annotations__)
_NAMES: Final = ("run_id", "project", "pipeline", "env")
_TEXTS: Final = (*_NAMES, "error_message")
_COUNTS: Final = (
    "rows_read",
    "rows_written",
    "rows_invalid",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
)
_RATES: Final = ("duration_s", "read_throughput", "write_throughput")
_OBJECTS: Final = ("custom_stats", "labels")
_STATUS_LIST: Final = ", ".join(f"'{s}'" for s in get_args(StatusName))
_MAX_COUNT: Final = 2**62
# What the general path accepts as a zoned timestamp, in the one spelling read here.
_TIMESTAMP: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)

# Columns of the result: a stored run's but created_at and updated_at (the writer's: they
# depend on the commit's clock, as does sort_at, which is not a field of a run).
COLUMNS: Final = tuple(
    name for name in RunRecord.__dataclass_fields__ if name not in ("created_at", "updated_at")
)


# How the typed read takes each field (the keys query has made sure the JSON types are
# the ones these read exactly as the API's validation does).
_READ_AS: Final = {
    **dict.fromkeys((*_TEXTS, "batch_id", "status", "started_at", "ended_at"), "VARCHAR"),
    **dict.fromkeys(_RATES, "DOUBLE"),
    **dict.fromkeys(_COUNTS, "BIGINT"),
    **dict.fromkeys(_OBJECTS, "JSON"),
}


# custom_stats values flowdeck reads as row counts (runs.as_count), taken out of the JSON
# once: (column, key).
_STAT_COUNTS: Final = (
    ("s_new", "scd2_new"),
    ("s_changed", "scd2_changed"),
    ("s_dq", "dq_failed_rows"),
)


def _as_count(v: str) -> str:
    """``runs.as_count`` of a custom_stats value ``v`` (JSON, or NULL when absent; its
    JSON type in ``{v}_type``)."""
    return f"""CASE {v}_type
        WHEN 'UBIGINT' THEN TRY_CAST({v} AS BIGINT)
        WHEN 'DOUBLE' THEN CASE WHEN {v}::DOUBLE >= 0 AND {v}::DOUBLE = floor({v}::DOUBLE)
                                THEN TRY_CAST({v}::DOUBLE AS BIGINT) END
        WHEN 'VARCHAR' THEN CASE WHEN regexp_full_match({v}->>'$', '[0-9]+')
                                 THEN TRY_CAST({v}->>'$' AS BIGINT) END
        END"""


def _count_is_plain(v: str) -> str:
    """The value ``v`` is one ``_as_count`` reads as ``as_count`` would: nothing outside
    BIGINT, and a string only in plain ASCII (``str.isdigit`` knows other digits)."""
    return f"""CASE {v}_type
        WHEN 'UBIGINT' THEN {v}::UBIGINT <= {_MAX_COUNT}
        WHEN 'DOUBLE' THEN abs({v}::DOUBLE) <= {_MAX_COUNT}
        WHEN 'VARCHAR' THEN regexp_full_match({v}->>'$', '[ -~]{{0,18}}')
        ELSE true END"""


# Labels map names of 1-100 characters to strings of at most 1,000. A short object (of
# at most 100 characters, so no name or value can be too long) is checked by one pattern
# over its text; a longer one name by name.
_PAIR: Final = r'\s*"(?:[^"\\]|\\.)+"\s*:\s*"(?:[^"\\]|\\.)*"\s*'
_LABELS_SHORT: Final = rf"\{{(?:{_PAIR}(?:,{_PAIR})*|\s*)\}}"
_LABELS_PLAIN: Final = f"""CASE WHEN length(labels) <= 100
    THEN regexp_full_match(labels, '{_LABELS_SHORT}')
    ELSE coalesce(list_bool_and(list_transform(json_keys(labels),
            lambda k: length(k) BETWEEN 1 AND 100)), true)
        AND coalesce(list_bool_and(list_transform(json_extract(labels, '$.*'),
            lambda v: json_type(v) = 'VARCHAR' AND length(v->>'$') <= 1000)), true)
    END"""


def derive_sql(passthrough: Sequence[str] = ()) -> str:
    """The CTEs after ``checked`` and the final SELECT: given a CTE ``checked`` of run fields
    (``started_at``/``ended_at`` typed, ``cs`` and ``labels`` as JSON text, the custom_stats
    values ``s_new``, ``s_changed`` and ``s_dq`` as JSON, and ``ok``: its own checks passed),
    decide ``valid`` and derive what ``runs.merge`` derives for a new run. ``passthrough``
    columns of ``checked`` are selected too."""
    extra = "".join(f", {c}" for c in passthrough)
    types = ", ".join(f"json_type({col}) AS {col}_type" for col, _ in _STAT_COUNTS)
    return f"""
stat_types AS (
    -- (each value's JSON type, read once for the check and the count below)
    SELECT *, {types} FROM checked
), plain AS (
    SELECT *,
        ok AND pipeline IS NOT NULL
           AND (started_at IS NULL OR ended_at IS NULL OR ended_at >= started_at)
           AND {" AND ".join(_count_is_plain(col) for col, _ in _STAT_COUNTS)}
           AND (labels IS NULL OR {_LABELS_PLAIN})
           AS valid,
        started_at IS NOT NULL AND ended_at IS NOT NULL AND duration_s IS NULL AS duration_derived
    FROM stat_types
), derived AS (
    SELECT *,
        {", ".join(f"{_as_count(col)} AS {col}_count" for col, _ in _STAT_COUNTS)},
        CASE WHEN duration_derived
             THEN greatest((epoch_us(ended_at) - epoch_us(started_at)) / 1000000.0, 0.0)
             ELSE duration_s END AS duration
    FROM plain
), filled AS (
    SELECT *,
        read_throughput IS NULL AND rows_read IS NOT NULL AND duration > 0 AS rt_derived,
        write_throughput IS NULL AND rows_written IS NOT NULL AND duration > 0 AS wt_derived,
        rows_inserted IS NULL AND s_new_count IS NOT NULL AS ins_derived,
        rows_updated IS NULL AND s_changed_count IS NOT NULL AS upd_derived,
        dq_errors IS NULL AS dq_derived,
        status IS NULL AS status_derived
    FROM derived
)
SELECT
    valid,
    coalesce(run_id, uuid()::VARCHAR) AS run_id,
    coalesce(project, '{DEFAULT_PROJECT}') AS project, pipeline,
    coalesce(batch_id, run_id) AS batch_id, coalesce(env, '{DEFAULT_ENV}') AS env,
    coalesce(status, CASE
        WHEN started_at IS NULL THEN 'PENDING'
        WHEN ended_at IS NULL THEN 'RUNNING'
        WHEN coalesce(rows_invalid, 0) > 0 OR duration_derived THEN 'FAILED'
        ELSE 'SUCCESS' END) AS status,
    started_at, ended_at, duration AS duration_s,
    rows_read, rows_written, rows_invalid,
    CASE WHEN ins_derived THEN s_new_count ELSE rows_inserted END AS rows_inserted,
    CASE WHEN upd_derived THEN s_changed_count ELSE rows_updated END AS rows_updated,
    CASE WHEN NOT dq_derived THEN dq_errors
         WHEN rows_invalid IS NOT NULL THEN rows_invalid
         ELSE coalesce(s_dq_count, 0) END AS dq_errors,
    CASE WHEN rt_derived THEN rows_read / duration ELSE read_throughput END
        AS read_throughput,
    CASE WHEN wt_derived THEN rows_written / duration ELSE write_throughput END
        AS write_throughput,
    coalesce(cs, '{{}}') AS custom_stats, coalesce(labels, '{{}}') AS labels, error_message,
    concat_ws(',',
        CASE WHEN dq_derived THEN 'dq_errors' END,
        CASE WHEN duration_derived THEN 'duration_s' END,
        CASE WHEN rt_derived THEN 'read_throughput' END,
        CASE WHEN ins_derived THEN 'rows_inserted' END,
        CASE WHEN upd_derived THEN 'rows_updated' END,
        CASE WHEN status_derived THEN 'status' END,
        CASE WHEN wt_derived THEN 'write_throughput' END) AS derived{extra}
FROM filled
"""


def stat_values_sql(cs: str) -> str:
    """The custom_stats values ``derive_sql`` reads (``s_new``, ``s_changed``, ``s_dq``),
    taken out of the JSON text ``cs`` in one pass."""
    paths = ", ".join(f"'$.{key}'" for _, key in _STAT_COUNTS)
    return f"json_extract({cs}, [{paths}])"


def stat_columns_sql(values: str) -> str:
    return ", ".join(f"{values}[{i}] AS {col}" for i, (col, _) in enumerate(_STAT_COUNTS, 1))


def _query() -> str:
    columns = ", ".join(f"{name}: '{_READ_AS[name]}'" for name in FIELDS)
    checks = [
        *(f"({c} IS NULL OR length({c}) BETWEEN 1 AND 200)" for c in (*_NAMES, "batch_id")),
        "(error_message IS NULL OR length(error_message) <= 65536)",
        f"(status IS NULL OR status IN ({_STATUS_LIST}))",
        # the timestamps as the text they came as (they are read after the check)
        *(
            f"({c} IS NULL OR (regexp_full_match({c}, '{_TIMESTAMP}')"
            f" AND NOT starts_with({c}, '0000')))"
            for c in ("started_text", "ended_text")
        ),
        *(f"({c} IS NULL OR ({c} >= 0 AND isfinite({c})))" for c in _RATES),
        *(f"({c} IS NULL OR {c} BETWEEN 0 AND {_MAX_COUNT})" for c in _COUNTS),
        *(f"({c} IS NULL OR starts_with({c}, '{{'))" for c in ("cs", "labels")),
    ]
    return f"""
WITH raw AS (
    SELECT * EXCLUDE (custom_stats, labels, started_at, ended_at),
        started_at AS started_text, ended_at AS ended_text,
        custom_stats::VARCHAR AS cs, labels::VARCHAR AS labels,
        {stat_values_sql("custom_stats")} AS stat_counts
    FROM read_json($path, format = 'array', columns = {{{columns}}})
), stats AS (
    SELECT * EXCLUDE (stat_counts), {stat_columns_sql("stat_counts")}
    FROM raw
), checked AS (
    SELECT {" AND ".join(checks)} AS ok, *,
           CAST(started_text AS TIMESTAMPTZ) AS started_at,
           CAST(ended_text AS TIMESTAMPTZ) AS ended_at
    FROM stats
), {derive_sql()}"""


# Values whose JSON type the typed read would take differently from the API's validation
# (a number where a string belongs, a fraction where a count does…). Any match, even a
# harmless one inside custom_stats or a string, sends the body the general way.
_SUSPECT: Final = "|".join(
    [
        rf'"({"|".join((*_TEXTS, "status", "started_at", "ended_at"))})"\s*:\s*[^"n\s]',
        r'"batch_id"\s*:\s*([^"n0-9\s-]|-?[0-9]+[.eE]|-?0|-?[0-9]{19})',
        rf'"({"|".join(_COUNTS)})"\s*:\s*([^n0-9\s]|[0-9]+[.eE]|[0-9]{{19}})',
        rf'"({"|".join(_RATES)})"\s*:\s*[^n0-9\s]',
        rf'"({"|".join(_OBJECTS)})"\s*:\s*[^n{{\s]',
    ]
)
# An escaped letter could spell a known name the patterns above do not see: any "\u" sends
# the body the general way too (a plain search, a fifth of the pattern's cost inside it).
_ESCAPE: Final = "\\u"


def _keys_query() -> str:
    """Count the body's runs; check every key of each is a field of RunIn and no value is
    one the typed read could take differently. (An element that is not an object, or has
    a key twice, makes the main query fail instead.) The body's text is parsed once for the
    keys of all its elements together, and the values are looked at in that text: stricter
    than each object written out again (an escape stays visible), and a third of the cost."""
    fields = ", ".join(f"'{name}'" for name in FIELDS)
    return f"""
SELECT len(keys), list_has_all([{fields}], list_distinct(flatten(keys)))
       AND NOT (contains(content, '{_ESCAPE}') OR regexp_matches(content, '{_SUSPECT}'))
FROM (SELECT content, json_keys(content, '$[*]') AS keys FROM read_text($path))
"""


_QUERY: Final = _query()
_KEYS: Final = _keys_query()


@dataclass(frozen=True, slots=True)
class Columnar:
    """New runs as the writer appends them (the columns of ``COLUMNS``)."""

    table: pa.Table
    run_ids: list[str]
    # What the change stream tells of each run, when known ahead of the commit.
    events: TableRunEvents | None = None


class _Reader(threading.local):
    """One in-memory DuckDB connection and one scratch file per thread, and the two queries
    prepared on that file: planned once (the main one's text took about 3 ms to parse and 5
    to bind and plan), each execution reads the file as it is then."""

    def __init__(self) -> None:
        self.db = duckdb.connect(":memory:", config={"threads": 1})
        folder = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
        fd, name = tempfile.mkstemp(prefix="flowdeck-ingest-", suffix=".json", dir=folder)
        os.close(fd)
        self.path = name
        # Every thread's scratch file is removed when the process exits.
        weakref.finalize(self, os.unlink, name)
        literal = "'" + name.replace("'", "''") + "'"
        for statement, query in ((_KEYS_STATEMENT, _KEYS), (_READ_STATEMENT, _QUERY)):
            self.db.execute(f"PREPARE {statement} AS {query.replace('$path', literal)}")


_KEYS_STATEMENT: Final = "flowdeck_keys"
_READ_STATEMENT: Final = "flowdeck_read"
_reader = _Reader()


def read_columnar(
    body: bytes, max_runs: int, *, min_bytes: int = MIN_BODY_BYTES
) -> Columnar | None:
    """The runs of a JSON list body as columns, or None when the general path must read it:
    a small body, anything but a plain list of run objects, more than ``max_runs`` runs,
    or any value this reader does not read exactly as the API's validation would."""
    if len(body) < min_bytes or body.lstrip()[:1] != b"[":
        return None
    reader = _reader
    path = reader.path
    try:
        with open(path, "wb") as f:
            f.write(body)
        ((count, plain),) = reader.db.execute(f"EXECUTE {_KEYS_STATEMENT}").fetchall()
        if not plain or not 0 < count <= max_runs:
            return None
        table = reader.db.sql(f"EXECUTE {_READ_STATEMENT}").to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        with open(path, "wb"):
            pass  # keep the file, drop its bytes
    # A NULL verdict is no verdict: it counts against the body like a false one.
    if table.num_rows != count or not pc.all(table.column("valid"), skip_nulls=False).as_py():
        return None
    table = table.drop_columns(["valid"])
    run_ids = table.column("run_id").to_pylist()
    return Columnar(table, run_ids, TableRunEvents(table, run_ids))
