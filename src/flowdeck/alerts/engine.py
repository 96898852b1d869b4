"""The alert engine, pure: nothing here reads the clock, the database or the network.

``evaluate(rule, facts, now)`` says, for every pipeline (or batch) the rule watches among the
facts, whether its condition holds now. ``advance(alert, observation, rule, now)`` moves one
alert through its states, as Prometheus does (rules/alerting.go)::

    inactive ──condition──► pending ──held for `for`──► firing ──condition gone──► resolved
       ▲                       │                                                    │
       └──condition gone───────┘ (nobody is told)            condition again ──► pending

An alert is one (rule, subject) pair, keyed by a fingerprint of its identifying labels.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowdeck.alerts.matchers import format_duration
from flowdeck.alerts.rules import WINDOW_NAMES, Rule
from flowdeck.pipelines import PipelineState
from flowdeck.runs import RunRecord

INACTIVE: Final = "inactive"
PENDING: Final = "pending"
FIRING: Final = "firing"
RESOLVED: Final = "resolved"
# Earlier successful runs volume_drop needs before it compares; fewer would be noise.
MIN_VOLUME_HISTORY: Final = 3
# Successful runs long_running needs to know a pipeline's p95 duration.
MIN_DURATION_HISTORY: Final = 5
DURATION_HISTORY: Final = 20


@dataclass(frozen=True, slots=True)
class PipelineFacts:
    """What the engine may know of one pipeline in one env."""

    state: PipelineState
    labels: Mapping[str, str] = field(default_factory=dict)  # its last run's labels
    last_run: RunRecord | None = None
    first_run_at: datetime | None = None  # needed by stale when it never succeeded
    successes: Sequence[RunRecord] = ()  # its latest successful runs, newest first


@dataclass(frozen=True, slots=True)
class BatchFacts:
    project: str
    batch_id: str
    env: str
    health: str
    total: int
    failed: int
    succeeded: int
    started_at: datetime | None
    # A later batch of the same project and env that finished without failures.
    superseded_by: str | None = None
    running_or_pending: int = 0


@dataclass(frozen=True, slots=True)
class SloFacts:
    """One SLO as the burn-rate rules see it (flowdeck.slo.service gives these)."""

    project: str
    slo: str
    pipeline: str
    objective: float  # percent, 50 ≤ x < 100
    # Window ("5m", "30m", "1h", "6h", …) → bad fraction / (1 − objective); None: no data.
    burn_rates: Mapping[str, float | None]
    labels: Mapping[str, str] = field(default_factory=dict)  # slo_kind, env, …


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """One incident as the incident rules see it (the incidents service gives these)."""

    project: str
    incident_id: str
    pipeline: str
    kind: str
    severity: str
    open: bool
    summary: str
    opened_at: datetime
    stage: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    pipelines: Sequence[PipelineFacts] = ()
    batches: Sequence[BatchFacts] = ()
    slos: Sequence[SloFacts] = ()
    incidents: Sequence[IncidentFacts] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """One subject of one rule at one evaluation: is the condition met, and why."""

    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    active: bool
    value: float | None
    summary: str
    subject: Mapping[str, Any]  # ids to link to: project, pipeline, env, run_id, batch_id


@dataclass(frozen=True, slots=True)
class Alert:
    fingerprint: str
    rule: str
    kind: str
    severity: str
    state: str
    labels: Mapping[str, str]
    subject: Mapping[str, Any]
    value: float | None
    summary: str
    active_since: datetime | None  # when the condition began (this episode)
    fired_at: datetime | None
    resolved_at: datetime | None
    evaluated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    ack_comment: str | None = None
    notified: str = ""  # the last state people were told of: "", firing or resolved
    notified_at: datetime | None = None
    episode: int = 1


@dataclass(frozen=True, slots=True)
class Transition:
    alert: Alert
    before: str  # the state before (inactive for a new alert)


def fingerprint(rule: str, identity: Mapping[str, str]) -> str:
    """Stable id of (rule, subject): the same labels always give the same fingerprint."""
    text = "\x1f".join([rule, *(f"{k}\x1e{identity[k]}" for k in sorted(identity))])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _labels(rule: Rule, identity: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    # Identity wins over a run label of the same name; rule, kind and severity are labels
    # too, so silences and grouping can use them.
    return {
        **{k: str(v) for k, v in extra.items()},
        **identity,
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
    }


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _field_value(run: RunRecord, name: str) -> float | None:
    value = getattr(run, name, None) if name in RunRecord.__dataclass_fields__ else None
    if value is None:
        value = run.custom_stats.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return ordered[rank - 1]


def evaluate(rule: Rule, facts: Facts, now: datetime) -> list[Observation]:
    """One observation per subject of the facts the rule's selector matches."""
    if rule.kind == "batch_health":
        return [o for b in facts.batches if (o := _batch(rule, b)) is not None]
    if rule.kind == "slo_burn_rate":
        return [o for f in facts.slos if (o := _slo_burn(rule, f)) is not None]
    if rule.kind == "incident":
        return [o for f in facts.incidents if (o := _incident(rule, f)) is not None]
    out: list[Observation] = []
    for p in facts.pipelines:
        s = p.state
        if not rule.selector.matches(s.project, s.env, s.pipeline, p.labels):
            continue
        identity = {"project": s.project, "pipeline": s.pipeline, "env": s.env}
        active, value, summary, subject = _CHECKS[rule.kind](rule, p, now)
        out.append(
            Observation(
                fingerprint(rule.name, identity),
                rule.name,
                _labels(rule, identity, p.labels),
                active,
                value,
                summary,
                {**identity, **subject},
            )
        )
    return out


