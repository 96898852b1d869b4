"""Shared helpers of the benchmarks: a real server process, a lean HTTP client, realistic
runs, PostgreSQL scratch databases, percentiles and a report printer.

The benchmarks print figures and ratios; nothing here decides pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- command line ----------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--quick", action="store_true", help="small smoke run (a few seconds)")
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("FLOWDECK_BENCH_PG", PG_ADMIN_URL),
        metavar="URL",
        help="PostgreSQL URL used to create and drop the bench database "
        "[env FLOWDECK_BENCH_PG; default %(default)s]",
    )
    return parser


# -- PostgreSQL scratch databases ------------------------------------------------------------
def pg_url(admin_url: str, dbname: str) -> str:
    """The admin URL with its database name replaced."""
    head, _, _ = admin_url.rpartition("/")
    return f"{head}/{dbname}"


def pg_create_database(admin_url: str, dbname: str, *, replace: bool = True) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if replace:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return pg_url(admin_url, dbname)


def pg_database_exists(admin_url: str, dbname: str) -> bool:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return row is not None


def pg_drop_database(admin_url: str, dbname: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(backend: str, admin_url: str, tag: str) -> Iterator[str]:
    """A fresh database URL for ``backend`` that is removed afterwards: a DuckDB file in a
    temporary folder, or a PostgreSQL database ``flowdeck_bench_<tag>_<pid>``."""
    if backend == "duckdb":
        folder = tempfile.mkdtemp(prefix=f"flowdeck-bench-{tag}-")
        try:
            yield f"duckdb:///{folder}/flowdeck.duckdb"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    dbname = f"flowdeck_bench_{tag}_{os.getpid()}"
    url = pg_create_database(admin_url, dbname)
    try:
        yield url
    finally:
        pg_drop_database(admin_url, dbname)


@dataclasses.dataclass
class BenchDatabase:
    """Where a bench keeps its data: ``url``; ``path`` the DuckDB file (empty on
    PostgreSQL); ``existed`` when ``--keep`` names one that is already there."""

    url: str
    path: str
    existed: bool
    backend: str
    admin_url: str
    dbname: str

    def clear(self) -> None:
        """Start from nothing: remove the DuckDB file, or create the PostgreSQL database."""
        if self.backend == "duckdb":
            for suffix in ("", ".wal"):
                Path(self.path + suffix).unlink(missing_ok=True)
        else:
            pg_create_database(self.admin_url, self.dbname)

    def size_bytes(self) -> int:
        """What the data takes on disk: the DuckDB file, or the PostgreSQL database."""
        if self.backend == "duckdb":
            return Path(self.path).stat().st_size
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0


@contextlib.contextmanager
def bench_database(
    backend: str, admin_url: str, tag: str, keep: str | None
) -> Iterator[BenchDatabase]:
    """The database of a bench that may reuse its data (``--keep FILE|DBNAME``): the named
    one, kept afterwards; else a scratch one (as ``scratch_database``) removed afterwards."""
    folder: str | None = None
    path = dbname = ""
    if backend == "duckdb":
        if keep:
            path = str(Path(keep).resolve())
        else:
            folder = tempfile.mkdtemp(prefix=f"flowdeck-bench-{tag}-")
            path = f"{folder}/flowdeck.duckdb"
        url = f"duckdb:///{path}"
    else:
        dbname = keep or f"flowdeck_bench_{tag}_{os.getpid()}"
        url = pg_url(admin_url, dbname)
    try:
        existed = bool(keep) and (
            Path(path).exists() if backend == "duckdb" else pg_database_exists(admin_url, dbname)
        )
        yield BenchDatabase(url, path, existed, backend, admin_url, dbname)
    finally:
        if keep:
            print(f"kept {keep}")
        elif folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        elif dbname:
            pg_drop_database(admin_url, dbname)


# -- the server process ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (Linux /proc/stat)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class MachineLoad:
    """How busy all cores were between enter and exit (1.0 = every core busy)."""

    def __init__(self) -> None:
        self.busy = 0.0
        self._start = (0.0, 0.0)

    def __enter__(self) -> MachineLoad:
        self._start = machine_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, total = machine_cpu()
        self.busy = (busy - self._start[0]) / max(total - self._start[1], 1e-9)


class Server:
    """``flowdeck serve`` in its own process on 127.0.0.1 and a free port."""

    def __init__(
        self, db_url: str, *, log_level: str = "warning", env: dict[str, str] | None = None
    ):
        self.db_url = db_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_level = log_level
        self.env = env
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="flowdeck-bench-server-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        cmd = [
            str(VENV_BIN / "flowdeck"),
            "serve",
            "--db",
            self.db_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz in {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def peak_memory_mb(self) -> float:
        """The server process's peak resident memory so far (Linux VmHWM), in MB."""
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + "/healthz", timeout=10) as resp:
            body: dict[str, Any] = orjson.loads(resp.read())
            return body

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a lean HTTP/1.1 client --------------------------------------------------------------------
class HttpError(RuntimeError):
    pass


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, one request at a time.

    Deliberately minimal (a few microseconds of client CPU per request) so that on a
    2-core machine the figures measure the server, not the load generator."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"{host}:{port}".encode()

    async def connect(self) -> RawConnection:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 22
        )
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def build(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """The bytes of a request; build once, send many times."""
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._host_header]
        if body is not None:
            head.append(b"Content-Type: application/json")
            head.append(b"Content-Length: " + str(len(body)).encode())
        return b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            await self.connect()
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self._reader.readuntil(b"\r\n")
                    break
                parts.append(await self._reader.readexactly(size))
                await self._reader.readexactly(2)
            body = b"".join(parts)
        elif length >= 0:
            body = await self._reader.readexactly(length)
        else:
            raise HttpError("response without Content-Length or chunked encoding")
        return status, body

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        return await self.send(self.build(method, path, body))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def host_port(base: str) -> tuple[str, int]:
    hostport = base.split("://", 1)[1].rstrip("/")
    host, _, port = hostport.partition(":")
    return host, int(port)


