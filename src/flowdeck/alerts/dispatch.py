"""Which alerts to tell whom, and when: silences, acknowledgement, grouping, repeats. Pure,
like the engine: the time is an argument.

- An alert that starts firing is announced once, to its rule's channels, unless a silence
  matches it (it is announced when the silence ends if it still fires).
- Alerts of one rule with the same values of the rule's ``group_by`` labels form a group.
  A group waits ``group_wait`` after its first alert needing a message, then everything in
  it that needs a message goes out together, as one notification per channel.
- A firing alert nobody acknowledged is announced again every ``repeat_interval``.
- An alert that was announced as firing is announced as resolved when it clears.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flowdeck.alerts.engine import FIRING, INACTIVE, RESOLVED, Alert
from flowdeck.alerts.matchers import Matcher, matches_all
from flowdeck.alerts.rules import Rule


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "scheduled"
        return "active" if now < self.ends_at else "expired"

    def out(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at,
            "state": self.state(now),
        }


def silenced_by(
    labels: Mapping[str, str], silences: Sequence[Silence], now: datetime
) -> str | None:
    for s in silences:
        if s.active(now) and matches_all(s.matchers, labels):
            return s.id
    return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message about one group of one rule (sent to each of the rule's channels)."""

    rule: Rule
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]  # each as it is now: firing or resolved
    repeat: bool

    @property
    def status(self) -> str:
        return FIRING if any(a.state == FIRING for a in self.alerts) else RESOLVED


@dataclass
class Plan:
    outgoing: list[Outgoing] = field(default_factory=list)
    next_due: datetime | None = None  # the earliest later time something may be due

    def later(self, when: datetime) -> None:
        if self.next_due is None or when < self.next_due:
            self.next_due = when


def group_of(rule: Rule, alert: Alert) -> tuple[str, dict[str, str]]:
    labels = {name: alert.labels.get(name, "") for name in rule.group_by}
    key = rule.name + "".join(f"|{k}={v}" for k, v in labels.items())
    return key, labels


def plan(
    alerts: Sequence[Alert],
    rules: Mapping[str, Rule],
    silences: Sequence[Silence],
    now: datetime,
) -> Plan:
    """The messages due now; the alerts in them are to be marked notified by the caller."""
    out = Plan()
    groups: dict[tuple[str, str], list[tuple[Alert, datetime, bool]]] = {}
    labels_of: dict[tuple[str, str], dict[str, str]] = {}
    for alert in alerts:
        rule = rules.get(alert.rule)
        if rule is None or not rule.enabled:
            continue
        wait = timedelta(seconds=rule.group_wait_s)
        due: datetime | None = None
        repeat = False
        if alert.state == FIRING:
            if silenced_by(alert.labels, silences, now) is not None:
                continue
            if alert.notified != FIRING:
                due = (alert.fired_at or now) + wait
            elif (
                alert.acknowledged_at is None
                and rule.repeat_interval_s > 0
                and alert.notified_at is not None
            ):
                due = alert.notified_at + timedelta(seconds=rule.repeat_interval_s)
                repeat = True
        elif alert.state in (RESOLVED, INACTIVE) and alert.notified == FIRING:
            due = (alert.resolved_at or alert.evaluated_at) + wait
        if due is None:
            continue
        key, labels = group_of(rule, alert)
        groups.setdefault((rule.name, key), []).append((alert, due, repeat))
        labels_of[(rule.name, key)] = labels
    for (rule_name, key), members in groups.items():
        first = min(due for _, due, _ in members)
        if first > now:
            out.later(first)
            continue
        rule = rules[rule_name]
        news = [m for m in members if not m[2]]
        if news:
            # A group's new and resolved alerts go together; repeats wait for their turn
            # unless they are due too.
            chosen = news + [m for m in members if m[2] and m[1] <= now]
        else:
            chosen = [m for m in members if m[1] <= now]
            for _, due, _ in members:
                if due > now:
                    out.later(due)
        out.outgoing.append(
            Outgoing(
                rule,
                key,
                labels_of[(rule_name, key)],
                tuple(
                    sorted((a for a, _, _ in chosen), key=lambda a: a.labels.get("pipeline", ""))
                ),
                repeat=not news,
            )
        )
    return out