Check = tuple[bool, float | None, str, dict[str, Any]]


def _where(s: PipelineState) -> str:
    return f"{s.pipeline} ({s.env}" + ("" if s.project == "default" else f", {s.project}") + ")"


def _consecutive_failures(rule: Rule, p: PipelineFacts, now: datetime) -> Check:
    n = int(rule.param("n"))
    failures = p.state.consecutive_failures
    run = p.last_run
    detail = f": {run.error_message}" if run is not None and run.error_message else ""
    if failures:
        times = "once" if failures == 1 else f"{failures} times in a row"
        summary = f"{_where(p.state)} failed {times}{detail}"
    else:  # (what a resolved alert says: not "failed 0 times")
        summary = f"{_where(p.state)} has not failed since its last success"
    return failures >= n, float(failures), summary, {"run_id": p.state.last_run_id}


def _stale(rule: Rule, p: PipelineFacts, now: datetime) -> Check:
    max_age = float(rule.param("max_age"))
    s = p.state
    if s.last_success_at is not None:
        age = (now - s.last_success_at).total_seconds()
        last = f"{s.last_success_at:%Y-%m-%d %H:%M} UTC"
        if age > max_age:
            summary = f"{_where(s)} has not succeeded for {_ago(age)} (last success {last})"
        else:  # (a resolved alert: fresh again)
            summary = f"{_where(s)} last succeeded {_ago(age)} ago ({last})"
    else:
        since = p.first_run_at or s.last_run_at
        age = (now - since).total_seconds()
        summary = f"{_where(s)} has never succeeded since its first run {_ago(age)} ago"
    subject = {"run_id": s.last_success_run_id or s.last_run_id}
    return age > max_age, age, summary, subject


def _volume_drop(rule: Rule, p: PipelineFacts, now: datetime) -> Check:
    name = str(rule.param("field"))
    window = int(rule.param("window"))
    drop_pct = float(rule.param("drop_pct"))
    runs = [(r, v) for r in p.successes if (v := _field_value(r, name)) is not None]
    if len(runs) < 1 + MIN_VOLUME_HISTORY:
        return False, None, f"{_where(p.state)}: not enough history of {name}", {}
    (latest, value), earlier = runs[0], [v for _, v in runs[1 : 1 + window]]
    average = sum(earlier) / len(earlier)
    drop = (average - value) / average * 100 if average > 0 else 0.0
    # (a resolved alert says where the value went: above the average is not "-22% below")
    against = f"{drop:.0f}% below" if drop >= 0 else f"{-drop:.0f}% above"
    summary = (
        f"{_where(p.state)}: {name} {value:,.0f} is {against} the average "
        f"{average:,.0f} of its previous {len(earlier)} successful runs"
    )
    return drop > drop_pct, round(drop, 3), summary, {"run_id": latest.run_id}


def _dq_error_rate(rule: Rule, p: PipelineFacts, now: datetime) -> Check:
    threshold = float(rule.param("threshold"))
    run = p.last_run
    if run is None or run.status not in ("SUCCESS", "FAILED") or not run.rows_read:
        return False, None, f"{_where(p.state)}: no finished run with rows read", {}
    rate = (run.dq_errors or 0) / run.rows_read * 100
    summary = (
        f"{_where(p.state)}: {rate:.2f}% of rows failed data-quality checks "
        f"({run.dq_errors or 0:,} of {run.rows_read:,}), above {threshold:g}%"
    )
    return rate > threshold, round(rate, 4), summary, {"run_id": run.run_id}


