"""Rows of an existing ``pipeline_stats`` table (CSV, Parquet or Delta) as run reports.

Each row is one execution of a process (``data_contract_name``) in a batch
(``process_queue_id``). Its run id is derived from the row's key (project, env, batch,
process), so importing the same file again updates the same runs instead of adding new
ones; when a file holds several rows for one key (a rerun), the latest wins. A row that
breaks a rule is rejected with its number and the reason; the others are imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from flowdeck.runs import DEFAULT_ENV, DEFAULT_PROJECT

Report = dict[str, Any]

REQUIRED: Final = ("process_queue_id", "data_contract_name")
COLUMNS: Final = (
    *REQUIRED,
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
)
MAX_NAME: Final = 200
MAX_COUNT: Final = 2**62


class BadFile(ValueError):
    """The file as a whole cannot be imported (unreadable, or a required column missing)."""


class RowProblem(ValueError):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejected:
    row: int  # 1-based, the header not counted
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.column}: {self.reason}"


@dataclass
class Parsed:
    """What a file holds, once every row is checked."""

    rows: int = 0
    reports: list[Report] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)  # the row of each report
    rejected: list[Rejected] = field(default_factory=list)
    superseded: int = 0  # rows replaced by a later row for the same run
    ignored_columns: list[str] = field(default_factory=list)
    # Runs read in columns (ingest/stats_columnar.py): the table, each run's row, and the
    # file's table (a run found stored already is read again as a report to merge).
    columns: pa.Table | None = None
    column_rows: list[int] = field(default_factory=list)
    source: pa.Table | None = None
    project: str = DEFAULT_PROJECT
    env: str | None = None
    unchanged: int = 0  # runs stored already just as the file has them: not written again

    @property
    def runs(self) -> int:
        return len(self.reports) + len(self.column_rows)

    def reports_of(self, rows: Sequence[int]) -> list[Report]:
        """The reports of these rows of ``source`` (rows read in columns, now needed as
        reports: every one was accepted, so row_report accepts it too)."""
        assert self.source is not None
        table = self.source.take(pa.array([r - 1 for r in rows], pa.int64()))
        return [row_report(row, self.project, self.env or DEFAULT_ENV) for row in table_rows(table)]


# -- reading files ------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "_delta_log").is_dir():
            return "delta"
        raise BadFile(f"{path} is a folder but not a Delta table (no _delta_log)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise BadFile(f"cannot tell the format of {path.name}: use .csv, .parquet or a Delta folder")


def read_table(path: Path, fmt: str | None = None) -> pa.Table:
    fmt = fmt or detect_format(path)
    try:
        if fmt == "csv":
            return _read_csv(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if fmt == "delta":
            try:
                from deltalake import DeltaTable
            except ImportError:
                needs = 'reading Delta tables needs deltalake: pip install "flowdeck[delta]"'
                raise BadFile(needs) from None
            return DeltaTable(str(path)).to_pyarrow_table()
    except BadFile:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise BadFile(f"cannot read {path} as {fmt}: {exc}") from exc
    raise BadFile(f"unknown format {fmt!r}: use csv, parquet or delta")


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv

    with path.open(newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(io.StringIO(f.readline())), [])
    if not header:
        raise BadFile(f"{path} is empty: a header row naming the columns comes first")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # Every column as text: values are checked row by row, so a bad value rejects its row
    # instead of the whole file.
    return pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True
        ),
    )


# -- checking values ----------------------------------------------------------------------


def _text(column: str, value: Any, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowProblem(column, "is required")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowProblem(column, f"must be text or a whole number, got {value!r}")
    text = str(value).strip()
    if len(text) > MAX_NAME:
        raise RowProblem(column, f"must be at most {MAX_NAME} characters")
    return text


def _time(column: str, value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            raise RowProblem(column, f"is not an ISO-8601 timestamp: {value!r}") from None
    if not isinstance(value, datetime):
        raise RowProblem(column, f"must be a timestamp, got {value!r}")
    # A legacy table's timestamps without a zone are read as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count(column: str, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: Any = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise RowProblem(column, f"must be a whole number ≥ 0, got {value!r}") from None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_COUNT:
        raise RowProblem(column, f"must be a whole number ≥ 0, got {value!r}")
    return number


def _number(column: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowProblem(column, f"must be a number ≥ 0, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise RowProblem(column, f"must be a number ≥ 0, got {value!r}")
    return number


def _stats(column: str, value: Any) -> dict[str, Any] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)  # a Parquet map column
    if not isinstance(value, str):
        raise RowProblem(column, f"must be a JSON object, got {value!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowProblem(column, f"is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise RowProblem(column, "must be a JSON object")
    return parsed


def run_id_for(project: str, env: str, batch_id: str, pipeline: str) -> str:
    """The stable id of a row's run: readable when it fits, else a digest of the key."""
    readable = f"ps:{project}:{env}:{batch_id}:{pipeline}"
    if len(readable) <= MAX_NAME:
        return readable
    key = "\x1f".join((project, env, batch_id, pipeline)).encode()
    return "ps:" + hashlib.sha256(key).hexdigest()[:40]


