"""Alerting: how soon a failure reaches a webhook, and what a tick over many pipelines costs.

1. Commit to webhook: a real server process with a webhook channel and a rule that fires
   on the first failure (group_wait 0s). Each sample posts one FAILED run of a new pipeline
   and waits for the webhook to receive its alert. Printed: the time from the POST's answer
   (which comes after the commit) to the webhook's receipt, and from sending the POST.
   Twice: samples 0.2 s apart (a failure after a quiet spell), and back to back (a failure
   among other commits: the engine evaluates commits at most every 0.1 s, so this one may
   wait for the rest of that gap). Target: p95 ≤ 1 s.
2. Tick: 10,000 pipelines (one run each, some stale, some running long) and 5 time-based
   rules, evaluated in this process with a fixed clock. Printed: the first tick (alerts
   fire and messages are queued) and a steady tick (nothing changes). Target: ≤ 1 s.

    .venv/bin/python bench/alert_latency.py --db duckdb [--samples 200] [--pipelines 10000]
    .venv/bin/python bench/alert_latency.py --db postgres --quick

Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from common import (
    Report,
    Server,
    base_parser,
    environment_banner,
    free_port,
    latency_summary,
    ms,
    open_sql_store,
    scratch_database,
)


@contextmanager
def receiver() -> Iterator[tuple[str, dict[str, float], threading.Condition]]:
    """A webhook receiver: pipeline name → perf_counter time its alert arrived."""
    seen: dict[str, float] = {}
    cond = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            at = time.perf_counter()
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            payload = orjson.loads(body)
            with cond:
                for alert in payload["alerts"]:
                    seen.setdefault(alert["labels"].get("pipeline", ""), at)
                cond.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen, cond
    finally:
        server.shutdown()
        server.server_close()


def post(base: str, report: dict[str, Any]) -> None:
    request = urllib.request.Request(
        base + "/api/v1/runs",
        data=orjson.dumps(report),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def commit_to_webhook(backend: str, admin_url: str, samples: int, spacing: float) -> None:
    apart = f"{spacing:g} s apart" if spacing else "back to back"
    report = Report(
        f"commit → webhook latency ({backend}, {samples} samples {apart}, group_wait 0s)"
    )
    with (
        scratch_database(backend, admin_url, "alerts") as url,
        receiver() as (hook, seen, cond),
        tempfile.TemporaryDirectory() as folder,
    ):
        alerts = Path(folder) / "alerts.yaml"
        alerts.write_text(
            "channels:\n"
            f"  - {{name: hook, type: webhook, url: '{hook}/in', secret: bench}}\n"
            "rules:\n"
            "  - {name: first-failure, kind: consecutive_failures, n: 1, group_wait: 0s, "
            "channels: [hook]}\n"
        )
        with Server(url, env={"FLOWDECK_ALERTS_FILE": str(alerts)}) as server:
            from_ack: list[float] = []
            from_send: list[float] = []
            lost = 0
            for i in range(samples + 5):
                time.sleep(spacing)
                pipeline = f"load_{i:05d}"
                now = datetime.now(UTC)
                run = {
                    "run_id": f"r{i}",
                    "pipeline": pipeline,
                    "batch_id": f"b{i}",
                    "env": "prod",
                    "status": "FAILED",
                    "started_at": (now - timedelta(seconds=5)).isoformat(),
                    "ended_at": now.isoformat(),
                    "error_message": "bench",
                }
                sent = time.perf_counter()
                post(server.base, run)
                acked = time.perf_counter()
                with cond:
                    arrived = cond.wait_for(lambda p=pipeline: p in seen, timeout=10)  # type: ignore[misc]
                if not arrived:
                    lost += 1
                    continue
                if i >= 5:  # the first few warm the server up
                    from_ack.append(seen[pipeline] - acked)
                    from_send.append(seen[pipeline] - sent)
            a, s = latency_summary(from_ack), latency_summary(from_send)
            report.line(
                "POST answered → webhook received p50 / p95", f"{ms(a['p50'])} / {ms(a['p95'])}"
            )
            report.line("… p99 / max", f"{ms(a['p99'])} / {ms(a['max'])}")
            report.line(
                "POST sent → webhook received p50 / p95", f"{ms(s['p50'])} / {ms(s['p95'])}"
            )
            report.line("alerts that never arrived (10 s)", str(lost))
            report.line("target", "p95 ≤ 1,000 ms")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def tick(backend: str, admin_url: str, pipelines: int) -> None:
    from flowdeck.alerts.service import AlertOptions, AlertService
    from flowdeck.ingest.writer import Writer

    report = Report(f"tick over {pipelines:,} pipelines × 5 rules ({backend})")
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    with scratch_database(backend, admin_url, "tick") as url:
        store = open_sql_store(url)
        store.migrate()
        clock = Clock(now)
        writer = Writer(store, clock=clock)
        writer.start()
        retailers = ("acme", "globex", "initech", "umbrella")
        reports = []
        for i in range(pipelines):
            age = timedelta(hours=5) if i % 10 == 0 else timedelta(minutes=30)
            started = now - age
            running = i % 20 == 1
            reports.append(
                {
                    "run_id": f"r{i}",
                    "pipeline": f"p{i:05d}",
                    "batch_id": f"b{i // 100}",
                    "env": "prod",
                    "status": "RUNNING" if running else "SUCCESS",
                    "started_at": started - (timedelta(hours=2) if running else timedelta(0)),
                    **({} if running else {"ended_at": started + timedelta(minutes=10)}),
                    "labels": {"retailer": retailers[i % len(retailers)]},
                }
            )
        t0 = time.perf_counter()
        for start in range(0, len(reports), 5_000):
            writer.submit(reports[start : start + 5_000]).result()
        writer.stop()
        report.line("loading the pipelines", f"{time.perf_counter() - t0:.1f} s")
        service = AlertService(store, clock=clock, options=AlertOptions())
        for rule in (
            {"name": "stale-4h", "kind": "stale", "max_age": "4h"},
            {
                "name": "stale-acme",
                "kind": "stale",
                "max_age": "1h",
                "selector": {"labels": {"retailer": "acme"}},
            },
            {"name": "stale-p1", "kind": "stale", "max_age": "2h", "selector": {"pipeline": "p1*"}},
            {"name": "running-1h", "kind": "long_running", "max_duration": "1h"},
            {"name": "running-3x", "kind": "long_running", "factor": 3},
        ):
            service.put_rule({**rule, "group_wait": "0s", "group_by": ["retailer"]})
        try:
            t0 = time.perf_counter()
            service.step(tick=True)
            first = time.perf_counter() - t0
            firing = len(service.db.alerts(states=("firing",), limit=100_000))
            report.line("first tick (alerts fire, messages queued)", ms(first * 1000))
            report.line("… alerts firing after it", f"{firing:,}")
            steady = []
            for _ in range(5):
                clock.now += timedelta(seconds=15)
                t0 = time.perf_counter()
                service.step(tick=True)
                steady.append(time.perf_counter() - t0)
            s = latency_summary(steady)
            report.line("steady tick p50 / max (5 ticks)", f"{ms(s['p50'])} / {ms(s['max'])}")
            report.line("target", "≤ 1,000 ms")
        finally:
            service.close()
            store.close()


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--samples", type=int, default=200, help="alerts to time (default 200)")
    parser.add_argument("--pipelines", type=int, default=10_000, help="pipelines for the tick")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.pipelines = min(args.samples, 20), min(args.pipelines, 1_000)
    environment_banner(args.db)
    commit_to_webhook(args.db, args.pg_admin, args.samples, 0.2)
    commit_to_webhook(args.db, args.pg_admin, args.samples, 0.0)
    tick(args.db, args.pg_admin, args.pipelines)


if __name__ == "__main__":
    main()
