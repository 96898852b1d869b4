"""``pipeline_stats`` rows checked and turned into runs by DuckDB, in columns.

``pipeline_stats.row_report`` reads a row in Python at about 15 µs; a large import spends
most of its time there and in the writer's merge. Here one query over the Arrow table does
the same for every row whose values it is sure to read exactly as ``row_report`` would (a
count spelled as digits, a timestamp in ISO form, a JSON object of plain values…): the
row's run id, its report's fields, and what ``runs.merge`` derives for a new run (through
``columnar.derive_sql``). Every other row (a bad value, an odd spelling) is left to
``row_report``, which accepts it or names the rule it breaks, so rejections read the same
either way. ``tests/imports/test_stats_columnar.py`` holds the two readings to that.

A column of a type this reader does not know (booleans, nested values, dates…) makes it
answer None, and the file is read row by row as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowdeck.ingest.columnar import COLUMNS, derive_sql, stat_columns_sql, stat_values_sql
from flowdeck.ingest.pipeline_stats import COLUMNS as STATS_COLUMNS
from flowdeck.ingest.pipeline_stats import (
    MAX_NAME,
    REQUIRED,
    Order,
    Parsed,
    Rejected,
    Report,
    RowProblem,
    report_order,
    rerun_order,
    row_report,
    table_rows,
)
from flowdeck.runs import DEFAULT_ENV, DEFAULT_PROJECT

SOURCE: Final = "stats_rows"
_MAX_COUNT: Final = 2**62
_MAX_EXACT: Final = 2**53  # a double holds every whole number up to here
_YEAR_1000: Final = "TIMESTAMPTZ '1000-01-01 00:00:00+00'"
# A name whose first and last characters are printable ASCII (``str.strip`` would keep
# it as it is) of at most MAX_NAME characters.
_PLAIN_NAME: Final = "(?s)[!-~](.*[!-~])?"
_PLAIN_TIME: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
)
# custom_stats text that could read differently in Python: big or far numbers, escapes
# (which could spell recorded_at), recorded_at itself (the timestamp column's), and a
# trailing comma (DuckDB's JSON reader takes one, Python's refuses it).
_ODD_STATS: Final = r'[0-9]{16}|[eE][+-]?[0-9]{3}|\\u|"recorded_at"|,\s*[}\]]'

Sql = tuple[str, str]  # (value, the value is one read exactly as Python would)


class Unsupported(Exception):
    """A column of a type the reader does not know."""


def _kind(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_timestamp(t) and t.unit in ("s", "ms", "us"):
        return "timestamp"
    raise Unsupported(str(t))


def _text(c: str, kind: str) -> Sql:
    if kind == "null":
        return "NULL::VARCHAR", "true"
    if kind == "string":
        return c, (
            f"({c} IS NULL OR (length({c}) <= {MAX_NAME}"
            f" AND regexp_full_match({c}, '{_PLAIN_NAME}')))"
        )
    if kind == "int":
        return f"CAST({c} AS VARCHAR)", "true"
    if kind == "float":
        return f"CAST(TRY_CAST({c} AS BIGINT) AS VARCHAR)", (
            f"({c} IS NULL OR (isfinite({c}) AND {c} = floor({c}) AND abs({c}) <= {_MAX_EXACT}))"
        )
    raise Unsupported(kind)


def _time(c: str, kind: str) -> Sql:
    if kind == "null":
        return "NULL::TIMESTAMPTZ", "true"
    if kind == "string":
        value = f"TRY_CAST({c} AS TIMESTAMPTZ)"
        plain = f"regexp_full_match({c}, '{_PLAIN_TIME}')"
    elif kind == "timestamp":
        # The same instant as a cast, without the cast's time zone work (ICU's, per row).
        value, plain = f"make_timestamptz(epoch_us({c}))", "true"
    else:
        raise Unsupported(kind)
    # Years before 1000 are left to Python (its text of them is padded).
    return value, f"({c} IS NULL OR ({plain} AND {value} >= {_YEAR_1000}))"


def _count(c: str, kind: str) -> Sql:
    if kind == "null":
        return "NULL::BIGINT", "true"
    if kind == "string":
        return f"TRY_CAST(TRY_CAST({c} AS DOUBLE) AS BIGINT)", (
            f"({c} IS NULL OR regexp_full_match({c}, '[0-9]{{1,15}}(\\.0*)?'))"
        )
    if kind == "int":
        return f"TRY_CAST({c} AS BIGINT)", f"({c} IS NULL OR {c} BETWEEN 0 AND {_MAX_COUNT})"
    if kind == "float":
        return f"TRY_CAST({c} AS BIGINT)", (
            f"({c} IS NULL OR (isfinite({c}) AND {c} = floor({c})"
            f" AND {c} BETWEEN 0 AND {_MAX_EXACT}))"
        )
    raise Unsupported(kind)


def _number(c: str, kind: str) -> Sql:
    if kind == "null":
        return "NULL::DOUBLE", "true"
    if kind == "string":
        return f"TRY_CAST({c} AS DOUBLE)", (
            f"({c} IS NULL OR regexp_full_match({c}, '[0-9]{{1,15}}(\\.[0-9]{{1,15}})?'))"
        )
    if kind in ("int", "float"):
        return f"CAST({c} AS DOUBLE)", f"({c} IS NULL OR (isfinite({c}) AND {c} >= 0))"
    raise Unsupported(kind)


def _stats_keys(kind: str) -> str:
    """The keys of a custom_stats value that is a plain object, else NULL: the JSON
    functions parse the text each time, so this is done once, before the readers."""
    if kind != "string":
        return "NULL::VARCHAR[]"
    c = '"custom_stats"'
    # One parse: text that starts an object and fails to parse gives NULL through try()
    # (an object after white space is left to Python, which reads it as well).
    return (
        f"CASE WHEN starts_with({c}, '{{') AND NOT regexp_matches({c}, '{_ODD_STATS}')"
        f" THEN try(json_keys({c})) END"
    )


# No key twice (Python would keep the last value, DuckDB reads the first). Most objects
# have at most two keys: a CASE spares them the list work (OR would not).
_UNIQUE_KEYS: Final = (
    "CASE WHEN stats_keys IS NULL THEN false WHEN len(stats_keys) < 2 THEN true"
    " WHEN len(stats_keys) = 2 THEN stats_keys[1] <> stats_keys[2]"
    " ELSE len(stats_keys) = list_unique(stats_keys) END"
)


def _stats(c: str, kind: str) -> Sql:
    if kind == "null":
        return "NULL::VARCHAR", "true"
    if kind != "string":
        raise Unsupported(kind)
    # Only a plain object is read on (the JSON functions fail on anything else).
    return f"CASE WHEN stats_plain THEN {c} END", f"({c} IS NULL OR stats_plain)"


_READERS: Final[dict[str, Callable[[str, str], Sql]]] = {
    "process_queue_id": _text,
    "data_contract_name": _text,
    "env": _text,
    "execution_start": _time,
    "execution_end": _time,
    "timestamp": _time,
    "rows_read": _count,
    "rows_written": _count,
    "rows_invalid": _count,
    "execution_time_seconds": _number,
    "read_throughput_rows_per_sec": _number,
    "write_throughput_rows_per_sec": _number,
    "custom_stats": _stats,
}
# Run fields from the file's columns.
_FIELDS: Final = {
    "batch_id": "process_queue_id",
    "pipeline": "data_contract_name",
    "env_given": "env",
    "started_at": "execution_start",
    "ended_at": "execution_end",
    "recorded": "timestamp",
    "rows_read": "rows_read",
    "rows_written": "rows_written",
    "rows_invalid": "rows_invalid",
    "duration_s": "execution_time_seconds",
    "read_throughput": "read_throughput_rows_per_sec",
    "write_throughput": "write_throughput_rows_per_sec",
    "given_stats": "custom_stats",
}
# The text Python's ``isoformat().replace("+00:00", "Z")`` gives a UTC timestamp, formatted
# as a TIMESTAMP of the same (UTC) reading: a TIMESTAMPTZ would be formatted through ICU.
_UTC: Final = "make_timestamp(epoch_us(recorded))"
_ISO: Final = (
    f"CASE WHEN epoch_us(recorded) % 1000000 = 0 THEN strftime({_UTC}, '%Y-%m-%dT%H:%M:%S')"
    f" ELSE strftime({_UTC}, '%Y-%m-%dT%H:%M:%S.%f') END || 'Z'"
)


def _query(kinds: dict[str, str]) -> str:
    values: list[str] = []
    plains: list[str] = []
    for name, column in _FIELDS.items():
        value, plain = _READERS[column](f'"{column}"', kinds.get(column, "null"))
        values.append(f"{value} AS {name}")
        plains.append(plain)
    key = "project || chr(31) || env || chr(31) || batch_id || chr(31) || pipeline"
    readable = "'ps:' || project || ':' || env || ':' || batch_id || ':' || pipeline"
    rec = "'\"recorded_at\": \"' || recorded_text || '\"}'"
    return f"""
WITH parsed AS (
    SELECT *, {_stats_keys(kinds.get("custom_stats", "null"))} AS stats_keys FROM {SOURCE}
), unique_keys AS (
    SELECT *, {_UNIQUE_KEYS} AS stats_plain FROM parsed
), typed AS (
    SELECT row_no, {" AND ".join(plains)} AS read_plain, {", ".join(values)}
    FROM unique_keys
), named AS (
    SELECT * EXCLUDE (env_given), $project AS project,
        coalesce(env_given, $env) AS env,
        CASE WHEN recorded IS NOT NULL THEN {_ISO} ELSE '' END AS recorded_text
    FROM typed
), keyed AS (
    SELECT *,
        CASE WHEN length({readable}) <= {MAX_NAME} THEN {readable}
             ELSE 'ps:' || sha256({key})[:40] END AS run_id,
        -- (an object with a key has a quote in its text)
        CASE WHEN recorded IS NULL THEN given_stats
             WHEN given_stats IS NULL OR NOT contains(given_stats, '"') THEN '{{' || {rec}
             ELSE regexp_replace(given_stats, '\\}}\\s*$', ', ' || {rec}) END AS cs
    FROM named
), stats AS (
    -- (from the file's object: the one key cs adds is none of these, and it is shorter)
    SELECT *, {stat_values_sql("given_stats")} AS stat_values FROM keyed
), checked AS (
    SELECT * EXCLUDE (stat_values), {stat_columns_sql("stat_values")},
        read_plain AND batch_id IS NOT NULL AS ok,
        NULL::VARCHAR AS status, NULL::BIGINT AS rows_inserted, NULL::BIGINT AS rows_updated,
        NULL::BIGINT AS dq_errors, NULL::VARCHAR AS labels, NULL::VARCHAR AS error_message
    FROM stats
), {derive_sql(("row_no", "recorded_text"))}"""


@dataclass(frozen=True, slots=True)
class StatsColumns:
    """A table's rows split: those read here (one run each, ``COLUMNS`` plus the ordering
    of reruns) and the row numbers (1-based) left to ``row_report``."""

    runs: pa.Table  # COLUMNS + row_no + recorded_text, in row order
    python_rows: list[int]


class _Reader(threading.local):
    def __init__(self) -> None:
        # As many threads as DuckDB likes: an import has the machine to itself.
        self.db = duckdb.connect(":memory:")
        # Timestamps without a zone are UTC, as pipeline_stats reads them.
        self.db.execute("SET TimeZone = 'UTC'")


_reader = _Reader()


def read_stats_columns(table: pa.Table, project: str, env: str) -> StatsColumns | None:
    """Every row of a ``pipeline_stats`` table this reader is sure of, as a run; None when
    a column has a type it does not read (the caller reads the file row by row)."""
    try:
        kinds = {
            name: _kind(table.schema.field(name).type)
            for name in table.column_names
            if name in STATS_COLUMNS
        }
        # A type may be known but not where it stands (a timestamp as env…).
        query = _query(kinds)
    except Unsupported:
        return None
    names = [n for n in table.column_names if n in STATS_COLUMNS]
    source = table.select(names).append_column(
        "row_no", pa.array(range(1, table.num_rows + 1), pa.int64())
    )
    db = _reader.db
    db.register(SOURCE, source)
    try:
        result = db.sql(query, params={"project": project, "env": env}).to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        db.unregister(SOURCE)
    valid = pc.fill_null(result.column("valid"), False)
    python_rows = pc.filter(result.column("row_no"), pc.invert(valid)).to_pylist()
    if not python_rows:
        return StatsColumns(result.drop_columns(["valid"]), [])
    # DuckDB filters the text columns in a third of Arrow's time (on both cores).
    db.register(SOURCE, result)
    try:
        runs = db.sql(f"SELECT * EXCLUDE (valid) FROM {SOURCE} WHERE valid").to_arrow_table()
    finally:
        db.unregister(SOURCE)
    return StatsColumns(runs, python_rows)


_LATEST: Final = f"""
SELECT * FROM {SOURCE}
QUALIFY row_number() OVER (
    PARTITION BY run_id
    ORDER BY started_at IS NOT NULL DESC, started_at DESC, recorded_text DESC, row_no DESC
) = 1
ORDER BY row_no
"""


def _latest(runs: pa.Table) -> pa.Table:
    """The latest row of each run (``parse_table``'s order: started, start, recorded, row)."""
    db = _reader.db
    db.register(SOURCE, runs)
    try:
        # Most files hold each run once: a count is cheaper than the window.
        ((distinct,),) = db.execute(f"SELECT count(DISTINCT run_id) FROM {SOURCE}").fetchall()
        if distinct == runs.num_rows:
            return runs
        return db.sql(_LATEST).to_arrow_table()
    finally:
        db.unregister(SOURCE)


def parse_columns(
    table: pa.Table,
    *,
    project: str = DEFAULT_PROJECT,
    env: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Parsed | None:
    """``parse_table``'s result, with the rows read here as an Arrow table of new runs
    (``Parsed.columns``); None when the file must be read row by row."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        return None  # parse_table names what is missing
    split = read_stats_columns(table, project, env or DEFAULT_ENV)
    if split is None:
        return None
    out = Parsed(rows=table.num_rows, project=project, env=env)
    out.ignored_columns = [c for c in table.column_names if c not in STATS_COLUMNS]
    # The rows left to Python, each accepted or rejected by row_report.
    reports: dict[str, tuple[Report, int, Order]] = {}
    accepted = 0
    if split.python_rows:
        rows = table.take(pa.array([r - 1 for r in split.python_rows], pa.int64()))
        for number, row in zip(split.python_rows, table_rows(rows), strict=True):
            try:
                report = row_report(row, project, env or DEFAULT_ENV)
            except RowProblem as exc:
                out.rejected.append(Rejected(number, exc.column, exc.reason))
                continue
            accepted += 1
            order = report_order(report, number)
            seen = reports.get(report["run_id"])
            if seen is None or order > seen[2]:
                reports[report["run_id"]] = (report, number, order)
    latest = _latest(split.runs)
    if reports:
        # A run with rows both ways keeps its latest row, whichever way it was read.
        ids = latest.column("run_id")
        clash = pc.is_in(ids, value_set=pa.array(list(reports), pa.string()))
        drop: set[int] = set()
        for i in pc.indices_nonzero(clash).to_pylist():
            run_id = ids[i].as_py()
            mine = rerun_order(
                latest.column("started_at")[i].as_py(),
                latest.column("recorded_text")[i].as_py(),
                latest.column("row_no")[i].as_py(),
            )
            if mine > reports[run_id][2]:
                del reports[run_id]
            else:
                drop.add(i)
        if drop:
            keep = [i not in drop for i in range(latest.num_rows)]
            latest = latest.filter(pa.array(keep, pa.bool_()))
    for report, number, _order_key in sorted(reports.values(), key=lambda r: r[1]):
        out.reports.append(report)
        out.row_numbers.append(number)
    out.superseded = split.runs.num_rows + accepted - latest.num_rows - len(out.reports)
    out.column_rows = latest.column("row_no").to_pylist()
    out.columns = latest.select(list(COLUMNS))
    out.source = table
    if progress is not None:
        progress(table.num_rows)
    return out
