"""The alerting API: CRUD of rules and channels, file-defined ones read-only, alerts,
acknowledgement, silences, notifications and the runbook (a page, and its Markdown)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flowdeck.alerts import runbook
from flowdeck.alerts.rules import KINDS
from tests.alerts.receivers import HttpReceiver, http_receiver
from tests.api.conftest import MakeClient, as_json, services_of
from tests.conftest import T0, FixedClock, run


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def api(make_client: MakeClient, tmp_path: Path, receiver: HttpReceiver) -> TestClient:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "channels:\n"
        f"  - {{name: file-hook, type: webhook, url: '{receiver.base}/file'}}\n"
        "rules:\n"
        "  - {name: file-rule, kind: stale, channels: [file-hook]}\n"
    )
    return make_client(alerts_file=str(path), alert_tick_seconds=3600)


def hook(receiver: HttpReceiver, name: str = "hook") -> dict[str, object]:
    return {"name": name, "type": "webhook", "url": f"{receiver.base}/{name}", "secret": "s"}


def test_rule_crud(api: TestClient, receiver: HttpReceiver) -> None:
    assert api.post("/api/v1/channels", json=hook(receiver)).status_code == 201
    rule = {
        "name": "two",
        "kind": "consecutive_failures",
        "channels": ["hook"],
        "selector": {"env": "prod"},
    }
    created = api.post("/api/v1/alert-rules", json=rule)
    assert created.status_code == 201, created.text
    assert created.json()["n"] == 2
    assert created.json()["source"] == "api"
    names = [(r["name"], r["source"]) for r in api.get("/api/v1/alert-rules").json()["items"]]
    assert names == [("file-rule", "file"), ("two", "api")]
    again = api.post("/api/v1/alert-rules", json=rule)
    assert again.status_code == 409
    assert again.json()["message"] == "rule 'two' exists; PUT /api/v1/alert-rules/two changes it"
    changed = api.put("/api/v1/alert-rules/two", json={**rule, "n": 3})
    assert changed.json()["n"] == 3
    assert api.get("/api/v1/alert-rules/two").json()["n"] == 3
    assert api.delete("/api/v1/alert-rules/two").status_code == 204
    gone = api.get("/api/v1/alert-rules/two")
    assert (gone.status_code, gone.json()["message"]) == (404, "alert rule 'two' not found")


def test_invalid_rules_get_422_naming_the_rule_and_field(api: TestClient) -> None:
    bad = api.post(
        "/api/v1/alert-rules",
        json={"name": "two", "kind": "consecutive_failures", "n": -1, "channels": ["nope"]},
    )
    assert bad.status_code == 422
    assert bad.json()["message"] == (
        "rule[two].channels[0]: no channel is named 'nope'; "
        "rule[two].n: must be a whole number from 1 to 1000"
    )
    assert bad.json()["detail"][1]["loc"] == "rule[two].n"
    assert api.get("/api/v1/alert-rules").json()["items"][-1]["name"] == "file-rule"
    not_object = api.post("/api/v1/alert-rules", json=[1])
    assert (not_object.status_code, not_object.json()["message"]) == (
        422,
        "rule: must be a JSON object",
    )
    renamed = api.put("/api/v1/alert-rules/file-rule", json={"name": "other", "kind": "stale"})
    assert (
        renamed.json()["message"]
        == "rule[file-rule].name: must be 'file-rule' (the name in the path)"
    )


def test_file_rules_and_channels_are_read_only(api: TestClient) -> None:
    put = api.put("/api/v1/alert-rules/file-rule", json={"kind": "stale"})
    assert put.status_code == 409
    assert (
        put.json()["message"] == "rule 'file-rule' is defined in the alerts file; change it there"
    )
    assert api.delete("/api/v1/alert-rules/file-rule").status_code == 409
    assert api.delete("/api/v1/channels/file-hook").status_code == 409
    created = api.post("/api/v1/alert-rules", json={"name": "file-rule", "kind": "stale"})
    assert created.status_code == 409


def test_channels_hide_secrets_show_health_and_refuse_deletion_in_use(
    api: TestClient, receiver: HttpReceiver
) -> None:
    api.post("/api/v1/channels", json=hook(receiver))
    (listed,) = [c for c in api.get("/api/v1/channels").json()["items"] if c["name"] == "hook"]
    assert listed["secret"] == "********"
    assert listed["health"]["failures_since_success"] == 0
    kept = api.put("/api/v1/channels/hook", json=listed | {"headers": {"X-Team": "ops"}})
    assert kept.status_code == 200, kept.text
    svc = services_of(api).alerts
    assert svc is not None
    assert svc.get_channel("hook").config["secret"] == "s"
    api.post("/api/v1/alert-rules", json={"name": "r", "kind": "stale", "channels": ["hook"]})
    in_use = api.delete("/api/v1/channels/hook")
    assert (in_use.status_code, in_use.json()["message"]) == (
        409,
        "channel 'hook' is used by rule(s) r",
    )
    bad = api.post("/api/v1/channels", json={"name": "x", "type": "pager"})
    assert bad.json()["message"] == (
        "channel[x].type: must be one of webhook, slack, email, pagerduty, opsgenie, teams"
    )


def test_send_a_test_notification(api: TestClient, receiver: HttpReceiver) -> None:
    api.post("/api/v1/channels", json=hook(receiver))
    sent = api.post("/api/v1/channels/hook/test")
    assert sent.status_code == 200, sent.text
    assert sent.json()["ok"] is True
    (got,) = receiver.wait_for(1, "/hook")
    assert got.json()["test"] is True
    receiver.failures = [500]
    failed = api.post("/api/v1/channels/hook/test")
    assert failed.status_code == 502
    assert failed.json()["delivery"]["error"].startswith("HTTP 500")
    detail = api.get(f"/api/v1/notifications/{failed.json()['notification']}").json()
    assert detail["status"] == "failed"
    assert [d["ok"] for d in detail["deliveries"]] == [False]
    health = api.get("/api/v1/channels/hook").json()["health"]
    assert health["failures_since_success"] == 1


def test_alerts_acknowledge_silences_and_notification_centre(
    api: TestClient, clock: FixedClock, receiver: HttpReceiver
) -> None:
    api.post("/api/v1/channels", json=hook(receiver))
    api.post(
        "/api/v1/alert-rules",
        json={
            "name": "two",
            "kind": "consecutive_failures",
            "channels": ["hook"],
            "group_wait": "0s",
        },
    )
    svc = services_of(api).alerts
    assert svc is not None
    for batch in ("b1", "b2"):
        report = run(
            batch_id=batch, status="FAILED", run_id=f"{batch}:x", labels={"retailer": "acme"}
        )
        assert api.post("/api/v1/runs", json=as_json(report)).status_code == 200
        svc.step([])  # the bus delivers too; stepping here keeps the test deterministic
    from tests.alerts.receivers import wait_until

    wait_until(lambda: api.get("/api/v1/alerts?rule=two").json()["items"], 10, "the alert")
    (alert,) = api.get("/api/v1/alerts?rule=two").json()["items"]
    assert alert["state"] == "firing"
    assert alert["labels"]["retailer"] == "acme"
    fp = alert["fingerprint"]
    missing_by = api.post(f"/api/v1/alerts/{fp}/acknowledge", json={"comment": "x"})
    assert missing_by.json()["message"] == "acknowledge.by: is required: who acknowledges"
    acked = api.post(f"/api/v1/alerts/{fp}/acknowledge", json={"by": "ana", "comment": "on it"})
    assert acked.json()["acknowledged_by"] == "ana"
    detail = api.get(f"/api/v1/alerts/{fp}").json()
    assert [h["to"] for h in detail["history"]] == ["firing", "firing"]
    assert detail["history"][0]["note"] == "acknowledged by ana: on it"

    bad = api.post(
        "/api/v1/silences", json={"matchers": ["retailer"], "author": "", "duration": "x"}
    )
    assert bad.status_code == 422
    assert bad.json()["message"] == (
        "silence.matchers[0]: 'retailer' is not a matcher: write label=value, label!=value, "
        "label=~regex or label!~regex; silence.duration: must be a duration such as 30s, 5m, "
        "4h or 1d; silence.author: is required; silence.comment: is required"
    )
    made = api.post(
        "/api/v1/silences",
        json={
            "matchers": ["retailer=acme"],
            "duration": "2h",
            "author": "ana",
            "comment": "supplier maintenance",
        },
    )
    assert made.status_code == 201
    assert made.json()["ends_at"] == "2026-11-21T03:00:00Z"
    assert api.get("/api/v1/alerts?rule=two").json()["items"][0]["silenced_by"] == made.json()["id"]
    expired = api.delete(f"/api/v1/silences/{made.json()['id']}")
    assert expired.json()["state"] == "expired"
    assert api.get("/api/v1/silences").json()["items"] == []
    assert len(api.get("/api/v1/silences?all=true").json()["items"]) == 1

    centre = api.get("/api/v1/notifications?channel=app").json()
    assert centre["unread"] >= 1
    assert "[FIRING:1] two (error)" in [n["title"] for n in centre["items"]]
    marked = api.post("/api/v1/notifications/read", json={})
    assert marked.json()["marked"] >= 1
    assert api.get("/api/v1/notifications").json()["unread"] == 0
    assert api.get("/api/v1/alerts?state=bogus").json()["message"] == (
        "state: must be one of pending, firing, resolved, inactive, got 'bogus'"
    )
    # (the file's stale rule fired too: these runs are a day old by the test clock)
    history = api.get("/api/v1/alert-history").json()["items"]
    assert {h["rule"] for h in history} == {"two", "file-rule"}


def test_the_runbook_is_a_page_with_an_anchor_per_rule_kind(api: TestClient) -> None:
    page = api.get("/runbook")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<h1 id="flowdeck-alert-runbook">flowdeck alert runbook</h1>' in page.text
    assert '<a href="/runbook" aria-current="page">Runbook</a>' in page.text  # the layout
    # Notifications link to <runbook>#<kind>: each kind's heading carries that id.
    for kind in KINDS:
        assert f'<h2 id="{kind}">{kind}</h2>' in page.text
        assert f'<a href="#{kind}">{kind}</a>' in page.text  # the contents
    assert '<h2 id="a-channel-that-keeps-failing">' in page.text
    assert '<pre><code class="language-bash">curl -s -X POST' in page.text
    assert "<li><strong>Is it known?</strong>" in page.text


def test_the_runbook_markdown_is_still_served(api: TestClient) -> None:
    raw = api.get("/runbook.md")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "text/markdown; charset=utf-8"
    assert raw.text.startswith("# flowdeck alert runbook\n")
    for kind in KINDS:
        assert f"\n## {kind}\n" in raw.text
    assert "/runbook.md" in api.get("/openapi.json").json()["paths"]


def test_runbook_rendering_escapes_html_and_numbers_repeated_headings() -> None:
    rendered = runbook.render(
        "# A title\n\n## Check <b>this</b>\n\n## Check this\n\n<script>x</script>\n"
    )
    assert [h.anchor for h in rendered.headings] == ["a-title", "check-bthisb", "check-this"]
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;x&lt;/script&gt;" in rendered.html
    again = runbook.render("## stale\n\n## stale\n")
    assert [h.anchor for h in again.headings] == ["stale", "stale-1"]


def test_a_bad_alerts_file_stops_the_start(make_client: MakeClient, tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules: [{name: x, kind: stale, max_age: never}]\n")
    with pytest.raises(Exception, match=r"rule\[x\].max_age: must be a duration"):
        make_client(alerts_file=str(path))
    _ = T0
