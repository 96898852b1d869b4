"""The ``flowdeck`` command."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click
import uvicorn

from flowdeck import __version__
from flowdeck.api.app import Companion, create_app
from flowdeck.api.server import run_server
from flowdeck.errors import FlowdeckError
from flowdeck.heap import settled_heap
from flowdeck.settings import Settings
from flowdeck.store import check_url

log = logging.getLogger("flowdeck")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _serve(
    settings: Settings,
    log_level: str,
    companions: Sequence[Companion] = (),
    database_file: str = "flowdeck.duckdb",
) -> None:
    _setup_logging(log_level)
    url = settings.resolved_database_url(database_file)
    try:
        check_url(url)
        if settings.alerts_file:
            from flowdeck.alerts.config import load_alerts_file

            load_alerts_file(settings.alerts_file)  # refuse a bad file before serving
    except FlowdeckError as exc:
        raise click.ClickException(str(exc)) from exc
    # The banner is printed whatever the log level: it says where the data lives.
    click.echo(f"flowdeck {__version__}", err=True)
    click.echo(f"data: {url}", err=True)
    click.echo(
        f"serving on http://{settings.host}:{settings.port} "
        "(API under /api/v1, OpenAPI at /openapi.json)",
        err=True,
    )
    # The heap settles last, once everything the server starts with exists.
    app = create_app(settings, companions=[*companions, settled_heap], database_file=database_file)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=log_level.lower() == "debug",
        timeout_graceful_shutdown=5,
    )
    try:
        run_server(app, config)
    except FlowdeckError as exc:
        raise click.ClickException(str(exc)) from exc


def _settings(
    db: str | None, host: str | None, port: int | None, data_dir: Path | None
) -> Settings:
    settings = Settings.from_env()
    changes: dict[str, object] = {}
    if db:
        changes["database_url"] = db
    if host:
        changes["host"] = host
    if port is not None:
        changes["port"] = port
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return replace(settings, **changes)  # type: ignore[arg-type]


db_option = click.option(
    "--db",
    metavar="URL",
    help="duckdb:///path/file.duckdb or postgresql://user@host:port/db "
    "[env FLOWDECK_DATABASE_URL; default: a DuckDB file in the data folder]",
)
host_option = click.option(
    "--host", help="address to listen on [env FLOWDECK_HOST; default 127.0.0.1]"
)
port_option = click.option(
    "--port", type=int, help="port to listen on [env FLOWDECK_PORT; default 8000]"
)
data_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for the embedded database [env FLOWDECK_DATA_DIR; "
    "default ~/.local/share/flowdeck]",
)
log_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowdeck")
def main() -> None:
    """flowdeck: operations dashboard and alerting for data pipelines.

    \b
    Start with the demo (a simulated estate of pipelines):
        flowdeck demo
    Serve your own data:
        flowdeck serve --db postgresql://flowdeck@127.0.0.1:5432/flowdeck
    Pipelines report runs with POST /api/v1/runs; the API is described at /openapi.json.
    """


DEMO_ALERTS = Path(__file__).parent / "simulate" / "demo_alerts.yaml"

alerts_option = click.option(
    "--alerts",
    "alerts_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file of alert channels and rules, read at start; ${NAME} is replaced by "
    "the environment variable NAME [env FLOWDECK_ALERTS_FILE]",
)


@main.command()
@db_option
@host_option
@port_option
@data_option
@log_option
@alerts_option
def serve(
    db: str | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    log_level: str,
    alerts_file: Path | None,
) -> None:
    """Serve the API on your data."""
    settings = _settings(db, host, port, data_dir)
    if alerts_file is not None:
        settings = replace(settings, alerts_file=str(alerts_file))
    _serve(settings, log_level)


@main.command(short_help="Serve a simulated estate: batch history, a live batch, a stream.")
@db_option
@host_option
@port_option
@data_option
@log_option
@click.option("--seed", type=int, default=7, show_default=True, help="same seed, same estate")
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=30,
    show_default=True,
    help="days of history to generate",
)
@click.option(
    "--speed",
    type=click.FloatRange(0.1, 1000),
    default=10.0,
    show_default=True,
    help="how many simulated seconds pass per real second: in the live batch, and in the "
    "streaming pipeline's day of traffic, spikes and slowdowns",
)
@click.option(
    "--stream/--no-stream",
    default=True,
    show_default=True,
    help="also play the streaming pipeline market_signals (metrics, flow, SLOs, review samples)",
)
@alerts_option
def demo(
    db: str | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    log_level: str,
    seed: int,
    days: int,
    speed: float,
    stream: bool,
    alerts_file: Path | None,
) -> None:
    """Serve a simulated estate: 30 days of batch history and a live batch, and a streaming
    pipeline (market_signals: ingest → validate → enrich → store) with two hours of history.

    The demo's DuckDB file (demo.duckdb in the data folder) is created afresh on every start.
    Its alert rules (failures, late feeds, shrinking files, DQ; messages go to the bell)
    come with flowdeck unless --alerts names a file of your own.
    """
    from flowdeck.simulate.companion import demo_companion, reset_demo_database

    settings = _settings(db, host, port, data_dir)
    if alerts_file is not None:
        settings = replace(settings, alerts_file=str(alerts_file))
    elif not settings.alerts_file:
        settings = replace(settings, alerts_file=str(DEMO_ALERTS))
    if not settings.database_url:
        reset_demo_database(settings.data_dir / "demo.duckdb")
    companions = [demo_companion(seed=seed, days=days, speed=speed)]
    if stream:
        from flowdeck.simulate.stream_driver import stream_companion

        # Reports through the public API, to this server once it listens.
        companions.append(stream_companion(seed=seed, speed=speed))
    _serve(settings, log_level, companions=companions, database_file="demo.duckdb")


# `flowdeck import` lives in its own module: it loads nothing of the server until it runs.
from flowdeck.cli_import import import_command  # noqa: E402

main.add_command(import_command)