# -- realistic runs ----------------------------------------------------------------------------
PIPELINES: tuple[str, ...] = tuple(
    f"{area}_{obj}"
    for area, objs in (
        ("ingest", ("sales", "stock", "prices", "promos", "stores", "products", "returns")),
        ("clean", ("sales", "stock", "prices", "promos", "products", "customers")),
        ("scd2", ("products", "stores", "customers", "suppliers", "prices", "calendar")),
        ("dq", ("sales", "stock", "prices", "products", "promos")),
        ("mart", ("daily_sales", "weekly_sales", "stock_cover", "promo_uplift", "margin")),
        ("export", ("retailer_feed", "finance", "forecast", "replenishment", "bi_extract")),
        ("ml", ("demand_features", "demand_forecast", "price_elasticity")),
        ("ops", ("archive", "vacuum", "reconcile")),
    )
    for obj in objs
)
ENVS: tuple[str, ...] = ("dev", "test", "prod")
RETAILERS: tuple[str, ...] = tuple(f"retailer_{i:03d}" for i in range(250))
TEAMS: tuple[str, ...] = ("ingest", "core", "analytics", "ml", "platform")
ERRORS: tuple[str, ...] = (
    "psycopg.errors.DeadlockDetected: deadlock detected",
    "FileNotFoundError: s3://landing/feed.csv.gz not found",
    "DataContractViolation: column 'ean' has 312 nulls (contract: not null)",
    "TimeoutError: upstream API did not answer in 300 s",
)


def _iso(t: datetime) -> str:
    return t.isoformat()


