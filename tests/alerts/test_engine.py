"""The pure engine and dispatcher, with the clock fixed by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowdeck.alerts import dispatch, engine
from flowdeck.alerts.dispatch import Silence
from flowdeck.alerts.engine import Alert, BatchFacts, Facts, PipelineFacts
from flowdeck.alerts.matchers import parse_matcher
from flowdeck.alerts.rules import Rule, parse_rule
from flowdeck.pipelines import PipelineState
from flowdeck.runs import RunRecord

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def rule(kind: str = "consecutive_failures", **fields: Any) -> Rule:
    return parse_rule(
        {"name": fields.pop("name", kind), "kind": kind, "group_wait": "0s", **fields}
    )


def state(
    pipeline: str = "load_sales",
    *,
    failures: int = 0,
    last_status: str = "SUCCESS",
    last_run_at: datetime = NOW - timedelta(hours=1),
    last_success_at: datetime | None = NOW - timedelta(hours=1),
    env: str = "prod",
) -> PipelineState:
    return PipelineState(
        "default",
        pipeline,
        env,
        10,
        f"{pipeline}:last",
        last_run_at,
        last_status,
        f"{pipeline}:ok" if last_success_at else None,
        last_success_at,
        last_success_at,
        failures,
    )


def record(run_id: str, **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "project": "default",
        "pipeline": "load_sales",
        "batch_id": "b",
        "env": "prod",
        "status": "SUCCESS",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return RunRecord(run_id=run_id, **values)


def facts(*pipelines: PipelineFacts) -> Facts:
    return Facts(pipelines=pipelines)


def one(r: Rule, f: Facts, now: datetime = NOW) -> engine.Observation:
    (obs,) = engine.evaluate(r, f, now)
    return obs


def test_consecutive_failures_needs_n_in_a_row() -> None:
    r = rule(n=2)
    assert not one(r, facts(PipelineFacts(state(failures=1)))).active
    obs = one(
        r, facts(PipelineFacts(state(failures=2), last_run=record("x", error_message="disk full")))
    )
    assert obs.active
    assert obs.value == 2
    assert obs.summary == "load_sales (prod) failed 2 times in a row: disk full"
    assert obs.labels["rule"] == "consecutive_failures"
    assert obs.labels["severity"] == "error"


def test_consecutive_failures_wording_for_one_and_for_none() -> None:
    r = rule(n=1)
    once = one(r, facts(PipelineFacts(state(failures=1))))
    assert (once.active, once.summary) == (True, "load_sales (prod) failed once")
    # What a resolved alert says once the pipeline succeeded again.
    none = one(r, facts(PipelineFacts(state(failures=0))))
    assert not none.active
    assert none.summary == "load_sales (prod) has not failed since its last success"


def test_selector_matches_project_env_glob_and_labels() -> None:
    r = rule(selector={"env": "prod", "pipeline": "load_*", "labels": ["retailer=~acme|globex"]})
    acme = PipelineFacts(state("load_sales", failures=3), labels={"retailer": "acme"})
    other = PipelineFacts(state("load_sales", failures=3), labels={"retailer": "initech"})
    wrong_env = PipelineFacts(
        state("load_sales", failures=3, env="dev"), labels={"retailer": "acme"}
    )
    wrong_name = PipelineFacts(state("export_sales", failures=3), labels={"retailer": "acme"})
    got = engine.evaluate(r, facts(acme, other, wrong_env, wrong_name), NOW)
    assert len(got) == 1
    assert got[0].labels["retailer"] == "acme"


def test_fingerprint_is_stable_and_ignores_run_labels() -> None:
    r = rule()
    a = one(r, facts(PipelineFacts(state(failures=2), labels={"team": "a"})))
    b = one(r, facts(PipelineFacts(state(failures=2), labels={"team": "b"})))
    assert a.fingerprint == b.fingerprint
    assert (
        a.fingerprint
        != one(rule(name="other"), facts(PipelineFacts(state(failures=2)))).fingerprint
    )


def test_stale_measures_from_the_last_success() -> None:
    r = rule("stale", max_age="4h")
    fresh = PipelineFacts(state(last_success_at=NOW - timedelta(hours=3, minutes=59)))
    old = PipelineFacts(state(last_success_at=NOW - timedelta(hours=4, minutes=1)))
    fresh_obs = one(r, facts(fresh))
    assert not fresh_obs.active
    # (what a resolved alert says: fresh again, not "has not succeeded for")
    assert fresh_obs.summary.startswith("load_sales (prod) last succeeded 4.0 h ago (")
    obs = one(r, facts(old))
    assert obs.active
    assert obs.summary.startswith("load_sales (prod) has not succeeded for 4.0 h")


def test_stale_fires_for_a_pipeline_that_never_succeeded_within_max_age_of_its_first_run() -> None:
    r = rule("stale", max_age="4h")
    never = state(
        last_success_at=None, last_status="FAILED", last_run_at=NOW - timedelta(minutes=5)
    )
    young = PipelineFacts(never, first_run_at=NOW - timedelta(hours=3))
    old = PipelineFacts(never, first_run_at=NOW - timedelta(hours=5))
    assert not one(r, facts(young)).active
    assert one(r, facts(old)).active
    assert "never succeeded" in one(r, facts(old)).summary


def test_volume_drop_against_the_trailing_average() -> None:
    r = rule("volume_drop", field="sku_count", drop_pct=30, window=3)
    history = [record(f"r{i}", custom_stats={"sku_count": 1000}) for i in range(5)]
    latest_ok = record("new", custom_stats={"sku_count": 710})
    latest_low = record("new", custom_stats={"sku_count": 690})
    assert not one(r, facts(PipelineFacts(state(), successes=[latest_ok, *history]))).active
    obs = one(r, facts(PipelineFacts(state(), successes=[latest_low, *history])))
    assert obs.active
    assert obs.value == 31.0
    assert obs.subject["run_id"] == "new"
    assert (
        "sku_count 690 is 31% below the average 1,000 of its previous 3 successful runs"
        in obs.summary
    )
    # A recovery above the average says so (its resolved alert shows this summary).
    latest_high = record("new", custom_stats={"sku_count": 1220})
    up = one(r, facts(PipelineFacts(state(), successes=[latest_high, *history])))
    assert not up.active
    assert "sku_count 1,220 is 22% above the average 1,000" in up.summary


def test_volume_drop_needs_history_and_reads_run_fields() -> None:
    r = rule("volume_drop", field="rows_written")
    short = [
        record("new", rows_written=1),
        record("a", rows_written=100),
        record("b", rows_written=100),
    ]
    assert not one(r, facts(PipelineFacts(state(), successes=short))).active
    enough = [*short, record("c", rows_written=100)]
    assert one(r, facts(PipelineFacts(state(), successes=enough))).active


def test_dq_error_rate_above_threshold() -> None:
    r = rule("dq_error_rate", threshold="1%")
    low = record("x", rows_read=1000, dq_errors=10)
    high = record("x", rows_read=1000, dq_errors=11)
    assert not one(r, facts(PipelineFacts(state(), last_run=low))).active
    obs = one(r, facts(PipelineFacts(state(), last_run=high)))
    assert obs.active
    assert obs.value == 1.1


def test_long_running_by_limit_and_by_p95() -> None:
    running = state(last_status="RUNNING", last_run_at=NOW - timedelta(minutes=50))
    assert not one(rule("long_running", max_duration="1h"), facts(PipelineFacts(running))).active
    assert one(rule("long_running", max_duration="45m"), facts(PipelineFacts(running))).active
    history = [record(f"r{i}", duration_s=600.0) for i in range(10)]
    by_p95 = rule("long_running", factor=3)
    assert one(by_p95, facts(PipelineFacts(running, successes=history))).active
    assert not one(by_p95, facts(PipelineFacts(running, successes=history[:4]))).active
    done = state(last_status="SUCCESS")
    assert not one(rule("long_running"), facts(PipelineFacts(done))).active


def test_batch_health_fires_on_red_and_resolves_when_superseded() -> None:
    r = rule("batch_health", selector={"env": "prod"})
    red = BatchFacts("default", "b1", "prod", "red", 10, 1, 9, NOW)
    dev = BatchFacts("default", "b2", "dev", "red", 10, 1, 9, NOW)
    (obs,) = engine.evaluate(r, Facts(batches=[red, dev]), NOW)
    assert obs.active
    assert obs.labels["batch_id"] == "b1"
    gone = replace(red, superseded_by="b3")
    assert not engine.evaluate(r, Facts(batches=[gone]), NOW)[0].active


def test_batch_health_waits_for_a_failure_or_the_end_of_a_running_batch() -> None:
    r = rule("batch_health")
    # 3 of 10 done, 7 still running, nothing failed: red by DESIGN's rule, but not news.
    running = BatchFacts("default", "b1", "prod", "red", 10, 0, 3, NOW, running_or_pending=7)
    assert not engine.evaluate(r, Facts(batches=[running]), NOW)[0].active
    failed = replace(running, failed=1, running_or_pending=6)
    assert engine.evaluate(r, Facts(batches=[failed]), NOW)[0].active


def walk(r: Rule, steps: list[tuple[int, bool]]) -> list[str]:
    """Feed (minute, active) observations; return the state after each."""
    alert: Alert | None = None
    out = []
    for minute, active in steps:
        f = facts(PipelineFacts(state(failures=2 if active else 0)))
        obs = one(r, f)
        t = engine.advance(alert, obs, r, NOW + timedelta(minutes=minute))
        if t is not None:
            alert = t.alert
        out.append(alert.state if alert is not None else "none")
    return out


def test_states_inactive_pending_firing_resolved() -> None:
    r = rule(**{"for": "10m"})
    assert walk(r, [(0, True), (5, True), (10, True), (20, False), (30, True)]) == [
        "pending",
        "pending",
        "firing",
        "resolved",
        "pending",
    ]


def test_a_retry_that_succeeds_within_for_never_fires() -> None:
    r = rule(**{"for": "15m"})
    assert walk(r, [(0, True), (14, False), (20, False)]) == ["pending", "inactive", "inactive"]


def test_for_zero_fires_at_once_and_promote_fires_a_pending_alert_on_time() -> None:
    assert walk(rule(), [(0, True)]) == ["firing"]
    r = rule(**{"for": "10m"})
    t = engine.advance(None, one(r, facts(PipelineFacts(state(failures=2)))), r, NOW)
    assert t is not None
    pending = t.alert
    assert engine.promote(pending, r, NOW + timedelta(minutes=9)).state == "pending"
    fired = engine.promote(pending, r, NOW + timedelta(minutes=10))
    assert (fired.state, fired.fired_at) == ("firing", NOW + timedelta(minutes=10))


def test_a_new_episode_counts_up_and_clears_acknowledgement() -> None:
    r = rule()
    first = engine.advance(None, one(r, facts(PipelineFacts(state(failures=2)))), r, NOW)
    assert first is not None
    acked = replace(first.alert, acknowledged_at=NOW, acknowledged_by="ana")
    ok = engine.advance(acked, one(r, facts(PipelineFacts(state()))), r, NOW + timedelta(minutes=1))
    assert ok is not None and ok.alert.state == "resolved"
    again = engine.advance(
        ok.alert, one(r, facts(PipelineFacts(state(failures=2)))), r, NOW + timedelta(minutes=2)
    )
    assert again is not None
    assert (again.alert.state, again.alert.episode, again.alert.acknowledged_by) == (
        "firing",
        2,
        None,
    )


# -- dispatch ------------------------------------------------------------------------------
def firing(r: Rule, pipeline: str, at: datetime = NOW, **labels: str) -> Alert:
    obs = one(r, facts(PipelineFacts(state(pipeline, failures=2), labels=labels)))
    t = engine.advance(None, obs, r, at)
    assert t is not None
    return t.alert


def test_grouping_within_group_wait() -> None:
    r = rule(group_wait="30s", group_by=["retailer"])
    a = firing(r, "load_a", retailer="acme")
    b = firing(r, "load_b", NOW + timedelta(seconds=20), retailer="acme")
    c = firing(r, "load_c", retailer="globex")
    rules = {r.name: r}
    early = dispatch.plan([a, b, c], rules, [], NOW + timedelta(seconds=29))
    assert early.outgoing == []
    assert early.next_due == NOW + timedelta(seconds=30)
    due = dispatch.plan([a, b, c], rules, [], NOW + timedelta(seconds=30))
    groups = {o.group_key: [x.labels["pipeline"] for x in o.alerts] for o in due.outgoing}
    assert groups == {
        "consecutive_failures|retailer=acme": ["load_a", "load_b"],
        "consecutive_failures|retailer=globex": ["load_c"],
    }


def notified(alert: Alert, at: datetime) -> Alert:
    return replace(alert, notified="firing", notified_at=at)


def test_repeat_interval_and_acknowledge() -> None:
    r = rule(repeat_interval="1h")
    a = notified(firing(r, "load_a"), NOW)
    rules = {r.name: r}
    assert dispatch.plan([a], rules, [], NOW + timedelta(minutes=59)).outgoing == []
    (out,) = dispatch.plan([a], rules, [], NOW + timedelta(hours=1)).outgoing
    assert out.repeat
    acked = replace(a, acknowledged_at=NOW, acknowledged_by="ana")
    assert dispatch.plan([acked], rules, [], NOW + timedelta(hours=5)).outgoing == []


def test_resolved_is_announced_only_after_firing_was() -> None:
    r = rule()
    rules = {r.name: r}
    told = replace(notified(firing(r, "load_a"), NOW), state="resolved", resolved_at=NOW)
    (out,) = dispatch.plan([told], rules, [], NOW).outgoing
    assert out.status == "resolved"
    never_told = replace(firing(r, "load_a"), state="resolved", resolved_at=NOW)
    assert dispatch.plan([never_told], rules, [], NOW).outgoing == []


def test_silences_hold_messages_until_they_end() -> None:
    r = rule()
    a = firing(r, "load_a", retailer="acme")
    silence = Silence(
        "s1",
        (parse_matcher("retailer=acme"),),
        NOW - timedelta(minutes=1),
        NOW + timedelta(hours=1),
        "ana",
        "maintenance",
        NOW,
    )
    rules = {r.name: r}
    assert dispatch.plan([a], rules, [silence], NOW).outgoing == []
    assert len(dispatch.plan([a], rules, [silence], NOW + timedelta(hours=1)).outgoing) == 1
    other = firing(r, "load_b", retailer="globex")
    assert len(dispatch.plan([other], rules, [silence], NOW).outgoing) == 1


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env!=prod", {"env": "prod"}, False),
        ("env=~pro.*", {"env": "prod"}, True),
        ("env=~pro", {"env": "prod"}, False),
        ("env!~dev|test", {"env": "prod"}, True),
        ("team=", {}, True),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected
