"""The demo estate: the pipelines of a retail data platform, their nightly batches over the past
days, and a live batch that moves while the demo runs.

Pure and deterministic: every draw comes from a ``random.Random`` seeded with the demo seed and
what is being drawn (env and day, or the live batch), time is passed in, and nothing is read
or written. Reports are shaped like :class:`flowdeck.models.RunIn` (already validated: aware
UTC timestamps, ``batch_id`` as text) so they can go straight to the writer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

Report = dict[str, Any]

PROJECT: Final = "default"
RETAILERS: Final = ("freshmart", "valuecorner", "northway", "citygrocer", "homebasket", "megasave")


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    kind: str  # ingest, feed, staging, scd2, fact, mart, export: decides rows, stats, errors
    team: str
    upstream: tuple[str, ...]
    duration_s: float  # typical prod duration
    rows: int  # typical prod rows read
    fail_p: float  # chance that a prod run fails on its own
    retailer: str | None = None
    count_stat: str | None = None  # "sku_count" or "promo_count" in custom_stats

    @property
    def labels(self) -> dict[str, str]:
        labels = {"team": self.team, "schedule": "daily"}
        if self.retailer:
            labels["retailer"] = self.retailer
        return labels


@dataclass(frozen=True, slots=True)
class Estate:
    seed: int
    pipelines: tuple[Pipeline, ...]  # every pipeline after its upstream

    def downstream(self, name: str) -> list[str]:
        """Everything that (transitively) reads from ``name``, in estate order."""
        hit = {name}
        for p in self.pipelines:
            if hit.intersection(p.upstream):
                hit.add(p.name)
        return [p.name for p in self.pipelines if p.name in hit and p.name != name]


@dataclass(frozen=True, slots=True)
class EnvProfile:
    name: str
    start: time  # when the nightly batch starts (UTC)
    every_days: int
    volume: float  # test and dev work on samples of prod data …
    duration: float  # … on smaller clusters
    failure: float  # … with less settled code and infrastructure


ENVS: Final = (
    EnvProfile("prod", time(1, 0), every_days=1, volume=1.0, duration=1.0, failure=1.0),
    EnvProfile("test", time(3, 30), every_days=1, volume=0.15, duration=0.8, failure=1.5),
    EnvProfile("dev", time(5, 30), every_days=2, volume=0.03, duration=0.7, failure=2.0),
)
PROD: Final = ENVS[0]

# name, kind, team, upstream, typical minutes, typical rows read in prod; upstream first.
_Row = tuple[str, str, str, tuple[str, ...], float, int]
_SOURCES: Final[tuple[_Row, ...]] = (
    ("ingest_pos_sales", "ingest", "ingestion", (), 24, 4_600_000),
    ("ingest_pos_returns", "ingest", "ingestion", (), 6, 185_000),
    ("ingest_ecom_orders", "ingest", "ingestion", (), 9, 340_000),
    ("ingest_erp_orders", "ingest", "ingestion", (), 12, 620_000),
    ("ingest_erp_suppliers", "ingest", "ingestion", (), 2, 11_800),
    ("ingest_store_master", "ingest", "ingestion", (), 1.5, 2_450),
    ("ingest_price_list", "ingest", "ingestion", (), 8, 780_000),
    ("ingest_wms_inventory", "ingest", "supply-chain", (), 17, 2_150_000),
    ("ingest_loyalty_events", "ingest", "crm", (), 13, 1_250_000),
    ("sync_loyalty_members", "ingest", "crm", (), 7, 96_000),
    ("sku_catalog_sync", "ingest", "merchandising", (), 10, 330_000),
    ("promo_calendar_sync", "ingest", "merchandising", (), 3, 42_000),
)
# Retailers send their sell-out (and two of them their stock) as nightly files.
_SELLOUT: Final = {
    "freshmart": (9, 640_000),
    "valuecorner": (7, 410_000),
    "northway": (12, 880_000),
    "citygrocer": (5, 150_000),
    "homebasket": (6, 260_000),
    "megasave": (14, 930_000),
}
_STOCK: Final = {"northway": (8, 520_000), "megasave": (10, 610_000)}
_SELLOUT_FEEDS: Final = tuple(f"feed_{r}_sellout" for r in _SELLOUT)
_STOCK_FEEDS: Final = tuple(f"feed_{r}_stock" for r in _STOCK)
_MODEL: Final[tuple[_Row, ...]] = (
    ("stg_sales_cleansed", "staging", "core-dwh",
     ("ingest_pos_sales", "ingest_pos_returns", "ingest_ecom_orders"), 16, 5_100_000),
    ("stg_retailer_sellout", "staging", "core-dwh", _SELLOUT_FEEDS, 11, 3_200_000),
    ("stg_inventory_snapshot", "staging", "core-dwh",
     ("ingest_wms_inventory", *_STOCK_FEEDS), 12, 3_300_000),
    ("dim_product_scd2", "scd2", "core-dwh", ("sku_catalog_sync",), 9, 330_000),
    ("dim_store_scd2", "scd2", "core-dwh", ("ingest_store_master",), 2, 2_450),
    ("dim_customer_scd2", "scd2", "core-dwh",
     ("sync_loyalty_members", "ingest_loyalty_events"), 14, 3_800_000),
    ("dim_supplier_scd2", "scd2", "core-dwh", ("ingest_erp_suppliers",), 2, 11_800),
    ("dim_price_scd2", "scd2", "core-dwh", ("ingest_price_list", "dim_product_scd2"), 7, 780_000),
    ("fact_sales", "fact", "core-dwh",
     ("stg_sales_cleansed", "dim_product_scd2", "dim_store_scd2", "dim_customer_scd2"),
     22, 5_050_000),
    ("fact_inventory_daily", "fact", "supply-chain",
     ("stg_inventory_snapshot", "dim_product_scd2", "dim_store_scd2"), 14, 3_300_000),
    ("fact_promotions", "fact", "merchandising",
     ("promo_calendar_sync", "dim_product_scd2"), 6, 42_000),
    ("fact_retailer_sellout", "fact", "retail-partnerships",
     ("stg_retailer_sellout", "dim_product_scd2"), 12, 3_200_000),
    ("fact_purchase_orders", "fact", "supply-chain",
     ("ingest_erp_orders", "dim_supplier_scd2", "dim_product_scd2"), 9, 620_000),
    ("fact_loyalty_activity", "fact", "crm",
     ("ingest_loyalty_events", "dim_customer_scd2"), 11, 1_250_000),
    ("mart_category_performance", "mart", "commercial-analytics",
     ("fact_sales", "dim_price_scd2"), 10, 5_050_000),
    ("mart_promo_uplift", "mart", "commercial-analytics",
     ("fact_promotions", "fact_sales"), 12, 5_050_000),
    ("mart_retailer_scorecard", "mart", "retail-partnerships",
     ("fact_retailer_sellout",), 6, 3_200_000),
    ("mart_stock_cover", "mart", "supply-chain",
     ("fact_inventory_daily", "fact_sales"), 9, 3_300_000),
    ("mart_customer_segments", "mart", "crm", ("fact_loyalty_activity",), 8, 1_250_000),
    ("agg_sales_daily_store", "mart", "finance", ("fact_sales",), 5, 5_050_000),
    ("export_replenishment_forecast", "export", "supply-chain",
     ("mart_stock_cover", "fact_purchase_orders"), 7, 180_000),
    ("export_retailer_portal", "export", "retail-partnerships",
     ("mart_retailer_scorecard",), 4, 160_000),
    ("export_finance_gl", "export", "finance", ("agg_sales_daily_store",), 3, 95_000),
)  # fmt: skip
_FLAKY: Final = frozenset({"sync_loyalty_members", "feed_megasave_sellout"})
_COUNT_STATS: Final = {
    "sku_catalog_sync": "sku_count",
    "dim_product_scd2": "sku_count",
    "promo_calendar_sync": "promo_count",
    "fact_promotions": "promo_count",
}
# Sales volumes follow the week: busier Fridays and weekends.
_SEASONAL: Final = frozenset(
    {"ingest_pos_sales", "ingest_pos_returns", "ingest_ecom_orders", *_SELLOUT_FEEDS}
    | {"stg_sales_cleansed", "stg_retailer_sellout", "fact_sales", "fact_retailer_sellout"}
)
_WEEKDAY_VOLUME: Final = (0.92, 0.9, 0.94, 0.98, 1.12, 1.3, 1.22)  # Monday first
_DQ_KINDS: Final = frozenset({"ingest", "feed", "staging", "fact"})


def _catalogue() -> Iterator[tuple[str, str, str, tuple[str, ...], float, int, str | None]]:
    for name, kind, team, upstream, minutes, rows in _SOURCES:
        yield name, kind, team, upstream, minutes, rows, None
    for retailer, (minutes, rows) in _SELLOUT.items():
        yield f"feed_{retailer}_sellout", "feed", "retail-partnerships", (), minutes, rows, retailer
    for retailer, (minutes, rows) in _STOCK.items():
        yield f"feed_{retailer}_stock", "feed", "retail-partnerships", (), minutes, rows, retailer
    for name, kind, team, upstream, minutes, rows in _MODEL:
        yield name, kind, team, upstream, minutes, rows, None


def build_estate(seed: int) -> Estate:
    """The pipelines, with durations, volumes and failure rates drawn around their typical
    values (a different seed gives a different-looking platform of the same shape)."""
    rng = random.Random(f"estate/{seed}")
    pipelines: list[Pipeline] = []
    seen: set[str] = set()
    for name, kind, team, upstream, minutes, rows, retailer in _catalogue():
        missing = [u for u in upstream if u not in seen]
        if missing:
            raise ValueError(f"{name}: upstream {missing} must be listed before it")
        seen.add(name)
        pipelines.append(
            Pipeline(
                name=name,
                kind=kind,
                team=team,
                upstream=upstream,
                duration_s=minutes * 60 * rng.uniform(0.8, 1.25),
                rows=round(rows * rng.uniform(0.75, 1.3)),
                # A batch is green only if all ~40 processes succeed: at 1–3 % each most
                # nights would be red and the planted stories would drown in the noise.
                fail_p=rng.uniform(0.08, 0.12) if name in _FLAKY else rng.uniform(0.001, 0.006),
                retailer=retailer,
                count_stat=_COUNT_STATS.get(name),
            )
        )
    return Estate(seed, tuple(pipelines))


# -- what goes wrong -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Twist:
    """A defect planted in one run of the history."""

    error: str | None = None  # the run fails with this message
    dq_rate: float | None = None  # share of rows read that fail data-quality checks
    volume: float = 1.0  # multiplier on the rows read
    succeed: bool = False  # no chance failure (keeps a planted failure streak exact)


_NO_TWIST: Final = Twist()

# Messages may name {name}, {date} (the data date), {file} (a feed's file).
_ERRORS: Final = {
    "ingest": (
        'psycopg.OperationalError: connection to server at "src-replica-02" (10.20.4.17), '
        "port 5432 failed: timeout expired",
        "botocore.exceptions.ClientError: An error occurred (SlowDown) when calling the "
        "GetObject operation: Please reduce your request rate.",
        "SourceIncomplete: expected 24 hourly partitions for {date}, found 21",
    ),
    "feed": (
        "FileNotFoundError: no file matching {file} on the retailer SFTP after 3 attempts",
        "SchemaMismatch: column 'ean13' missing from {file} (expected 14 columns, got 13)",
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 2231 of {file}",
    ),
    "transform": (
        "ExecutorLostFailure: executor 9 exited: container killed on exceeding memory limits "
        "(exit code 137)",
        "MERGE INTO dwh.{name} failed: multiple source rows matched the same target row",
        "LockTimeout: could not obtain lock on dwh.{name} within 600 s; retry budget exhausted",
    ),
    "export": (
        "HTTPError: 503 Service Unavailable from the partner upload API after 5 retries",
        "SFTP upload of {name}_{date}.csv failed: remote disk quota exceeded",
    ),
}
_FLAKY_ERRORS: Final = {
    "sync_loyalty_members": "HTTPError: 429 Too Many Requests from the loyalty API "
    "(retry budget exhausted at page 37 of 52)",
    "feed_megasave_sellout": "TimeoutError: SFTP read of {file} stalled for 300 s",
}
# Source systems whose outage fails their extract and everything downstream of it.
_OUTAGES: Final = (
    ("ingest_pos_sales", 'psycopg.OperationalError: connection to server at "pos-db-replica-02" '
     "failed: FATAL: the database system is in recovery mode"),
    ("ingest_wms_inventory", "HTTPError: 502 Bad Gateway from the WMS extract API "
     "(41 of 64 warehouse pages failed)"),
    ("sku_catalog_sync", "PIM catalogue snapshot for {date} was not published by 02:30"),
    ("ingest_erp_orders", "ORA-12170: TNS:Connect timeout occurred (erp-prod-db01:1521)"),
    ("ingest_loyalty_events", "OffsetOutOfRange: topic loyalty.events partition 3: offsets "
     "expired before they were read (retention 24 h)"),
)  # fmt: skip
_BREAKABLE: Final = ("fact_promotions", "dim_store_scd2", "mart_promo_uplift", "fact_sales")


def plan_defects(
    estate: Estate, seed: int, today: date, days: int
) -> dict[tuple[str, int], dict[str, Twist]]:
    """The story of the history, keyed by (env, days ago) then pipeline: what to look at."""
    rng = random.Random(f"defects/{seed}/{today.isoformat()}")
    twists: dict[tuple[str, int], dict[str, Twist]] = {}
    names = [p.name for p in estate.pipelines]

    def plant(env: str, ago: int, name: str, twist: Twist) -> None:
        if 1 <= ago <= days and name in names:
            twists.setdefault((env, ago), {}).setdefault(name, twist)  # first story wins

    # A pipeline broken since the night before last: its last two prod runs failed.
    broken = rng.choice(_BREAKABLE)
    error = 'IntegrityError: duplicate key value violates unique constraint "{name}_pkey" '
    for ago in (1, 2):
        plant("prod", ago, broken, Twist(error=error + "(business key repeated in {date} source)"))
    plant("prod", 3, broken, Twist(succeed=True))

    # One retailer's sell-out file has shrunk for the last two nights (stores missing).
    shrinking = rng.choice(_SELLOUT_FEEDS)
    factor = rng.uniform(0.3, 0.45)
    for ago in range(1, 3):
        plant("prod", ago, shrinking, Twist(volume=factor * rng.uniform(0.95, 1.05)))

    # Outage nights: a source system is down; its extract and everything downstream fail.
    older = list(range(3, days + 1))
    for ago in rng.sample(older, min(3, len(older))):
        root, message = rng.choice(_OUTAGES)
        plant("prod", ago, root, Twist(error=message))
        for name in estate.downstream(root):
            plant("prod", ago, name, Twist(error=f"upstream {root} failed: no input for {{date}}"))

    # A bad deploy to test: the core-dwh jobs cannot import their new shared library.
    if days >= 2:
        ago = rng.randint(2, days)
        for p in estate.pipelines:
            if p.team == "core-dwh" and p.kind in ("scd2", "staging"):
                error = "ModuleNotFoundError: No module named 'retail_common.scd2_v2'"
                plant("test", ago, p.name, Twist(error=error))

    # Data-quality spikes: a bad file or a broken source column, above the 1 % warning.
    dq_able = [p.name for p in estate.pipelines if p.kind in _DQ_KINDS]
    for _ in range(max(2, days // 4)):
        env = "prod" if rng.random() < 0.75 else "test"
        spike = Twist(dq_rate=rng.uniform(0.015, 0.09))
        plant(env, rng.randint(1, days), rng.choice(dq_able), spike)
    return twists


# -- one batch -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlannedRun:
    pipeline: Pipeline
    start_s: int  # seconds after the batch start
    end_s: int  # always after start_s
    result: Report  # the terminal report's fields: status, rows, custom_stats, error_message


def plan_batch(
    estate: Estate,
    env: EnvProfile,
    data_date: date,
    rng: random.Random,
    twists: Mapping[str, Twist],
) -> list[PlannedRun]:
    """Every pipeline's run in one batch: roots start staggered, the others shortly after
    their last upstream ends (a failed upstream does not hold them back: the scheduler runs
    them on yesterday's data, which is what many platforms do)."""
    ends: dict[str, int] = {}
    plan: list[PlannedRun] = []
    for p in estate.pipelines:
        twist = twists.get(p.name, _NO_TWIST)
        ready = max((ends[u] for u in p.upstream), default=None)
        # Roots start as the scheduler releases them; the rest wait for a poll and a worker.
        start = rng.uniform(0, 600) if ready is None else ready + rng.uniform(30, 300)
        result, work = _result(p, env, data_date, rng, twist)
        duration = p.duration_s * env.duration * work * rng.lognormvariate(0, 0.25)
        start_s = round(start)
        end_s = start_s + max(5, round(duration))
        ends[p.name] = end_s
        plan.append(PlannedRun(p, start_s, end_s, result))
    return plan


def _result(
    p: Pipeline, env: EnvProfile, data_date: date, rng: random.Random, twist: Twist
) -> tuple[Report, float]:
    """A run's outcome, and how much of a full run's work it did (scales its duration)."""
    season = _WEEKDAY_VOLUME[data_date.weekday()] if p.name in _SEASONAL else 1.0
    volume = p.rows * env.volume * season * rng.lognormvariate(0, 0.06) * twist.volume
    rows = max(1, round(volume))
    work = twist.volume**0.7
    chance_failure = not twist.succeed and rng.random() < p.fail_p * env.failure
    if twist.error is not None or chance_failure:
        template = twist.error or _FLAKY_ERRORS.get(p.name) or rng.choice(_error_kind(p))
        message = template.format(name=p.name, date=data_date.isoformat(), file=_file(p, data_date))
        result: Report = {
            "status": "FAILED",
            "rows_read": round(rows * rng.uniform(0.0, 0.6)),
            "rows_written": 0,
            "error_message": message,
        }
        return result, work * rng.uniform(0.05, 0.6)

    dq_rate = twist.dq_rate if twist.dq_rate is not None else _baseline_dq(p, rng)
    bad = round(rows * dq_rate)
    stats: dict[str, Any] = {}
    result = {"status": "SUCCESS", "rows_read": rows}
    if p.kind in ("ingest", "feed"):
        result["rows_invalid"] = bad  # rejected at load
        written = rows - bad
    elif p.kind == "scd2":
        new = round(rows * rng.uniform(0.001, 0.006))
        changed = round(rows * rng.uniform(0.004, 0.02))
        stats.update(scd2_new=new, scd2_changed=changed, scd2_unchanged=rows - new - changed)
        written = new + changed
    elif p.kind == "staging":
        written = round(rows * rng.uniform(0.985, 0.999))  # duplicates dropped
    elif p.kind == "mart":
        written = round(rows * rng.uniform(0.02, 0.06))  # aggregated
    else:
        written = rows
    if p.kind in ("staging", "fact") and bad:
        stats["dq_failed_rows"] = bad  # flagged by the checks, still loaded
    if p.kind == "feed":
        stats["source_file"] = _file(p, data_date)
    if p.count_stat == "sku_count":
        # The assortment grows slowly; a fixed origin keeps a day's count stable.
        grown = (data_date - date(2026, 1, 1)).days * 11
        stats["sku_count"] = max(1, 47_500 + grown + rng.randint(-40, 40))
    elif p.count_stat == "promo_count":
        stats["promo_count"] = (420 if data_date.weekday() >= 3 else 310) + rng.randint(-25, 25)
    result["rows_written"] = written
    if stats:
        result["custom_stats"] = stats
    return result, work


def _error_kind(p: Pipeline) -> tuple[str, ...]:
    if p.kind in ("ingest", "feed", "export"):
        return _ERRORS[p.kind]
    return _ERRORS["transform"]


def _baseline_dq(p: Pipeline, rng: random.Random) -> float:
    """Most nights a few rows fail checks, well under the 1 % warning line."""
    if p.kind not in _DQ_KINDS or rng.random() < 0.5:
        return 0.0
    return rng.uniform(0.0, 0.003)


def _file(p: Pipeline, data_date: date) -> str:
    if p.retailer is None:
        return f"{p.name}_{data_date:%Y%m%d}.csv"
    what = "STOCK" if p.name.endswith("_stock") else "SELLOUT"
    return f"{what}_{p.retailer.upper()}_{data_date:%Y%m%d}.csv"


def identity(p: Pipeline, batch_id: str, env: str) -> Report:
    """The fields a new run must carry."""
    return {"project": PROJECT, "pipeline": p.name, "batch_id": batch_id, "env": env}


def _report(run: PlannedRun, batch_id: str, env: str, t0: datetime) -> Report:
    return {
        "run_id": f"{batch_id}:{run.pipeline.name}",
        **identity(run.pipeline, batch_id, env),
        "started_at": t0 + timedelta(seconds=run.start_s),
        "ended_at": t0 + timedelta(seconds=run.end_s),
        **run.result,
        "labels": run.pipeline.labels,
    }


# -- history -------------------------------------------------------------------------------
def history(
    now: datetime, seed: int, days: int, estate: Estate | None = None
) -> Iterator[list[Report]]:
    """The completed nightly batches of the ``days`` days before ``now``'s (UTC) day, oldest
    first, one list of reports per batch. The same seed and day give the same reports."""
    estate = estate or build_estate(seed)
    today = now.astimezone(UTC).date()
    defects = plan_defects(estate, seed, today, days)
    for ago in range(days, 0, -1):
        day = today - timedelta(days=ago)
        for env in ENVS:
            if day.toordinal() % env.every_days:
                continue
            rng = random.Random(f"batch/{seed}/{env.name}/{day.isoformat()}")
            batch_id = f"{env.name}-{day:%Y%m%d}"
            t0 = datetime.combine(day, env.start, tzinfo=UTC) + timedelta(
                seconds=rng.randint(0, 240)
            )
            twists = defects.get((env.name, ago), {})
            # A nightly batch loads the day before it.
            plan = plan_batch(estate, env, day - timedelta(days=1), rng, twists)
            yield [_report(run, batch_id, env.name, t0) for run in plan]


# -- the live batch ------------------------------------------------------------------------
LIVE_SPAN_S: Final = (20 * 60.0, 40 * 60.0)
_STAGES: Final = ("PENDING", "RUNNING")


@dataclass
class _Playback:
    batch_id: str
    anchor: datetime  # the real time the playback began
    start: datetime  # the batch's simulated start
    plan: list[PlannedRun]
    speed: float
    reported: dict[str, int] = field(default_factory=dict)  # run_id → 0 pending … 2 ended

    @property
    def done(self) -> bool:
        return len(self.reported) == len(self.plan) and all(s == 2 for s in self.reported.values())

    def advance(self, now: datetime) -> list[Report]:
        elapsed = max(0.0, (now - self.anchor).total_seconds() * self.speed)
        reports: list[Report] = []
        for run in self.plan:
            run_id = f"{self.batch_id}:{run.pipeline.name}"
            stage = 2 if elapsed >= run.end_s else 1 if elapsed >= run.start_s else 0
            before = self.reported.get(run_id, -1)
            if stage <= before:
                continue
            # Only what changed, as a pipeline's SDK would send it; the writer merges.
            report: Report = {"run_id": run_id}
            if before < 0:
                report |= identity(run.pipeline, self.batch_id, PROD.name)
                report["labels"] = run.pipeline.labels
            if stage < 2:
                report["status"] = _STAGES[stage]
            if stage >= 1 and before < 1:
                report["started_at"] = self.start + timedelta(seconds=run.start_s)
            if stage == 2:
                report["ended_at"] = self.start + timedelta(seconds=run.end_s)
                report |= run.result
            self.reported[run_id] = stage
            reports.append(report)
        return reports


class LiveBatch:
    """The prod batch running now, played back ``speed`` times faster than real time: all its
    processes are reported PENDING at its start, then RUNNING and SUCCESS/FAILED as simulated
    time (the batch start + real time elapsed × speed) reaches them. The step after a batch
    completes starts the next one.

    A batch spans 20–40 simulated minutes and is backdated so that it completes at the real
    time its playback ends: timestamps are never in the future, and the simulation never runs
    ahead of the clock however long the demo is left running.
    """

    def __init__(
        self, seed: int, started: datetime, speed: float, estate: Estate | None = None
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.seed = seed
        self.speed = speed
        self.estate = estate or build_estate(seed)
        self.batches = 0
        self._playback = self._begin(started, previous=None)

    @property
    def batch_id(self) -> str:
        return self._playback.batch_id

    def step(self, now: datetime) -> list[Report]:
        """The reports of what changed since the previous step."""
        if self._playback.done:
            self._playback = self._begin(now, previous=self._playback.batch_id)
        return self._playback.advance(now)

    def _begin(self, anchor: datetime, previous: str | None) -> _Playback:
        self.batches += 1
        anchor = anchor.astimezone(UTC)
        rng = random.Random(f"live/{self.seed}/{anchor.isoformat()}")
        plan = plan_batch(self.estate, PROD, anchor.date() - timedelta(days=1), rng, {})
        # Compress the nightly timings into a short batch; volumes stay those of a night.
        scale = rng.uniform(*LIVE_SPAN_S) / max(run.end_s for run in plan)
        plan = [_scaled(run, scale) for run in plan]
        span = max(run.end_s for run in plan)
        lead = span * (1 - 1 / self.speed) if self.speed > 1 else 0.0
        start = anchor.replace(microsecond=0) - timedelta(seconds=math.ceil(lead))
        batch_id = f"prod-{start:%Y%m%d-%H%M%S}"
        if batch_id == previous:
            batch_id += f"-{self.batches}"
        return _Playback(batch_id, anchor, start, plan, self.speed)


def _scaled(run: PlannedRun, scale: float) -> PlannedRun:
    start_s = round(run.start_s * scale)
    end_s = max(start_s + 1, round(run.end_s * scale))
    return PlannedRun(run.pipeline, start_s, end_s, run.result)