def make_runs(
    n: int,
    *,
    seed: int = 7,
    prefix: str = "bench",
    processes_per_batch: int = 2_000,
    first_batch: int = 500_000,
    start: datetime | None = None,
) -> list[dict[str, Any]]:
    """``n`` runs as pipelines report them: consecutive daily batches (rotating over the
    envs) of ``processes_per_batch`` processes each, every field the API knows filled in
    the way a real pipeline fills it (explicit status, timestamps, rows, custom_stats,
    labels; some failures with error messages, some still running or pending)."""
    rng = random.Random(seed)
    base = start or datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    runs: list[dict[str, Any]] = []
    for i in range(n):
        b, p = divmod(i, processes_per_batch)
        env = ENVS[b % len(ENVS)]
        day = base + timedelta(days=b // len(ENVS))
        started = day + timedelta(seconds=p * 7 + rng.randrange(600))
        roll = rng.random()
        status = (
            "SUCCESS"
            if roll < 0.90
            else "FAILED"
            if roll < 0.95
            else "RUNNING"
            if roll < 0.98
            else "PENDING"
        )
        rows_read = rng.randrange(1_000, 5_000_000)
        run: dict[str, Any] = {
            "run_id": f"{prefix}-{i:09d}",
            "project": "default",
            "pipeline": PIPELINES[p % len(PIPELINES)],
            "batch_id": first_batch + b,
            "env": env,
            "status": status,
            "labels": {
                "retailer": RETAILERS[(p // len(PIPELINES)) % len(RETAILERS)],
                "team": TEAMS[p % len(TEAMS)],
                "schedule": "daily",
            },
        }
        if status != "PENDING":
            run["started_at"] = _iso(started)
            run["custom_stats"] = {
                "sku_count": rng.randrange(100, 200_000),
                "promo_count": rng.randrange(0, 500),
                "scd2_new": rng.randrange(0, 10_000),
                "scd2_changed": rng.randrange(0, 5_000),
                "stage": "load",
            }
        if status in ("SUCCESS", "FAILED"):
            run["ended_at"] = _iso(started + timedelta(seconds=rng.randrange(5, 3_600)))
            invalid = rng.randrange(0, 50) if rng.random() < 0.2 else 0
            run["rows_read"] = rows_read
            run["rows_written"] = rows_read - invalid
            run["rows_invalid"] = invalid
        if status == "FAILED":
            run["error_message"] = ERRORS[i % len(ERRORS)]
        runs.append(run)
    return runs


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- statistics and printing ----------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {
        "p50": percentile(seconds, 50) * 1000,
        "p95": percentile(seconds, 95) * 1000,
        "p99": percentile(seconds, 99) * 1000,
        "max": max(seconds) * 1000 if seconds else float("nan"),
    }


def ms(value: float) -> str:
    return f"{value:,.2f} ms"


def fmt_rate(value: float, unit: str = "runs/s") -> str:
    return f"{value:,.0f} {unit}"


@dataclass
class Report:
    """Aligned ``name: value`` lines under a title, printed as they come."""

    title: str
    width: int = 46
    lines: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        print(f"\n== {self.title} ==", flush=True)

    def line(self, name: str, value: str) -> None:
        self.lines.append((name, value))
        print(f"  {name:<{self.width}} {value}", flush=True)

    def ratio(self, name: str, numerator: float, denominator: float, note: str = "") -> None:
        value = numerator / denominator if denominator else float("nan")
        self.line(name, f"{value:.3f}" + (f"  ({note})" if note else ""))

    def section(self, name: str) -> None:
        print(f"  -- {name}", flush=True)


def source_version() -> str:
    """The commit and a digest of src/ as it is now (the server code may be mid-change)."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.count("\n")
    except OSError:
        head, dirty = "?", 0
    return f"{head}{f' +{dirty} changed' if dirty else ''} (src digest {digest.hexdigest()[:8]})"


def environment_banner(backend: str, extra: str = "") -> None:
    import duckdb

    cpu = os.cpu_count()
    print(
        f"flowdeck bench · backend={backend} · python {platform.python_version()} · "
        f"duckdb {duckdb.__version__} · {cpu} CPUs · {platform.machine()}"
        + (f" · {extra}" if extra else ""),
        flush=True,
    )
    print(f"flowdeck source: {source_version()} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    quiet_check()


def quiet_check(seconds: float = 1.0) -> float:
    """How busy the machine is before the bench starts; other work on 2 cores skews every
    figure, so say so."""
    with MachineLoad() as load:
        time.sleep(seconds)
    note = "" if load.busy < 0.15 else "  <-- other work is running: figures will be skewed"
    print(f"machine busy before start: {load.busy:.0%} of all cores{note}", flush=True)
    return load.busy


class Stopwatch:
    """Wall time and this process's CPU time between start and stop."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._w = 0.0
        self._c = 0.0

    def __enter__(self) -> Stopwatch:
        self._w = time.perf_counter()
        self._c = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


# -- the stored form of runs, for the "raw" baselines ----------------------------------------------
def stored_rows(
    runs: Sequence[dict[str, Any]], now: datetime | None = None
) -> list[tuple[Any, ...]]:
    """The ``runs`` table rows flowdeck itself would store for these reports (same
    validation, derivation and JSON text), so a baseline writes exactly the same data."""
    from flowdeck.runs import merge
    from flowdeck.store.sql import run_row

    moment = now or datetime.now(UTC)
    reports, _ = validate(list(runs), len(runs))
    return [run_row(merge(None, report, moment)) for report in reports]


def validate(body: bytes | Any, max_runs: int) -> tuple[list[dict[str, Any]], Any]:
    """The API's validation of a request body (bytes, or an object serialised first)."""
    from flowdeck.ingest.reports import parse_reports

    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_reports(raw, max_runs)


def open_sql_store(url: str) -> Any:
    """flowdeck's store for a URL (a SqlStore: reader() and write_transaction() too)."""
    from flowdeck.store import open_store
    from flowdeck.store.sql import SqlStore

    store = open_store(url)
    if not isinstance(store, SqlStore):
        raise TypeError(f"{type(store).__name__} is not a SqlStore")
    return store


def arrow_schema() -> Any:
    """The Arrow schema of a ``runs`` row (as the DuckDB store stages it)."""
    import pyarrow as pa

    from flowdeck.store.sql import RUN_COLUMNS

    def kind(name: str) -> Any:
        if name.endswith("_at"):
            return pa.timestamp("us", tz="UTC")
        if name in ("duration_s", "read_throughput", "write_throughput"):
            return pa.float64()
        if name.startswith("rows_") or name == "dq_errors":
            return pa.int64()
        return pa.string()

    return pa.schema([(name, kind(name)) for name in RUN_COLUMNS])


def arrow_table(rows: Sequence[tuple[Any, ...]]) -> Any:
    import pyarrow as pa

    schema = arrow_schema()
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """Rows in PostgreSQL's COPY text format."""
    out: list[str] = []
    for row in rows:
        cells = []
        for value in row:
            if value is None:
                cells.append("\\N")
            elif isinstance(value, str):
                cells.append(value.translate(_COPY_ESCAPES))
            elif isinstance(value, datetime):
                cells.append(value.isoformat())
            else:
                cells.append(repr(value) if isinstance(value, float) else str(value))
        out.append("\t".join(cells))
    return ("\n".join(out) + "\n").encode()


def migrate(url: str) -> None:
    """Create flowdeck's schema in a database (through flowdeck's own migrations)."""
    from flowdeck.store import open_store

    store = open_store(url)
    try:
        store.migrate()
    finally:
        store.close()


def duckdb_path(url: str) -> str:
    return url.removeprefix("duckdb://")


# -- timing of named stages ------------------------------------------------------------------------
class StageTimer:
    """Accumulated wall time per named stage."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0
            self.counts[name] = self.counts.get(name, 0) + 1

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + 1


# -- instrumentation of the server's ingest path, run in this process -----------------------------
def classify_sql(query: str) -> str:
    q = " ".join(query.split()).upper()
    rules = (
        (q.startswith("INSERT INTO RUNS") and "ON CONFLICT" in q, "sql: upsert runs"),
        (q.startswith("INSERT INTO RUNS"), "sql: insert runs"),
        (q.startswith("INSERT INTO BATCHES") and "GROUP BY" in q, "sql: count batches (GROUP BY)"),
        (q.startswith("INSERT INTO BATCHES") and "STAGED_BATCHES" in q, "sql: upsert batches"),
        (q.startswith("INSERT INTO BATCHES"), "sql: insert a batch"),
        (q.startswith("UPDATE BATCHES"), "sql: update a batch"),
        (q.startswith("DELETE FROM BATCHES"), "sql: prune batches"),
        (q.startswith("SELECT") and "FROM RUNS WHERE RUN_ID" in q, "sql: select existing runs"),
        (q.startswith("SELECT") and "FROM BATCHES B" in q, "sql: select stored batches"),
        (q.startswith("INSERT INTO PIPELINES"), "sql: insert new pipelines"),
        (q.startswith("UPDATE PIPELINES"), "sql: update pipelines"),
        ("FROM PIPELINES P" in q, "sql: select pipeline states"),
        ("ROW_NUMBER() OVER" in q and "STAGED_PKEYS" in q, "sql: recount pipelines"),
        (q.startswith("DELETE FROM PIPELINES"), "sql: delete pipeline"),
        (q.startswith("SELECT COUNT(*) FROM RUNS WHERE PROJECT"), "sql: failures since"),
    )
    return next((name for matched, name in rules if matched), "sql: other")


def instrument_store(store: Any, timer: StageTimer) -> None:
    """Time the store's SQL, staging hooks, merge/plan and commit (this process only)."""
    original_q = store._q

    def timed_q(cur: Any, query: str, params: Any = None) -> Any:
        with timer.stage(classify_sql(query)):
            return original_q(cur, query, params)

    store._q = timed_q
    hooks = ("stage_ids", "stage_runs", "stage_keys", "stage_pipeline_keys", "stage_pipelines")
    for hook in hooks:
        original = getattr(store, hook, None)
        if original is None:  # not in this flowdeck version
            continue

        def timed(*args: Any, _f: Callable[..., Any] = original, _n: str = hook) -> Any:
            with timer.stage(f"store: {_n} (staging)"):
                return _f(*args)

        setattr(store, hook, timed)

    original_upsert = store.upsert_runs

    def upsert(run_ids: Any, plan: Callable[[Any], Any]) -> Any:
        def timed_plan(existing: Any) -> Any:
            with timer.stage("writer: merge + plan"):
                return plan(existing)

        return original_upsert(run_ids, timed_plan)

    store.upsert_runs = upsert
    original_pipelines = getattr(store, "_update_pipelines", None)
    if original_pipelines is not None:

        def update_pipelines(*args: Any) -> Any:
            # Python share only: the SQL and staging inside are timed on their own.
            def inner() -> float:
                return sum(v for k, v in timer.totals.items() if k.startswith(("sql:", "store:")))

            before, t0 = inner(), time.perf_counter()
            try:
                return original_pipelines(*args)
            finally:
                spent = time.perf_counter() - t0 - (inner() - before)
                timer.add("writer: pipeline state (Python)", spent)

        store._update_pipelines = update_pipelines
    original_tx = store.write_transaction

    @contextlib.contextmanager
    def write_transaction() -> Iterator[Any]:
        cm = original_tx()
        with timer.stage("store: begin"):
            cur = cm.__enter__()
        try:
            yield cur
        except BaseException:
            if not cm.__exit__(*sys.exc_info()):
                raise
            return
        with timer.stage("store: commit"):
            cm.__exit__(None, None, None)

    store.write_transaction = write_transaction


def print_breakdown(report: Report, timer: StageTimer, n_runs: int, elapsed: float) -> None:
    """Stage times per run, the writer's unaccounted rest computed from its total."""
    inner = {k: v for k, v in timer.totals.items() if not k.startswith("writer: _commit")}
    commit_total = timer.totals.get("writer: _commit total", 0.0)
    accounted = sum(
        v
        for k, v in inner.items()
        if k.startswith(("writer: merge", "writer: pipeline", "store:", "sql:"))
    )
    inner["writer: rest of _commit (run_row, events, ...)"] = commit_total - accounted
    for name, seconds in sorted(inner.items(), key=lambda kv: -kv[1]):
        report.line(name, f"{seconds / n_runs * 1e6:8.1f} µs/run  {seconds / elapsed:6.1%}")


async def post_bodies(
    base: str, bodies: Sequence[bytes], connections: int, path: str = "/api/v1/runs"
) -> tuple[float, list[float]]:
    """POST every body to ``path`` once over ``connections`` keep-alive connections;
    returns (seconds, latency of each request)."""
    host, port = host_port(base)
    conns = [await RawConnection(host, port).connect() for _ in range(connections)]
    requests = [conns[0].build("POST", path, body) for body in bodies]
    latencies: list[float] = []
    pending = iter(requests)

    async def worker(conn: RawConnection) -> None:
        for request in pending:
            t0 = time.perf_counter()
            status, answer = await conn.send(request)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for conn in conns:
        await conn.close()
    return elapsed, latencies
