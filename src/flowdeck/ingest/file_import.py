"""``flowdeck import``: checked ``pipeline_stats`` rows into flowdeck, one of two ways.

- Directly into the database (the default): the same single writer and merge rules as the
  API, without a server or HTTP in between. DuckDB lets one process open a file, so this
  works while no ``flowdeck serve`` holds it; on PostgreSQL it works beside running servers
  (the writers take turns, and each commit is announced to their live clients).
- Through a running flowdeck's API (``--url``): for a DuckDB file a server holds, or a
  flowdeck on another machine. Rows go out as ``POST /api/v1/runs`` of 10,000 runs.

Either way a row the store refuses is reported and left out, and the others are imported.
"""

from __future__ import annotations

import gzip
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from flowdeck.errors import FlowdeckError, InvalidInput
from flowdeck.events import EventBus
from flowdeck.ingest.columnar import Columnar
from flowdeck.ingest.pipeline_stats import Parsed, Rejected, Report, chunks
from flowdeck.ingest.writer import Writer
from flowdeck.store import open_store
from flowdeck.store.bulk import ColumnarAppend, RunsExist

CHUNK: Final = 10_000
# New runs appended from columns per transaction: whole DuckDB row groups (122,880 rows),
# which go to the file instead of through the write-ahead log, and eight of them, which
# DuckDB inserts on every core (see store/bulk.py). A transaction's primary-key entries
# wait in memory until it commits, which bounds it.
COLUMN_CHUNK: Final = 8 * 122_880
Progress = Callable[[int], None]


class ImportFailed(Exception):
    """The import could not go on (database or server unavailable, refused request)."""


def _nothing(_n: int) -> None:
    return None


def _problem_rows(
    problems: Sequence[tuple[str, str]], rows: Sequence[int]
) -> tuple[set[int], list[Rejected]]:
    """Map problems located as ``<index>.<field>`` (direct) or ``runs[<index>].<field>``
    (HTTP) back to the file's rows."""
    bad: set[int] = set()
    rejected: list[Rejected] = []
    for loc, msg in problems:
        match = re.match(r"^(?:runs\[)?(\d+)\]?\.?(.*)$", loc)
        if match is None:
            raise ImportFailed(f"refused: {loc}: {msg}")
        index = int(match.group(1))
        bad.add(index)
        rejected.append(Rejected(rows[index], match.group(2) or "row", msg))
    return bad, rejected


# -- straight into the store ---------------------------------------------------------------


def import_direct(parsed: Parsed, url: str, progress: Progress = _nothing) -> int:
    """Write the parsed reports through a single writer of our own; returns runs written."""
    try:
        store = open_store(url)
        store.migrate()
    except FlowdeckError as exc:
        hint = ""
        if url.startswith("duckdb://") and "lock" in str(exc).lower():
            hint = (
                "\nThe file is in use, probably by a running `flowdeck serve`: import through "
                "it with --url http://HOST:PORT, or stop it first."
            )
        raise ImportFailed(f"{exc}{hint}") from exc
    bus: EventBus | None = None
    if store.backend == "postgresql":
        from flowdeck.pg_events import PostgresEventBus

        bus = PostgresEventBus(store.url)  # announces commits to running servers' clients
    writer = Writer(store, bus)
    writer.start()
    written = 0
    try:
        if parsed.columns is not None:
            written += _append_columns(writer, parsed, progress)
        pending = [
            (writer.submit(reports, str), reports, rows) for reports, rows in chunks(parsed, CHUNK)
        ]
        for future, reports, rows in pending:
            written += _settle(writer, future.result, reports, rows, parsed)
            progress(len(reports))
    except FlowdeckError as exc:
        raise ImportFailed(str(exc)) from exc
    finally:
        writer.stop()
        if bus is not None:
            bus.stop()
        store.close()
    return written


