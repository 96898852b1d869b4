"""Rules, channels and the alerts file: every invalid input is refused naming the rule and
the field; good input round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.alerts.config import AlertsFileError, load_alerts_file
from flowdeck.alerts.matchers import format_duration, parse_duration
from flowdeck.alerts.rules import keep_secrets, parse_channel, parse_rule
from flowdeck.errors import InvalidInput


def problems(data: object, **kwargs: object) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        parse_rule(data, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_defaults_of_each_kind() -> None:
    r = parse_rule({"name": "f", "kind": "consecutive_failures"})
    assert (r.param("n"), r.severity, r.for_s, r.group_wait_s, r.repeat_interval_s) == (
        2,
        "error",
        0.0,
        30.0,
        14400.0,
    )
    assert parse_rule({"name": "s", "kind": "stale"}).param("max_age") == 4 * 3600
    v = parse_rule({"name": "v", "kind": "volume_drop"})
    assert (v.param("field"), v.param("drop_pct"), v.param("window")) == ("rows_written", 30.0, 7)
    assert parse_rule({"name": "d", "kind": "dq_error_rate"}).param("threshold") == 1.0
    assert parse_rule({"name": "l", "kind": "long_running"}).param("max_duration") == 7200
    only_factor = parse_rule({"name": "l", "kind": "long_running", "factor": 2})
    assert (only_factor.param("max_duration"), only_factor.param("factor")) == (None, 2.0)


def test_a_rule_round_trips_through_its_output() -> None:
    data = {
        "name": "acme-drop",
        "kind": "volume_drop",
        "description": "SKU counts of acme",
        "enabled": True,
        "selector": {
            "project": "retail",
            "env": "prod",
            "pipeline": "ingest_*",
            "labels": ["retailer=acme"],
        },
        "severity": "warning",
        "for": "15m",
        "group_by": ["retailer"],
        "group_wait": "1m",
        "repeat_interval": "1d",
        "channels": [],
        "runbook_url": "https://wiki.example.com/acme",
        "remediation": "Ask the supplier.",
        "field": "sku_count",
        "drop_pct": 25.0,
        "window": 5,
    }
    rule = parse_rule(data)
    assert rule.out() == data
    assert parse_rule(rule.out()) == rule


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "stale"}, ["rule.name: is required"]),
        (
            {"name": "x", "kind": "nope"},
            [
                "rule[x].kind: must be one of consecutive_failures, stale, volume_drop, "
                "dq_error_rate, batch_health, long_running, slo_burn_rate, incident"
            ],
        ),
        (
            {"name": "x", "kind": "consecutive_failures", "n": 0},
            ["rule[x].n: must be a whole number from 1 to 1000"],
        ),
        (
            {"name": "x", "kind": "consecutive_failures", "n": "two"},
            ["rule[x].n: must be a whole number"],
        ),
        (
            {"name": "x", "kind": "consecutive_failures", "max_age": "1h"},
            ["rule[x].max_age: is not a parameter of consecutive_failures rules"],
        ),
        ({"name": "x", "kind": "stale", "colour": "red"}, ["rule[x].colour: is not a known field"]),
        (
            {"name": "x", "kind": "stale", "max_age": "soon"},
            ["rule[x].max_age: must be a duration such as 30s, 5m, 4h or 1d"],
        ),
        ({"name": "x", "kind": "stale", "max_age": 0}, ["rule[x].max_age: must be longer than 0s"]),
        (
            {"name": "x", "kind": "stale", "severity": "panic"},
            ["rule[x].severity: must be one of critical, error, warning, info"],
        ),
        (
            {"name": "x", "kind": "volume_drop", "drop_pct": 0},
            ["rule[x].drop_pct: must be a number from 0.01 to 100"],
        ),
        (
            {"name": "x", "kind": "volume_drop", "field": "sku count"},
            [
                "rule[x].field: must be rows_written, rows_read, rows_inserted, rows_updated "
                "or a numeric custom_stats key (letters, digits and '_')"
            ],
        ),
        (
            {"name": "x", "kind": "dq_error_rate", "threshold": 101},
            ["rule[x].threshold: must be a number from 0 to 100"],
        ),
        (
            {"name": "x", "kind": "batch_health", "selector": {"pipeline": "a*"}},
            ["rule[x].selector.pipeline: does not apply to batch_health rules"],
        ),
        (
            {"name": "x", "kind": "stale", "selector": {"labels": ["retailer"]}},
            [
                "rule[x].selector.labels[0]: 'retailer' is not a matcher: write label=value, "
                "label!=value, label=~regex or label!~regex"
            ],
        ),
        (
            {"name": "x", "kind": "stale", "selector": {"labels": ["a=~("]}},
            [
                "rule[x].selector.labels[0]: '(' is not a regular expression: missing ), "
                "unterminated subpattern at position 0"
            ],
        ),
        (
            {"name": "x", "kind": "stale", "runbook_url": "wiki/page"},
            ["rule[x].runbook_url: must be an http:// or https:// URL"],
        ),
        (
            {"name": "bad name", "kind": "stale"},
            [
                "rule[bad name].name: must start with a letter or digit and use only letters, "
                "digits, '_', '.' or '-' (at most 100 characters)"
            ],
        ),
        (
            {"name": "x", "kind": "stale", "enabled": "yes"},
            ["rule[x].enabled: must be true or false"],
        ),
    ],
)
def test_invalid_rules_name_the_rule_and_the_field(
    data: dict[str, object], expected: list[str]
) -> None:
    assert problems(data) == expected


def test_unknown_channels_are_refused() -> None:
    got = problems(
        {"name": "x", "kind": "stale", "channels": ["ops", "nope"]}, channels={"ops"}.__contains__
    )
    assert got == ["rule[x].channels[1]: no channel is named 'nope'"]


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration(90) == 90
    assert parse_duration("1.5h") == 5400
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    with pytest.raises(ValueError, match="duration"):
        parse_duration("5 minutes")


def test_channels_validate_and_hide_their_secrets() -> None:
    email = parse_channel(
        {
            "name": "mail",
            "type": "email",
            "host": "smtp.example.com",
            "from": "flowdeck@example.com",
            "to": "ops@example.com",
            "username": "u",
            "password": "p",
        }
    )
    assert email.config["port"] == 587
    assert email.out()["password"] == "********"
    assert email.out(reveal=True)["password"] == "p"
    kept = parse_channel(keep_secrets(email.out(), email))
    assert kept.config["password"] == "p"
    with pytest.raises(InvalidInput) as info:
        parse_channel(
            {
                "name": "m",
                "type": "email",
                "host": "h",
                "from": "nobody",
                "to": ["x"],
                "tls": "maybe",
            }
        )
    assert [str(p) for p in info.value.problems] == [
        "channel[m].tls: must be one of starttls, ssl, none",
        "channel[m].from: must be an e-mail address",
        "channel[m].to[0]: must be an e-mail address",
    ]
    with pytest.raises(InvalidInput) as info:
        parse_channel(
            {"name": "s", "type": "slack", "url": "https://hooks.slack.com/x", "secret": "y"}
        )
    assert [str(p) for p in info.value.problems] == [
        "channel[s].secret: is not a field of slack channels (url)"
    ]


def test_the_alerts_file_expands_environment_variables(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "channels:\n"
        "  - {name: hook, type: webhook, url: '${HOOK}/in', secret: '${SECRET}$$'}\n"
        "rules:\n"
        "  - {name: two, kind: consecutive_failures, channels: [hook]}\n"
    )
    loaded = load_alerts_file(path, {"HOOK": "https://example.com", "SECRET": "abc"})
    (hook,) = loaded.channels
    assert hook.config["url"] == "https://example.com/in"
    assert hook.config["secret"] == "abc$"
    assert hook.source == "file"
    assert [r.name for r in loaded.rules] == ["two"]


def test_a_bad_alerts_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "channels:\n"
        "  - {name: hook, type: webhook, url: '${MISSING}'}\n"
        "rules:\n"
        "  - {name: two, kind: consecutive_failures, n: 0, channels: [elsewhere]}\n"
        "  - {name: two, kind: stale}\n"
        "extra: 1\n"
    )
    with pytest.raises(AlertsFileError) as info:
        load_alerts_file(path, {})
    assert str(info.value) == (
        f"alerts file {path} has 6 problem(s):\n"
        "  extra: is not a known section (channels, rules)\n"
        "  channel[hook].url: environment variable MISSING is not set\n"
        "  channel[hook].url: must be a non-empty string\n"
        "  rule[two].channels[0]: no channel is named 'elsewhere'\n"
        "  rule[two].n: must be a whole number from 1 to 1000\n"
        "  rule[two].name: is defined twice"
    )


def test_an_unreadable_alerts_file(tmp_path: Path) -> None:
    with pytest.raises(AlertsFileError, match=r"alerts file .*missing\.yaml: No such file"):
        load_alerts_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(AlertsFileError, match="not valid YAML"):
        load_alerts_file(bad)