def row_report(row: dict[str, Any], project: str, default_env: str) -> Report:
    """One row as a run report; raises RowProblem naming the column and the rule."""
    batch_id = _text("process_queue_id", row.get("process_queue_id"), required=True)
    pipeline = _text("data_contract_name", row.get("data_contract_name"), required=True)
    assert batch_id is not None and pipeline is not None
    env = _text("env", row.get("env")) or default_env
    started = _time("execution_start", row.get("execution_start"))
    ended = _time("execution_end", row.get("execution_end"))
    if started is not None and ended is not None and ended < started:
        raise RowProblem("execution_end", "is before execution_start")
    report: Report = {
        "run_id": run_id_for(project, env, batch_id, pipeline),
        "project": project,
        "pipeline": pipeline,
        "batch_id": batch_id,
        "env": env,
    }
    if started is not None:
        report["started_at"] = started
    if ended is not None:
        report["ended_at"] = ended
    values: list[tuple[str, str, Callable[[str, Any], Any]]] = [
        ("duration_s", "execution_time_seconds", _number),
        ("rows_read", "rows_read", _count),
        ("rows_written", "rows_written", _count),
        ("rows_invalid", "rows_invalid", _count),
        ("read_throughput", "read_throughput_rows_per_sec", _number),
        ("write_throughput", "write_throughput_rows_per_sec", _number),
    ]
    for name, column, check in values:
        value = check(column, row.get(column))
        if value is not None:
            report[name] = value
    stats = _stats("custom_stats", row.get("custom_stats")) or {}
    recorded = _time("timestamp", row.get("timestamp"))
    if recorded is not None:
        stats = {**stats, "recorded_at": recorded.isoformat().replace("+00:00", "Z")}
    if stats:
        report["custom_stats"] = stats
    # No status: flowdeck derives it as DESIGN.md says (no start → PENDING, no end → RUNNING,
    # rows_invalid > 0 or no duration → FAILED, else SUCCESS).
    return report


Order = tuple[bool, datetime, str, int]
_NEVER: Final = datetime.min.replace(tzinfo=UTC)


def rerun_order(started: datetime | None, recorded: str, row: int) -> Order:
    """Of several rows of one run, the greatest of these wins: the one that started (last),
    then the one recorded last, then the later row."""
    return (started is not None, started or _NEVER, recorded, row)


def report_order(report: Report, row: int) -> Order:
    return rerun_order(
        report.get("started_at"), report.get("custom_stats", {}).get("recorded_at", ""), row
    )


def table_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    names = [n for n in table.column_names if n in COLUMNS]
    columns = [table.column(n).to_pylist() for n in names]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def parse_table(
    table: pa.Table,
    *,
    project: str = DEFAULT_PROJECT,
    env: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Parsed:
    """Check every row of a ``pipeline_stats`` table and turn the good ones into reports."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise BadFile(
            f"required column(s) missing: {', '.join(missing)} "
            f"(found: {', '.join(table.column_names) or 'none'})"
        )
    out = Parsed(rows=table.num_rows)
    out.ignored_columns = [c for c in table.column_names if c not in COLUMNS]
    default_env = env or DEFAULT_ENV
    # Latest row per run id: its position in out.reports and its ordering key.
    latest: dict[str, tuple[int, Order]] = {}
    for number, row in enumerate(table_rows(table), start=1):
        if progress is not None and number % 10_000 == 0:
            progress(10_000)
        try:
            report = row_report(row, project, default_env)
        except RowProblem as exc:
            out.rejected.append(Rejected(number, exc.column, exc.reason))
            continue
        order = report_order(report, number)
        run_id = report["run_id"]
        seen = latest.get(run_id)
        if seen is None:
            latest[run_id] = (len(out.reports), order)
            out.reports.append(report)
            out.row_numbers.append(number)
            continue
        out.superseded += 1
        position, seen_order = seen
        if order > seen_order:
            out.reports[position] = report
            out.row_numbers[position] = number
            latest[run_id] = (position, order)
    if progress is not None:
        progress(table.num_rows % 10_000)
    return out


def chunks(parsed: Parsed, size: int) -> Iterator[tuple[Sequence[Report], Sequence[int]]]:
    for start in range(0, len(parsed.reports), size):
        yield (
            parsed.reports[start : start + size],
            parsed.row_numbers[start : start + size],
        )
