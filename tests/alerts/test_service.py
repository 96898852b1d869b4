"""Alerting on both store backends: runs written through the writer, the engine stepped by
hand with a fixed clock, notifications delivered to a real HTTP receiver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flowdeck.alerts.dispatch import Silence
from flowdeck.alerts.matchers import parse_matcher
from flowdeck.alerts.notify import sign
from tests.alerts.conftest import Rig
from tests.conftest import T0, run


def attempt(
    rig: Rig,
    batch: str,
    status: str,
    pipeline: str = "load_sales",
    step: timedelta = timedelta(minutes=1),
    **fields: Any,
) -> None:
    """One run of ``pipeline`` in batch ``batch``, ``step`` after the one before."""
    rig.clock.now += step
    started = rig.clock.now - timedelta(seconds=30)
    rig.report(
        run(
            pipeline,
            batch,
            status=status,
            started_at=started,
            ended_at=started + timedelta(seconds=20),
            labels=fields.pop("labels", {"retailer": "acme"}),
            **fields,
        )
    )


def test_two_failures_fire_once_with_a_signed_webhook(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="two-failures", kind="consecutive_failures", remediation="Rerun the load.")
    attempt(rig, "b1", "FAILED", error_message="disk full")
    rig.deliver()
    assert rig.receiver.requests == []
    attempt(rig, "b2", "FAILED", error_message="disk full")
    attempt(rig, "b3", "FAILED", error_message="disk full")
    rig.deliver()
    (got,) = rig.receiver.wait_for(1, "/hook")
    timestamp = got.headers["x-flowdeck-timestamp"]
    assert got.headers["x-flowdeck-signature"] == sign("s3cret", timestamp, got.body)
    body = got.json()
    assert body["status"] == "firing"
    assert body["rule"]["name"] == "two-failures"
    assert body["rule"]["remediation"] == "Rerun the load."
    assert body["rule"]["runbook_url"] == "http://flowdeck.test/runbook#consecutive_failures"
    (alert,) = body["alerts"]
    assert alert["summary"] == "load_sales (prod) failed 2 times in a row: disk full"
    assert alert["labels"]["retailer"] == "acme"
    assert alert["url"] == f"http://flowdeck.test/alerts/{alert['fingerprint']}"
    (current,) = rig.alerts.db.alerts(states=("firing",))
    assert current.value == 3  # the third failure updated the value, without a new message
    history = rig.alerts.db.history(current.fingerprint)
    assert [(h["from"], h["to"]) for h in history] == [("inactive", "firing")]


def test_a_failure_then_a_successful_retry_within_for_pages_nobody(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="two-failures", kind="consecutive_failures", n=1, **{"for": "10m"})
    attempt(rig, "b1", "FAILED")
    (pending,) = rig.alerts.db.alerts(states=("pending",))
    attempt(rig, "b1", "SUCCESS")  # the retry: same run id, now a success
    rig.clock.now += timedelta(minutes=30)
    rig.tick()
    rig.deliver()
    assert rig.receiver.requests == []
    assert rig.alerts.db.alerts(states=("pending", "firing")) == []
    history = rig.alerts.db.history(pending.fingerprint)
    assert [(h["from"], h["to"]) for h in history] == [
        ("pending", "inactive"),
        ("inactive", "pending"),
    ]


def test_pending_fires_on_the_tick_once_for_has_passed(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="two-failures", kind="consecutive_failures", **{"for": "10m"})
    attempt(rig, "b1", "FAILED")
    attempt(rig, "b2", "FAILED")
    rig.clock.now += timedelta(minutes=5)
    rig.tick()
    rig.deliver()
    assert rig.receiver.requests == []
    rig.clock.now += timedelta(minutes=5)
    rig.tick()
    rig.deliver()
    assert len(rig.receiver.wait_for(1, "/hook")) == 1


def test_resolved_repeat_and_acknowledge(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="two-failures", kind="consecutive_failures", repeat_interval="1h")
    attempt(rig, "b1", "FAILED")
    attempt(rig, "b2", "FAILED")
    rig.deliver()
    rig.receiver.wait_for(1)
    rig.clock.now += timedelta(minutes=59)
    rig.tick()
    rig.deliver()
    assert len(rig.receiver.requests) == 1
    rig.clock.now += timedelta(minutes=2)
    rig.tick()
    rig.deliver()
    (_, repeat) = rig.receiver.wait_for(2)
    assert repeat.json()["repeat"] is True
    (alert,) = rig.alerts.db.alerts(states=("firing",))
    acked = rig.alerts.acknowledge(alert.fingerprint, "ana", "looking at it")
    assert acked.acknowledged_by == "ana"
    rig.clock.now += timedelta(hours=3)
    rig.tick()
    rig.deliver()
    assert len(rig.receiver.requests) == 2
    attempt(rig, "b3", "SUCCESS")
    rig.deliver()
    resolved = rig.receiver.wait_for(3)[2].json()
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["status"] == "resolved"
    notes = [h["note"] for h in rig.alerts.db.history(alert.fingerprint)]
    assert "acknowledged by ana: looking at it" in notes


def test_grouping_sends_one_message_for_alerts_of_one_group(rig: Rig) -> None:
    rig.webhook()
    rig.rule(
        name="two-failures", kind="consecutive_failures", group_by=["retailer"], group_wait="30s"
    )
    second = timedelta(seconds=1)
    for batch in ("b1", "b2"):
        attempt(rig, batch, "FAILED", "load_sales", second)
        attempt(rig, batch, "FAILED", "load_stock", second)
        attempt(rig, batch, "FAILED", "load_promo", second, labels={"retailer": "globex"})
    rig.deliver()
    assert rig.receiver.requests == []
    rig.clock.now += timedelta(seconds=30)
    rig.tick()
    rig.deliver()
    got = rig.receiver.wait_for(2)
    groups = sorted(
        (
            r.json()["group_labels"]["retailer"],
            sorted(a["labels"]["pipeline"] for a in r.json()["alerts"]),
        )
        for r in got
    )
    assert groups == [("acme", ["load_sales", "load_stock"]), ("globex", ["load_promo"])]


def test_a_silence_holds_messages_and_they_go_out_when_it_ends(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="two-failures", kind="consecutive_failures")
    now = rig.clock.now
    rig.alerts.add_silence(
        Silence(
            "s1",
            (parse_matcher("retailer=acme"),),
            now,
            now + timedelta(hours=1),
            "ana",
            "maintenance",
            now,
        )
    )
    attempt(rig, "b1", "FAILED")
    attempt(rig, "b2", "FAILED")
    rig.deliver()
    assert rig.receiver.requests == []
    (alert,) = rig.alerts.db.alerts(states=("firing",))
    assert rig.alerts.silenced_by(alert) == "s1"
    rig.clock.now = now + timedelta(hours=1)
    rig.tick()
    rig.deliver()
    assert len(rig.receiver.wait_for(1)) == 1


def test_retry_after_a_receiver_error_and_the_delivery_log(rig: Rig) -> None:
    rig.webhook(max_attempts=3)
    rig.rule(name="two-failures", kind="consecutive_failures")
    rig.receiver.failures = [500, 503]
    attempt(rig, "b1", "FAILED")
    attempt(rig, "b2", "FAILED")
    rig.deliver()
    (n,) = rig.alerts.db.notifications(channel="hook")
    assert (n.status, n.attempts) == ("pending", 1)
    assert n.last_error is not None and n.last_error.startswith("HTTP 500 from 127.0.0.1")
    assert n.next_attempt_at == rig.clock.now + timedelta(seconds=30)
    health = rig.alerts.db.channel_health()["hook"]
    assert health["failures_since_success"] == 1
    rig.deliver()  # not due yet
    assert rig.alerts.db.get_notification(n.id).attempts == 1
    rig.clock.now += timedelta(seconds=30)
    rig.deliver()
    assert rig.alerts.db.get_notification(n.id).next_attempt_at == rig.clock.now + timedelta(
        seconds=60
    )
    rig.clock.now += timedelta(seconds=60)
    rig.deliver()
    rig.receiver.wait_for(1)
    done = rig.alerts.db.get_notification(n.id)
    assert (done.status, done.attempts, done.last_error) == ("sent", 3, None)
    log = rig.alerts.db.deliveries(n.id)
    assert [(d.ok, d.status_code) for d in log] == [(False, 500), (False, 503), (True, 200)]
    assert rig.alerts.db.channel_health()["hook"]["failures_since_success"] == 0


def test_a_receiver_that_keeps_failing_gives_up_and_shows(rig: Rig) -> None:
    rig.webhook(max_attempts=2)
    rig.rule(name="two-failures", kind="consecutive_failures")
    rig.receiver.failures = [500] * 5
    attempt(rig, "b1", "FAILED")
    attempt(rig, "b2", "FAILED")
    rig.deliver()
    rig.clock.now += timedelta(minutes=5)
    rig.deliver()
    (n,) = rig.alerts.db.notifications(channel="hook")
    assert (n.status, n.attempts) == ("failed", 2)
    health = rig.alerts.db.channel_health()["hook"]
    assert health["failed"] == 1
    assert health["failures_since_success"] == 2
    assert health["last_error"].startswith("HTTP 500")


def test_staleness_on_the_tick_and_a_success_resolves_it(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="stale", kind="stale", max_age="4h")
    attempt(rig, "b1", "SUCCESS")
    rig.clock.now += timedelta(hours=3)
    rig.tick()
    assert rig.alerts.db.alerts() == []
    rig.clock.now += timedelta(hours=2)
    rig.tick()
    rig.deliver()
    (fired,) = rig.receiver.wait_for(1)
    assert "has not succeeded for" in fired.json()["alerts"][0]["summary"]
    attempt(rig, "b2", "SUCCESS")
    rig.deliver()
    assert rig.receiver.wait_for(2)[1].json()["status"] == "resolved"


def test_volume_drop_dq_and_batch_health(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="sku-drop", kind="volume_drop", field="sku_count", window=3)
    rig.rule(name="dq", kind="dq_error_rate", threshold=1)
    rig.rule(name="red-batch", kind="batch_health")
    for i, skus in enumerate([1000, 1010, 990, 1000]):
        attempt(rig, f"b{i}", "SUCCESS", custom_stats={"sku_count": skus})
    attempt(rig, "b9", "SUCCESS", custom_stats={"sku_count": 500}, rows_read=1000, rows_invalid=50)
    rig.deliver()
    got = {r.json()["rule"]["name"]: r.json() for r in rig.receiver.wait_for(2)}
    assert set(got) == {"sku-drop", "dq"}
    assert "sku_count 500 is 50% below" in got["sku-drop"]["alerts"][0]["summary"]
    rig.report(run("load_other", "b9", status="FAILED", started_at=T0, ended_at=T0))
    rig.deliver()
    red = rig.receiver.wait_for(3)[2].json()
    assert red["rule"]["name"] == "red-batch"
    assert red["alerts"][0]["labels"]["batch_id"] == "b9"


def test_a_deleted_rule_takes_its_alerts_with_it(rig: Rig) -> None:
    rig.webhook()
    rig.rule(name="two-failures", kind="consecutive_failures")
    attempt(rig, "b1", "FAILED")
    attempt(rig, "b2", "FAILED")
    assert len(rig.alerts.db.alerts()) == 1
    rig.alerts.delete_rule("two-failures")
    assert rig.alerts.db.alerts() == []
    assert rig.alerts.db.history() != []
