"""How numbers, durations and times read on the pages, and the dashboard's URL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from starlette.datastructures import QueryParams

from flowdeck.errors import InvalidInput
from flowdeck.web.dashboard import Selection, parse_selection
from flowdeck.web.format import ago, flat_stats, hms, percent, readable, span, thousands, utc

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_numbers_and_durations() -> None:
    assert thousands(1234567) == "1,234,567"
    assert thousands(1234.6) == "1,235"
    assert thousands(None) == ""
    assert hms(0) == "00:00:00"
    assert hms(3725.4) == "01:02:05"
    assert hms(27 * 3600 + 61) == "27:01:01"  # hours run past a day
    assert hms(None) == ""
    assert percent(0.8333) == "83.3 %"
    assert percent(0.0123, 2) == "1.23 %"
    assert percent(None) == "–"


def test_times() -> None:
    plus2 = datetime(2026, 11, 23, 3, 4, 5, tzinfo=UTC).astimezone()
    assert utc(plus2) == "2026-11-23 03:04:05"
    assert ago(NOW - timedelta(seconds=14), NOW) == "14 s ago"
    assert ago(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert ago(NOW - timedelta(hours=5), NOW) == "5 h ago"
    assert ago(NOW - timedelta(days=3), NOW) == "3 d ago"
    assert ago(NOW + timedelta(seconds=3), NOW) == "0 s ago"


def test_custom_stats_read_as_rows() -> None:
    stats = {
        "sku_count": 48211,
        "stages": {"extract": {"seconds": 12.5}, "load": 3},
        "files": ["a.csv", "b.csv"],
        "parts": [{"n": 1}, 2],
        "ok": True,
    }
    assert flat_stats(stats) == [
        ("files", "a.csv, b.csv"),
        ("ok", "yes"),
        ("parts[0].n", "1"),
        ("parts[1]", "2"),
        ("sku_count", "48,211"),
        ("stages.extract.seconds", "12.50"),
        ("stages.load", "3"),
    ]
    assert readable(None) == "–"


def test_a_dashboard_url_round_trips() -> None:
    query = (
        "since=custom&from=2026-11-01&to=2026-11-20&env=prod&batch=42&sort=duration_s"
        "&order=desc&page=2&page_size=25&status=FAILED,RUNNING"
    )
    sel = parse_selection(QueryParams(query))
    assert sel == Selection(
        since="custom",
        date_from=date(2026, 11, 1),
        date_to=date(2026, 11, 20),
        env="prod",
        batch="42",
        sort="duration_s",
        order="desc",
        page=2,
        page_size=25,
        statuses=("RUNNING", "FAILED"),
    )
    assert parse_selection(QueryParams(sel.url().split("?", 1)[1])) == sel
    assert Selection().url() == "/batches"  # "/" may be the browser's home dashboard
    # Checkbox forms send the status once per box.
    boxes = parse_selection(QueryParams("status=FAILED&status=pending"))
    assert boxes.statuses == ("PENDING", "FAILED")
    start, end = sel.window(NOW)
    assert start == datetime(2026, 11, 1, tzinfo=UTC)
    assert end == datetime(2026, 11, 21, tzinfo=UTC)
    assert Selection(since="24h").window(NOW) == (NOW - timedelta(hours=24), None)


def test_sorting_a_column_again_flips_the_order() -> None:
    sel = Selection(sort="duration_s", order="desc", page=3)
    assert sel.sort_url("duration_s") == "/?sort=duration_s"
    assert sel.sort_url("pipeline") == "/batches"
    assert sel.sort_url("rows_read") == "/?sort=rows_read&order=desc"  # numbers: largest first


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=1y", "since: must be one of 24h, 7d, 30d, custom"),
        ("sort=colour", "sort: unknown column 'colour'"),
        ("order=up", "order: must be asc or desc"),
        ("page_size=10", "page_size: must be one of 25, 50, 100"),
        ("page=0", "page: must be 1 or more"),
        ("page=two", "page: must be a whole number; got 'two'"),
        ("status=DONE", "status: unknown status 'DONE'"),
        ("from=2026-13-01", "from: must be a date YYYY-MM-DD; got '2026-13-01'"),
        ("from=2026-11-20&to=2026-11-01", "to: must not be before from"),
    ],
)
def test_bad_dashboard_urls_name_the_parameter(query: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_selection(QueryParams(query))
    assert str(info.value) == message


def test_span_reads_a_threshold_in_its_best_unit() -> None:
    assert [span(s) for s in (1800, 3600, 4 * 3600, 5400, 36 * 3600, 2 * 86400, None)] == [
        "30 min",
        "1 h",
        "4 h",
        "1.5 h",
        "36 h",
        "2 d",
        "",
    ]