def _long_running(rule: Rule, p: PipelineFacts, now: datetime) -> Check:
    s = p.state
    if s.last_status != "RUNNING":
        return False, None, f"{_where(s)} is not running", {"run_id": s.last_run_id}
    elapsed = (now - s.last_run_at).total_seconds()
    limits: list[tuple[float, str]] = []
    if (max_duration := rule.param("max_duration")) is not None:
        limits.append((float(max_duration), f"the limit of {_ago(float(max_duration))}"))
    factor = rule.param("factor")
    durations = [r.duration_s for r in p.successes if r.duration_s is not None]
    if factor is not None and len(durations) >= MIN_DURATION_HISTORY:
        usual = p95(durations[:DURATION_HISTORY])
        limits.append((float(factor) * usual, f"{factor:g} × its p95 of {_ago(usual)}"))
    over = [(limit, why) for limit, why in limits if elapsed > limit]
    why = over[0][1] if over else (limits[0][1] if limits else "no limit known yet")
    summary = f"{_where(s)} has been running for {_ago(elapsed)}, longer than {why}"
    return bool(over), elapsed, summary, {"run_id": s.last_run_id}


_CHECKS: Final = {
    "consecutive_failures": _consecutive_failures,
    "stale": _stale,
    "volume_drop": _volume_drop,
    "dq_error_rate": _dq_error_rate,
    "long_running": _long_running,
}


def _batch(rule: Rule, b: BatchFacts) -> Observation | None:
    sel = rule.selector
    if (sel.project is not None and b.project != sel.project) or (
        sel.env is not None and b.env != sel.env
    ):
        return None
    identity = {"project": b.project, "env": b.env, "batch_id": b.batch_id}
    # DESIGN calls a batch under 90 % success red even while its processes still run; one
    # that has not failed anything yet pages nobody until it has (or has finished).
    settled = b.failed > 0 or b.running_or_pending == 0
    active = b.health == "red" and settled and b.superseded_by is None
    summary = (
        f"batch {b.batch_id} ({b.env}) is {b.health}: {b.failed} of {b.total} processes "
        f"failed, {b.succeeded} succeeded"
        if b.superseded_by is None
        else f"batch {b.batch_id} ({b.env}) is superseded by batch {b.superseded_by}, "
        "which finished without failures"
    )
    rate = b.succeeded / b.total * 100 if b.total else 0.0
    return Observation(
        fingerprint(rule.name, identity),
        rule.name,
        _labels(rule, identity, {}),
        active,
        round(rate, 3),
        summary,
        {**identity, "started_at": b.started_at},
    )


def _window(seconds: float) -> str:
    return WINDOW_NAMES.get(seconds) or format_duration(seconds)


def burning(
    burn_rates: Mapping[str, float | None], long_window: str, short_window: str, factor: float
) -> bool:
    """Multi-window burn-rate condition (Google SRE workbook, ch. 5): both the long window
    (is it significant?) and the short window (is it still happening?) burn the error budget
    at least ``factor`` times as fast as the objective allows. A window without data is not
    burning."""
    long_burn = burn_rates.get(long_window)
    short_burn = burn_rates.get(short_window)
    return (
        long_burn is not None
        and short_burn is not None
        and long_burn >= factor
        and short_burn >= factor
    )


def _slo_burn(rule: Rule, f: SloFacts) -> Observation | None:
    env = f.labels.get("env", "")
    if not rule.selector.matches(f.project, env, f.pipeline, f.labels):
        return None
    if not fnmatch.fnmatchcase(f.slo, str(rule.param("slo") or "*")):
        return None
    factor = float(rule.param("factor"))
    long_w = _window(float(rule.param("long_window")))
    short_w = _window(float(rule.param("short_window")))
    active = burning(f.burn_rates, long_w, short_w, factor)
    long_burn, short_burn = f.burn_rates.get(long_w), f.burn_rates.get(short_w)

    def show(burn: float | None) -> str:
        return "no data" if burn is None else f"{burn:.1f}×"

    where = f.pipeline + ("" if f.project == "default" else f", {f.project}")
    summary = (
        f"SLO {f.slo} ({where}, {f.objective:g} %) burns its error budget "
        f"{show(long_burn)} over {long_w} and {show(short_burn)} over {short_w} "
        f"(alert at {factor:g}×)"
    )
    if active and long_burn:
        # At this pace the 30-day budget is gone in 30 days / burn rate.
        summary += f"; at this pace the 30-day budget lasts {_ago(30 * 86400 / long_burn)}"
    identity = {"project": f.project, "slo": f.slo}
    extra = {**f.labels, "pipeline": f.pipeline}
    return Observation(
        fingerprint(rule.name, identity),
        rule.name,
        _labels(rule, identity, extra),
        active,
        None if long_burn is None else round(long_burn, 3),
        summary,
        {**identity, "pipeline": f.pipeline},
    )


