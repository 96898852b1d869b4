"""``flowdeck import FILE``: an existing ``pipeline_stats`` table into flowdeck."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click

from flowdeck.settings import Settings

SHOW_REJECTED = 50
BAR_FROM_ROWS = 50_000


@contextmanager
def _bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for large files; nothing for small ones."""
    if total < BAR_FROM_ROWS:
        yield lambda _n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


@click.command("import", short_help="Import a pipeline_stats table (CSV, Parquet, Delta).")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--db",
    metavar="URL",
    help="database to write into [env FLOWDECK_DATABASE_URL; default: the DuckDB file in "
    "the data folder]",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder of the embedded database [env FLOWDECK_DATA_DIR]",
)
@click.option(
    "--url",
    metavar="URL",
    help="import through a running flowdeck (http://HOST:PORT) instead of writing to the "
    "database: needed while `flowdeck serve` holds a DuckDB file",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "delta"]),
    help="file format [default: from the name; a folder with _delta_log is Delta]",
)
@click.option("--env", help="env of rows without an env column or value [default: default]")
@click.option("--project", default="default", show_default=True, help="project of every run")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write every rejected row (row, column, reason) to this CSV file",
)
def import_command(
    file: Path,
    db: str | None,
    data_dir: Path | None,
    url: str | None,
    fmt: str | None,
    env: str | None,
    project: str,
    rejects: Path | None,
) -> None:
    """Import FILE, rows of a pipeline_stats table, as runs.

    \b
    Columns: process_queue_id, data_contract_name (both required), execution_start,
    execution_end, execution_time_seconds, rows_read, rows_written, rows_invalid,
    read_throughput_rows_per_sec, write_throughput_rows_per_sec, custom_stats (JSON),
    timestamp, env. Timestamps without a zone are read as UTC. Status is derived from them.

    Importing the same file again changes nothing: a row's run id comes from its project,
    env, batch and process. Rows that break a rule are listed (row number, column, reason)
    and left out; the rest is imported, and the exit status is then 1.
    """
    from flowdeck.ingest.file_import import ImportFailed, import_direct, import_http
    from flowdeck.ingest.pipeline_stats import BadFile, parse_table, read_table
    from flowdeck.ingest.stats_columnar import parse_columns

    started = time.perf_counter()
    settings = Settings.from_env()
    if data_dir is not None:
        settings = replace(settings, data_dir=data_dir)
    target = url or db or settings.resolved_database_url()
    try:
        table = read_table(file, fmt)
        with _bar(table.num_rows, "checking rows") as update:
            # Into a DuckDB file, rows are checked and appended in columns where they can be.
            parsed = None
            if not url and target.startswith("duckdb:"):
                parsed = parse_columns(table, project=project, env=env, progress=update)
            if parsed is None:
                parsed = parse_table(table, project=project, env=env, progress=update)
    except BadFile as exc:
        raise click.ClickException(str(exc)) from exc
    del table
    if parsed.ignored_columns:
        click.echo(f"ignoring unknown columns: {', '.join(parsed.ignored_columns)}", err=True)

    try:
        with _bar(parsed.runs, "importing") as update:
            if url:
                written = import_http(parsed, url, update)
            else:
                written = import_direct(parsed, target, update)
    except ImportFailed as exc:
        raise click.ClickException(str(exc)) from exc

    seconds = time.perf_counter() - started
    rejected = sorted(parsed.rejected, key=lambda r: r.row)
    notes = []
    if parsed.superseded:
        notes.append(f"{parsed.superseded:,} rows replaced by a later row of the same run")
    if rejected:
        notes.append(f"{len(rejected):,} rows rejected")
    click.echo(
        f"imported {parsed.rows - len(rejected):,} of {parsed.rows:,} rows from {file} as "
        f"{written:,} runs into {target} in {seconds:.1f} s"
        + (f" ({'; '.join(notes)})" if notes else "")
    )
    for problem in rejected[:SHOW_REJECTED]:
        click.echo(str(problem), err=True)
    if len(rejected) > SHOW_REJECTED:
        more = len(rejected) - SHOW_REJECTED
        click.echo(
            f"… and {more:,} more" + ("" if rejects else " (--rejects FILE lists all)"), err=True
        )
    if rejects is not None:
        with rejects.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["row", "column", "reason"])
            out.writerows([r.row, r.column, r.reason] for r in rejected)
    if rejected:
        sys.exit(1)