def _append_columns(writer: Writer, parsed: Parsed, progress: Progress) -> int:
    """Append the runs read in columns that are not stored yet; those that are (a file
    imported again, or grown) become reports for the general merge."""
    assert parsed.columns is not None
    table, rows = parsed.columns, parsed.column_rows
    parsed.columns, parsed.column_rows = None, []
    store = writer.store
    if writer.takes_columns and isinstance(store, ColumnarAppend):
        stored, same = store.stored_runs(table)
    else:
        stored, same = set(table.column("run_id").to_pylist()), set()
    if stored:
        ids = table.column("run_id").to_pylist()
        is_new = [run_id not in stored for run_id in ids]
        flags = zip(rows, ids, is_new, strict=True)
        again = [r for r, run_id, new in flags if not new and run_id not in same]
        table = table.filter(pa.array(is_new, pa.bool_()))
        rows = [r for r, new in zip(rows, is_new, strict=True) if new]
        parsed.reports[:0] = parsed.reports_of(again)
        parsed.row_numbers[:0] = again
        parsed.unchanged = len(same)
        progress(len(same))
    # A run stored just as the file has it is accepted as the general path would: unchanged.
    written = len(same)
    pending = []
    for start in range(0, table.num_rows, COLUMN_CHUNK):
        part = table.slice(start, COLUMN_CHUNK)
        ids = part.column("run_id").to_pylist()
        pending.append((writer.submit_columns(Columnar(part, ids)), rows[start : start + len(ids)]))
    for future, part_rows in pending:
        try:
            written += len(future.result())
        except RunsExist:
            # Stored since they were looked up (not on a file this import holds; kept so
            # that the append can never lose runs): merge them instead.
            parsed.reports.extend(parsed.reports_of(part_rows))
            parsed.row_numbers.extend(part_rows)
        progress(len(part_rows))
    return written


def _settle(
    writer: Writer,
    result: Callable[[], list[str]],
    reports: Sequence[Report],
    rows: Sequence[int],
    parsed: Parsed,
) -> int:
    """Wait for a chunk; if the store refused some of its rows, record them and write the
    rest again (a refused request writes nothing)."""
    while True:
        try:
            return len(result())
        except InvalidInput as exc:
            bad, rejected = _problem_rows([(p.loc, p.msg) for p in exc.problems], rows)
            parsed.rejected.extend(rejected)
            keep = [i for i in range(len(reports)) if i not in bad]
            reports = [reports[i] for i in keep]
            rows = [rows[i] for i in keep]
            if not reports:
                return 0
            result = writer.submit(reports, str).result


# -- through a running server --------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__}")


def _post(url: str, reports: Sequence[Report], timeout: float) -> tuple[int, dict[str, Any]]:
    body = gzip.compress(json.dumps(list(reports), default=_json_default).encode(), 3)
    request = urllib.request.Request(
        url.rstrip("/") + "/api/v1/runs",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        exc.close()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"message": raw.decode("utf-8", "replace")[:500]}
    except (urllib.error.URLError, OSError) as exc:
        raise ImportFailed(
            f"cannot reach flowdeck at {url}: {getattr(exc, 'reason', exc)}"
        ) from exc


def import_http(
    parsed: Parsed, url: str, progress: Progress = _nothing, timeout: float = 300.0
) -> int:
    """POST the reports to a running flowdeck; returns runs written."""
    written = 0
    for reports, rows in chunks(parsed, CHUNK):
        size = len(reports)
        while reports:
            status, answer = _post(url, reports, timeout)
            if status == 200:
                written += int(answer.get("accepted", len(reports)))
                break
            if status != 422 or not answer.get("detail"):
                raise ImportFailed(
                    f"flowdeck at {url} refused the import: HTTP {status} "
                    f"{answer.get('message', '')}".rstrip()
                )
            problems = [(d["loc"], d["msg"]) for d in answer["detail"]]
            bad, rejected = _problem_rows(problems, rows)
            parsed.rejected.extend(rejected)
            keep = [i for i in range(len(reports)) if i not in bad]
            reports = [reports[i] for i in keep]
            rows = [rows[i] for i in keep]
        progress(size)
    return written
