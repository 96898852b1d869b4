"""Screenshots of every dashboard page at 1440 px and 390 px wide, into docs/screenshots/.

Starts ``flowdeck demo`` (the simulated estate, fixed seed) on a free port, opens each page
in headless Chromium (Debian's, through Playwright) and saves full-page PNGs.

    .venv/bin/python scripts/screenshots.py [--base URL] [--out DIR] [--only NAME ...]

``--base`` photographs a server that is already running instead; ``--only`` takes the named
pages alone (``--only dashboards-manager``; a name ending in ``*`` is a prefix).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from flowdeck.web.chromium import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = {"desktop": (1440, 900), "mobile": (390, 844)}
# Rules for the alerting pages: the demo's failures, stale feeds and SKU drops fire them;
# the channel points at a port nobody listens on, so it shows as failing.
ALERTS_YAML = """\
channels:
  - {name: ops-hook, type: webhook, url: 'http://127.0.0.1:9/hook', max_attempts: 2}
rules:
  - name: two-failures
    kind: consecutive_failures
    group_wait: 0s
    channels: [ops-hook]
    remediation: Check the error of the last run, fix the input, then rerun the batch.
  - name: prod-stale
    kind: stale
    max_age: 36h
    group_wait: 0s
    severity: warning
    selector: {env: prod}
  - {name: sku-drop, kind: volume_drop, field: sku_count, group_wait: 0s, severity: warning}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str) -> Any:
    import json

    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@contextmanager
def demo_server() -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="flowdeck-screens-") as data:
        alerts = Path(data) / "alerts.yaml"
        alerts.write_text(ALERTS_YAML)
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("flowdeck")),
                "demo",
                "--port",
                str(port),
                "--data-dir",
                data,
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "FLOWDECK_ALERTS_FILE": str(alerts)},
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if get_json(f"{base}/api/v1/batches?since=30d")["items"]:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("flowdeck demo did not start")
                time.sleep(0.5)
            time.sleep(3)  # let the live batch move a little
            yield base
        finally:
            proc.terminate()
            proc.wait(30)


def pages(base: str) -> dict[str, str]:
    """Name → path of every page, with ids taken from the data."""
    batches = get_json(f"{base}/api/v1/batches?since=30d&env=prod")["items"]
    batch = batches[0]
    failed_run = None
    for candidate in batches:
        runs = get_json(
            f"{base}/api/v1/batches/{candidate['batch_id']}/runs?status=FAILED&page_size=25"
        )["items"]
        if runs:
            failed_run = runs[0]["run_id"]
            break
    some_run = get_json(f"{base}/api/v1/batches/{batch['batch_id']}/runs?page_size=25")["items"][0]
    dq_batch = next(
        (
            b
            for b in batches
            if get_json(f"{base}/api/v1/batches/{b['batch_id']}")["dq_warning_processes"]
        ),
        batch,
    )
    out = {
        "dashboard": "/",
        "dashboard-failed-filter": f"/?batch={batch['batch_id']}&status=FAILED,RUNNING",
        "run": f"/runs/{failed_run or some_run['run_id']}",
        "dq": f"/batches/{dq_batch['batch_id']}/dq",
        "trends-7d": "/trends",
        "trends-30d": "/trends?since=30d&env=prod",
        "notifications": "/notifications",
        "alerts": "/alerts",
        "rules": "/rules",
        "channels": "/channels",
        "sources": "/sources?env=prod&field=sku_count",
        "sources-retailer": "/sources?by=retailer&env=prod&field=sku_count",
        "explore": "/explore?metric=runs.duration_s&aggregation=p95&group_by=env&since=7d",
        "explore-runs-by-status": (
            "/explore?metric=runs.count&group_by=status&since=30d&step=1d&chart=bar"
        ),
        "dashboards": "/dashboards",
        "dashboards-data-ops": "/dashboards/data-ops",
        "dashboards-manager": "/dashboards/manager",
        # The streaming pipeline: the page at the moment the script gets to it (the spike
        # and recovery shots in docs/screenshots were taken by hand at those moments).
        "flows": "/flows",
        "live-pipeline": "/flows/market_signals",
        "slos": "/slos",
        "incidents": "/incidents",
        "review": "/review",
    }
    firing = get_json(f"{base}/api/v1/alerts?state=firing")["items"]
    if firing:
        out["alert"] = f"/alerts/{firing[0]['fingerprint']}"
    sources = get_json(f"{base}/api/v1/sources?env=prod&field=sku_count")["items"]
    counted = next((s for s in sources if s["latest_value"] is not None), None)
    if counted:
        out["source"] = f"/sources/{counted['pipeline']}?env=prod&field=sku_count"
    return out


def shoot(page: Page, url: str, path: Path) -> None:
    page.goto(url)
    charts = ("/trends", "/runs/", "/sources/", "/explore")
    page.wait_for_load_state("networkidle") if any(c in url for c in charts) else None
    if "/dashboards/" in url:
        page.wait_for_function("!document.querySelector('.widget-body[data-state=loading]')")
    page.wait_for_timeout(400)  # charts finish drawing
    page.screenshot(path=str(path), full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", help="a running flowdeck to photograph")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="just these pages")
    args = parser.parse_args()

    def wanted(name: str) -> bool:
        if not args.only:
            return True
        return any(name.startswith(o[:-1]) if o.endswith("*") else name == o for o in args.only)

    args.out.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def given() -> Iterator[str]:
        yield args.base

    with given() if args.base else demo_server() as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in WIDTHS.values():
                context = browser.new_context(
                    viewport={"width": width, "height": height}, device_scale_factor=1
                )
                page = context.new_page()
                for name, path in pages(base).items():
                    if not wanted(name):
                        continue
                    target = args.out / f"{name}-{width}.png"
                    shoot(page, base + path, target)
                    print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
                context.close()
        finally:
            browser.close()


if __name__ == "__main__":
    main()