def _incident(rule: Rule, f: IncidentFacts) -> Observation | None:
    labels = {"pipeline": f.pipeline, "incident_kind": f.kind, "incident_severity": f.severity}
    if f.stage:
        labels["stage"] = f.stage
    if not rule.selector.matches(f.project, "", f.pipeline, labels):
        return None
    wanted = rule.param("incident_kind")
    if wanted is not None and not fnmatch.fnmatchcase(f.kind, str(wanted)):
        return None
    identity = {"project": f.project, "incident_id": f.incident_id}
    # As the store gives it back (ISO text), so an unchanged incident is not rewritten.
    opened = f.opened_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    subject: dict[str, Any] = {**identity, "pipeline": f.pipeline, "opened_at": opened}
    if f.stage:
        subject["stage"] = f.stage
    return Observation(
        fingerprint(rule.name, identity),
        rule.name,
        _labels(rule, identity, labels),
        f.open,
        None,
        f.summary,
        subject,
    )


def gone(alert: Alert) -> Observation:
    """The observation of a subject the facts no longer mention (an SLO deleted, an
    incident no longer reported): its condition is not met, so its alert clears."""
    return Observation(
        alert.fingerprint,
        alert.rule,
        alert.labels,
        False,
        None,
        alert.summary,
        alert.subject,
    )


def advance(alert: Alert | None, obs: Observation, rule: Rule, now: datetime) -> Transition | None:
    """The alert after this observation, or None when nothing changes (no alert and the
    condition is not met). The returned alert may be unchanged in state (then only its value,
    summary and evaluation time are new)."""
    state = alert.state if alert is not None else INACTIVE
    if obs.active:
        if state in (INACTIVE, RESOLVED) or alert is None:
            fresh = Alert(
                fingerprint=obs.fingerprint,
                rule=rule.name,
                kind=rule.kind,
                severity=rule.severity,
                state=PENDING,
                labels=obs.labels,
                subject=obs.subject,
                value=obs.value,
                summary=obs.summary,
                active_since=now,
                fired_at=None,
                resolved_at=None,
                evaluated_at=now,
                # A new episode starts unacknowledged; it keeps what people were last told
                # (a resolved alert that returns must be announced again).
                notified=alert.notified if alert is not None else "",
                notified_at=alert.notified_at if alert is not None else None,
                episode=alert.episode + 1 if alert is not None else 1,
            )
            return Transition(promote(fresh, rule, now), state)
        updated = replace(
            alert,
            labels=obs.labels,
            subject=obs.subject,
            value=obs.value,
            summary=obs.summary,
            evaluated_at=now,
            severity=rule.severity,
        )
        return Transition(promote(updated, rule, now), state)
    if alert is None or state in (INACTIVE, RESOLVED):
        return None
    if state == PENDING:
        # The condition cleared within `for` (a retry that succeeded): nobody is told.
        gone = replace(alert, state=INACTIVE, value=obs.value, summary=obs.summary)
        return Transition(replace(gone, evaluated_at=now), state)
    resolved = replace(
        alert,
        state=RESOLVED,
        resolved_at=now,
        value=obs.value,
        summary=obs.summary,
        evaluated_at=now,
    )
    return Transition(resolved, state)


def promote(alert: Alert, rule: Rule, now: datetime) -> Alert:
    """A pending alert whose condition has held for the rule's `for` starts firing."""
    if alert.state != PENDING or alert.active_since is None:
        return alert
    if now - alert.active_since >= timedelta(seconds=rule.for_s):
        return replace(
            alert,
            state=FIRING,
            fired_at=now,
            acknowledged_at=None,
            acknowledged_by=None,
            ack_comment=None,
        )
    return alert


def retire(alert: Alert, now: datetime) -> Alert:
    """An alert whose rule was deleted or disabled: pending ones vanish, firing ones resolve."""
    if alert.state == PENDING:
        return replace(alert, state=INACTIVE, evaluated_at=now)
    if alert.state == FIRING:
        return replace(alert, state=RESOLVED, resolved_at=now, evaluated_at=now)
    return alert
