"""Alerting at work: the rules in force, evaluation on each committed change and on a tick,
the messages that follow, and their delivery with retries.

Every step reads the injected clock once and is safe to call from any thread (one step at
a time). :meth:`AlertService.run` is the background loop the app starts: it listens to the
event bus, wakes for the tick and for whatever falls due, and does its work in a thread so
the event loop never waits on the database or a receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from flowdeck.alerts import dispatch, engine
from flowdeck.alerts.config import AlertsFile, load_alerts_file
from flowdeck.alerts.dispatch import Outgoing, Silence
from flowdeck.alerts.engine import (
    FIRING,
    PENDING,
    Alert,
    BatchFacts,
    Facts,
    IncidentFacts,
    PipelineFacts,
    SloFacts,
    Transition,
)
from flowdeck.alerts.notify import DeliveryError, deliver
from flowdeck.alerts.rules import (
    FACT_KINDS,
    TIME_KINDS,
    Channel,
    Rule,
    keep_secrets,
    parse_channel,
    parse_rule,
)
from flowdeck.alerts.store import AlertStore, Delivery, Notification, new_id
from flowdeck.errors import FlowdeckError, NotFound
from flowdeck.events import Change, EventBus, pipeline_keys
from flowdeck.pipelines import PipelineKey, PipelineState
from flowdeck.runs import RunRecord
from flowdeck.settings import Settings
from flowdeck.store import Store
from flowdeck.store.sql import SqlStore

log = logging.getLogger("flowdeck.alerts")

Clock = Callable[[], datetime]
Deliver = Callable[[Channel, Mapping[str, Any], datetime], int | None]
# Tells the live clients what alerting just did (the event bus's publish_alerts).
Announce = Callable[[tuple[dict[str, Any], ...]], None]
# What other services know at a time: the SLOs' burn rates, the incidents.
SloFactsSource = Callable[[datetime], Sequence[SloFacts]]
IncidentFactsSource = Callable[[datetime], Sequence[IncidentFacts]]
APP_CHANNEL: Final = "app"  # the in-app notification centre's copy of every message


class ReadOnly(FlowdeckError):
    """A rule or channel defined in the alerts file cannot be changed through the API."""


class InUse(FlowdeckError):
    """A channel that rules still name cannot be deleted."""


@dataclass
class AlertOptions:
    public_url: str = "http://127.0.0.1:8000"
    runbook_url: str = ""  # default: <public_url>/runbook
    tick_s: float = 15.0
    # Commits close together are evaluated together: at most one evaluation on commits in
    # this many seconds (a burst of ingest would otherwise take a step per commit, each
    # with its reads, beside the writer).
    step_gap_s: float = 0.1
    retry_base_s: float = 5.0
    retry_max_s: float = 600.0
    workers: int = 4

    @property
    def runbook(self) -> str:
        return self.runbook_url or f"{self.public_url.rstrip('/')}/runbook"


@dataclass
class StepStats:
    evaluations: int = 0
    ticks: int = 0
    notifications: int = 0
    last_step_seconds: float = 0.0
    leading: bool = False
    last_error: str | None = None


@dataclass
class _Wake:
    event: asyncio.Event = field(default_factory=asyncio.Event)


class AlertService:
    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Clock,
        options: AlertOptions | None = None,
        file: AlertsFile | None = None,
        sender: Deliver = deliver,
    ) -> None:
        self.db = AlertStore(store)
        self.clock = clock
        self.options = options or AlertOptions()
        self.file = file or AlertsFile("")
        self.sender = sender
        self.announce: Announce | None = None
        # Set by the app once those services run; None: nothing of that kind to evaluate
        # (and the alerts of its rules are left as they are).
        self.slo_facts: SloFactsSource | None = None
        self.incident_facts: IncidentFactsSource | None = None
        self.stats = StepStats()
        self._step_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="flowdeck-notify")
        self._in_flight: dict[str, Future[None]] = {}
        # The last attempt this process made of each notification: a row read just before
        # an attempt was recorded must not start the same attempt again.
        self._attempted: OrderedDict[str, int] = OrderedDict()
        self._flight_lock = threading.Lock()
        self._wake: _Wake | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_tick: float = 0.0
        self._last_step: float = 0.0
        self._stopping = False
        # Per pipeline, for the tick: (last success id, how many, its latest successes) and
        # the time of its first run (needed while it has never succeeded).
        self._successes: dict[PipelineKey, tuple[str | None, int, list[RunRecord]]] = {}
        self._first_runs: dict[PipelineKey, datetime | None] = {}
        self._last_runs: dict[PipelineKey, tuple[str, RunRecord]] = {}

    # -- the rules and channels in force ---------------------------------------------------
    def rules(self) -> dict[str, Rule]:
        out = {r.name: r for r in self.db.list_rules()}
        out.update({r.name: r for r in self.file.rules})
        return out

    def channels(self) -> dict[str, Channel]:
        out = {c.name: c for c in self.db.list_channels()}
        out.update({c.name: c for c in self.file.channels})
        return out

    def get_rule(self, name: str) -> Rule:
        rule = self.rules().get(name)
        if rule is None:
            raise NotFound("alert rule", name)
        return rule

    def get_channel(self, name: str) -> Channel:
        channel = self.channels().get(name)
        if channel is None:
            raise NotFound("channel", name)
        return channel

    def _file_rule(self, name: str) -> bool:
        return any(r.name == name for r in self.file.rules)

    def _file_channel(self, name: str) -> bool:
        return any(c.name == name for c in self.file.channels)

    def put_rule(self, data: Mapping[str, Any], name: str | None = None) -> tuple[Rule, bool]:
        """Create (name None) or replace the rule ``name``; (rule, created)."""
        data = _writable(data)
        if name is not None:
            data = {**data, "name": data.get("name", name)}
        channels = self.channels()
        rule = parse_rule(data, channels=channels.__contains__)
        if name is not None and rule.name != name:
            from flowdeck.errors import FieldProblem, InvalidInput

            raise InvalidInput(
                [FieldProblem(f"rule[{name}].name", f"must be {name!r} (the name in the path)")]
            )
        if self._file_rule(rule.name):
            raise ReadOnly(f"rule {rule.name!r} is defined in the alerts file; change it there")
        exists = rule.name in self.rules()
        if name is None and exists:
            raise InUse(
                f"rule {rule.name!r} exists; PUT /api/v1/alert-rules/{rule.name} changes it"
            )
        if name is not None and not exists:
            raise NotFound("alert rule", name)
        created = self.db.put_rule(rule, self.clock())
        self.kick()
        return rule, created

    def delete_rule(self, name: str) -> None:
        if self._file_rule(name):
            raise ReadOnly(f"rule {name!r} is defined in the alerts file; remove it there")
        self.db.delete_rule(name)

    def put_channel(self, data: Mapping[str, Any], name: str | None = None) -> tuple[Channel, bool]:
        data = _writable(data)
        if name is not None:
            data = {**data, "name": data.get("name", name)}
        existing = self.channels()
        old = existing.get(str(data.get("name")))
        channel = parse_channel(keep_secrets(data, old))
        if name is not None and channel.name != name:
            from flowdeck.errors import FieldProblem, InvalidInput

            raise InvalidInput(
                [FieldProblem(f"channel[{name}].name", f"must be {name!r} (the name in the path)")]
            )
        if self._file_channel(channel.name):
            raise ReadOnly(
                f"channel {channel.name!r} is defined in the alerts file; change it there"
            )
        if channel.name == APP_CHANNEL:
            from flowdeck.errors import FieldProblem, InvalidInput

            raise InvalidInput(
                [FieldProblem("channel[app].name", "'app' is the in-app notification centre")]
            )
        if name is None and old is not None:
            raise InUse(
                f"channel {channel.name!r} exists; PUT /api/v1/channels/{channel.name} changes it"
            )
        if name is not None and old is None:
            raise NotFound("channel", name)
        created = self.db.put_channel(channel, self.clock())
        return channel, created

    def delete_channel(self, name: str) -> None:
        if self._file_channel(name):
            raise ReadOnly(f"channel {name!r} is defined in the alerts file; remove it there")
        users = sorted(r.name for r in self.rules().values() if name in r.channels)
        if users:
            raise InUse(f"channel {name!r} is used by rule(s) {', '.join(users)}")
        self.db.delete_channel(name)

    # -- silences and acknowledgement ------------------------------------------------------
    def acknowledge(self, fp: str, by: str, comment: str | None) -> Alert:
        alert = self.db.acknowledge(fp, by, comment, self.clock())
        self._tell({"what": "acknowledged", "fingerprint": fp})
        return alert

    def add_silence(self, silence: Silence) -> None:
        self.db.add_silence(silence)
        self._tell({"what": "silence", "id": silence.id})

    def expire_silence(self, sid: str) -> Silence:
        silence = self.db.expire_silence(sid, self.clock())
        self.kick()
        self._tell({"what": "silence", "id": sid})
        return silence

    def mark_read(self, ids: Sequence[str] | None) -> int:
        count = self.db.mark_read(ids, self.clock())
        if count:
            self._tell({"what": "read", "count": count})
        return count

    def _tell(self, *items: dict[str, Any]) -> None:
        if self.announce is not None and items:
            try:
                self.announce(items)
            except Exception:  # live clients are a convenience; alerting goes on
                log.exception("could not announce alerting news")

    def silenced_by(self, alert: Alert, silences: Sequence[Silence] | None = None) -> str | None:
        now = self.clock()
        return dispatch.silenced_by(alert.labels, silences or self.db.silences(since=now), now)

    # -- evaluation ------------------------------------------------------------------------
    def step(
        self, changes: Sequence[Change] = (), *, full: bool = False, tick: bool = False
    ) -> None:
        """Evaluate what these changes touched (everything when ``full``), run the tick when
        asked, send what is due. Only the leading replica does anything."""
        with self._step_lock:
            started = time.perf_counter()
            self.stats.leading = self.db.try_lead()
            if not self.stats.leading:
                return
            now = self.clock()
            rules = self.rules()
            enabled = [r for r in rules.values() if r.enabled]
            transitions: list[Transition] = []
            if full:
                self._successes.clear()
                self._first_runs.clear()
                self._last_runs.clear()
                transitions += self._evaluate_pipelines(None, enabled, now)
            elif changes:
                keys = list(dict.fromkeys(k for c in changes for k in pipeline_keys(c.runs)))
                batches = {(b["project"], b["batch_id"]): b for c in changes for b in c.batches}
                self._forget(keys)
                transitions += self._evaluate_pipelines(keys, enabled, now)
                transitions += self._evaluate_batches(list(batches.values()), enabled, now)
                self.stats.evaluations += 1
            if tick:
                transitions += self._tick(
                    rules, now, skip={t.alert.fingerprint for t in transitions}
                )
                self.stats.ticks += 1
            self.db.save(transitions, now)
            sent = self._dispatch(rules, now)
            self.stats.last_step_seconds = time.perf_counter() - started
        news: list[dict[str, Any]] = [
            {
                "what": "alert",
                "fingerprint": t.alert.fingerprint,
                "rule": t.alert.rule,
                "state": t.alert.state,
                "severity": t.alert.severity,
            }
            for t in transitions
        ]
        if sent:
            news.append({"what": "notification", "count": sent})
        self._tell(*news)
        self.deliver_due()

    def _alerts_for(self, observations: Sequence[engine.Observation]) -> dict[str, Alert]:
        return {
            a.fingerprint: a
            for a in self.db.alerts(fingerprints=[o.fingerprint for o in observations])
        }

    def _advance_all(
        self,
        pairs: Sequence[tuple[Rule, engine.Observation]],
        now: datetime,
        active: Mapping[str, Alert] | None = None,
    ) -> list[Transition]:
        """Each observation applied to its alert. With ``active`` (every pending and firing
        alert), only alerts that may start a new episode are read: an observation of a
        condition not met changes nothing unless its alert is active."""
        if active is None:
            known = self._alerts_for([o for _, o in pairs])
        else:
            known = dict(active)
            known.update(
                self._alerts_for([o for _, o in pairs if o.active and o.fingerprint not in active])
            )
        out: list[Transition] = []
        for rule, obs in pairs:
            before = known.get(obs.fingerprint)
            t = engine.advance(before, obs, rule, now)
            if t is not None and not _same(before, t.alert):
                out.append(t)
        return out

    def _facts(
        self, states: Sequence[PipelineState], rules: Sequence[Rule], now: datetime
    ) -> list[PipelineFacts]:
        # A pipeline's last run (for its labels) is read once per run id: the tick sees the
        # same last runs again and again.
        missing = [
            s.last_run_id
            for s in states
            if s.key not in self._last_runs or self._last_runs[s.key][0] != s.last_run_id
        ]
        fetched = self.db.runs_by_id(missing) if missing else {}
        facts: list[PipelineFacts] = []
        for s in states:
            if s.last_run_id in fetched:
                self._last_runs[s.key] = (s.last_run_id, fetched[s.last_run_id])
            cached_run = self._last_runs.get(s.key)
            run = (
                cached_run[1] if cached_run is not None and cached_run[0] == s.last_run_id else None
            )
            labels = run.labels if run is not None else {}
            mine = [r for r in rules if r.selector.matches(s.project, s.env, s.pipeline, labels)]
            if not mine:
                continue
            need = 0
            for r in mine:
                if r.kind == "volume_drop":
                    need = max(need, int(r.param("window")) + 1)
                elif r.kind == "long_running" and r.param("factor") and s.last_status == "RUNNING":
                    need = max(need, engine.DURATION_HISTORY)
            successes: list[RunRecord] = []
            if need:
                # The tick reuses a pipeline's successes until a new one arrives; an
                # evaluation after a commit always reads them afresh (a success reported
                # again may have changed its numbers).
                cached = self._successes.get(s.key)
                if cached is not None and cached[0] == s.last_success_run_id and cached[1] >= need:
                    successes = cached[2][:need]
                else:
                    successes = self.db.recent_successes(s.key, need)
                    self._successes[s.key] = (s.last_success_run_id, need, successes)
            first = None
            if s.last_success_at is None and any(r.kind == "stale" for r in mine):
                if s.key not in self._first_runs:
                    self._first_runs[s.key] = self.db.first_run_at(s.key)
                first = self._first_runs[s.key]
            facts.append(PipelineFacts(s, labels, run, first, successes))
        return facts

    def _forget(self, keys: Sequence[PipelineKey]) -> None:
        for key in keys:
            self._successes.pop(key, None)
            self._first_runs.pop(key, None)
            self._last_runs.pop(key, None)

    def _evaluate_pipelines(
        self, keys: Sequence[PipelineKey] | None, rules: Sequence[Rule], now: datetime
    ) -> list[Transition]:
        rules = [r for r in rules if r.kind != "batch_health" and r.kind not in FACT_KINDS]
        if not rules or keys == []:
            return []
        facts = Facts(self._facts(self.db.pipeline_states(keys), rules, now))
        pairs = [(r, o) for r in rules for o in engine.evaluate(r, facts, now)]
        return self._advance_all(pairs, now)

    def _evaluate_batches(
        self, batches: Sequence[Mapping[str, Any]], rules: Sequence[Rule], now: datetime
    ) -> list[Transition]:
        rules = [r for r in rules if r.kind == "batch_health"]
        if not rules or not batches:
            return []
        facts: list[BatchFacts] = []
        for b in batches:
            facts.append(
                BatchFacts(
                    b["project"],
                    b["batch_id"],
                    b["env"],
                    b["health"],
                    int(b["total"]),
                    int(b["failed"]),
                    int(b["succeeded"]),
                    _time(b.get("started_at")),
                    running_or_pending=int(b.get("running", 0)) + int(b.get("pending", 0)),
                )
            )
        # A batch that finished without failures supersedes the red batches before it.
        clean = [
            f
            for f, b in zip(facts, batches, strict=True)
            if f.health != "red" and b.get("ended_at")
        ]
        if clean:
            for alert in self.db.alerts(states=(PENDING, FIRING)):
                if alert.kind != "batch_health":
                    continue
                subject = alert.subject
                started = _time(subject.get("started_at"))
                for f in clean:
                    later = started is None or f.started_at is None or f.started_at > started
                    if (
                        subject.get("project") == f.project
                        and subject.get("env") == f.env
                        and subject.get("batch_id") != f.batch_id
                        and later
                    ):
                        facts.append(
                            BatchFacts(
                                f.project,
                                str(subject["batch_id"]),
                                f.env,
                                "red",
                                0,
                                0,
                                0,
                                started,
                                superseded_by=f.batch_id,
                            )
                        )
                        break
        pairs = [(r, o) for r in rules for o in engine.evaluate(r, Facts(batches=facts), now)]
        return self._advance_all(pairs, now)

    def _tick(self, rules: Mapping[str, Rule], now: datetime, skip: set[str]) -> list[Transition]:
        """Time-based rules over every pipeline; pending alerts whose `for` has passed start
        firing; alerts of rules deleted or disabled are retired."""
        out: list[Transition] = []
        timed = [r for r in rules.values() if r.enabled and r.kind in TIME_KINDS]
        active = self.db.active_alerts()
        out += [
            t for t in self._evaluate_facts(rules, now, active) if t.alert.fingerprint not in skip
        ]
        if timed:
            states = self.db.pipeline_states()
            alerted: dict[str, set[PipelineKey]] = {}
            for a in active:
                if a.state in (PENDING, FIRING):
                    key = (
                        str(a.subject.get("project")),
                        str(a.subject.get("pipeline")),
                        str(a.subject.get("env")),
                    )
                    alerted.setdefault(a.rule, set()).add(key)
            wanted: dict[PipelineKey, PipelineState] = {}
            for rule in timed:
                mine = alerted.get(rule.name, set())
                for s in states:
                    if s.key in mine or _candidate(rule, s, now):
                        wanted[s.key] = s
            facts = Facts(self._facts(list(wanted.values()), timed, now))
            pairs = [(r, o) for r in timed for o in engine.evaluate(r, facts, now)]
            by_fp = {a.fingerprint: a for a in active}
            moved = self._advance_all(pairs, now, by_fp)
            out += [t for t in moved if t.alert.fingerprint not in skip]
        done = skip | {t.alert.fingerprint for t in out}
        for a in active:
            if a.fingerprint in done:
                continue
            current = rules.get(a.rule)
            if current is None or not current.enabled:
                retired = engine.retire(a, now)
                if retired is not a:
                    out.append(Transition(retired, a.state))
            elif a.state == PENDING:
                promoted = engine.promote(a, current, now)
                if promoted is not a:
                    out.append(Transition(promoted, a.state))
        return out

    def _evaluate_facts(
        self, rules: Mapping[str, Rule], now: datetime, active: Sequence[Alert]
    ) -> list[Transition]:
        """The SLO and incident rules over what their services report now. A subject they
        no longer report (an SLO deleted, an incident forgotten) clears its alert; a source
        that is not set or fails changes nothing."""
        sources: dict[str, Callable[[datetime], Sequence[Any]] | None] = {
            "slo_burn_rate": self.slo_facts,
            "incident": self.incident_facts,
        }
        mine = [r for r in rules.values() if r.enabled and r.kind in FACT_KINDS]
        facts: dict[str, Sequence[Any]] = {}
        for kind in {r.kind for r in mine}:
            source = sources[kind]
            if source is None:
                continue
            try:
                facts[kind] = source(now)
            except Exception:
                log.exception("could not read the facts of %s rules", kind)
        mine = [r for r in mine if r.kind in facts]
        if not mine:
            return []
        every = Facts(slos=facts.get("slo_burn_rate", ()), incidents=facts.get("incident", ()))
        pairs = [(r, o) for r in mine for o in engine.evaluate(r, every, now)]
        seen = {o.fingerprint for _, o in pairs}
        by_rule = {r.name: r for r in mine}
        by_fp = {a.fingerprint: a for a in active}
        for a in active:
            rule = by_rule.get(a.rule)
            if rule is not None and a.kind == rule.kind and a.fingerprint not in seen:
                pairs.append((rule, engine.gone(a)))
        return self._advance_all(pairs, now, by_fp)

    # -- messages --------------------------------------------------------------------------
    def _dispatch(self, rules: Mapping[str, Rule], now: datetime) -> int:
        """Plan and store the messages due now; how many went to the notification centre."""
        alerts = self.db.active_alerts()
        if not alerts:
            return 0
        silences = self.db.silences(since=now)
        planned = dispatch.plan(alerts, rules, silences, now)
        channels = self.channels()
        items: list[Notification] = []
        for out in planned.outgoing:
            payload = self.payload(out, now)
            targets = [APP_CHANNEL, *out.rule.channels]
            for name in targets:
                channel = channels.get(name)
                if name != APP_CHANNEL:
                    if channel is None:
                        log.warning(
                            "rule %s names channel %s, which does not exist", out.rule.name, name
                        )
                        continue
                    if out.status != FIRING and not channel.send_resolved:
                        continue
                nid = new_id()
                app = name == APP_CHANNEL
                items.append(
                    Notification(
                        id=nid,
                        channel=name,
                        rule=out.rule.name,
                        group_key=out.group_key,
                        kind=out.status,
                        status="sent" if app else "pending",
                        payload={**payload, "id": nid, "channel": name},
                        attempts=0,
                        created_at=now,
                        next_attempt_at=None if app else now,
                        sent_at=now if app else None,
                        last_error=None,
                        read_at=None,
                    )
                )
        sent = [a for out in planned.outgoing for a in out.alerts]
        self.db.commit_dispatch(items, sent, now)
        self.stats.notifications += len(planned.outgoing)
        return sum(1 for n in items if n.channel == APP_CHANNEL)

    def payload(self, out: Outgoing, now: datetime) -> dict[str, Any]:
        rule = out.rule
        base = self.options.public_url.rstrip("/")
        runbook = rule.runbook_url or f"{self.options.runbook}#{rule.kind}"
        return {
            "version": 1,
            "status": out.status,
            "repeat": out.repeat,
            "group_key": out.group_key,
            "group_labels": dict(out.group_labels),
            "rule": {
                "name": rule.name,
                "kind": rule.kind,
                "severity": rule.severity,
                "description": rule.description,
                "remediation": rule.remediation,
                "runbook_url": runbook,
            },
            "alerts": [alert_payload(a, base) for a in out.alerts],
            "dashboard_url": f"{base}/",
            "created_at": now,
        }

    # -- delivery --------------------------------------------------------------------------
    def deliver_due(self, *, wait: bool = False) -> list[Future[None]]:
        """Hand every notification that is due to the worker threads; with ``wait``, return
        once every delivery under way (these and earlier ones) has finished."""
        if not self.stats.leading:
            return []  # another replica delivers
        now = self.clock()
        due = self.db.notifications(due=now, limit=500)
        channels = self.channels() if due else {}
        with self._flight_lock:
            for n in due:
                stale = self._attempted.get(n.id, 0) > n.attempts
                if n.id not in self._in_flight and not stale:
                    future = self._pool.submit(self._send, n, channels.get(n.channel))
                    self._in_flight[n.id] = future
            futures = list(self._in_flight.values())
        if wait:
            for f in futures:
                f.result()
        return futures

    def _send(self, n: Notification, channel: Channel | None, retry: bool = True) -> None:
        recorded = False
        try:
            attempt = n.attempts + 1
            started = time.perf_counter()
            code: int | None = None
            error: str | None = None
            now = self.clock()
            try:
                if channel is None:
                    raise DeliveryError(f"channel {n.channel!r} no longer exists")
                code = self.sender(channel, n.payload, now)
            except DeliveryError as exc:
                error, code = str(exc), exc.status_code
            except Exception as exc:  # a notifier bug must not stop the others
                log.exception("notifier %s failed", n.channel)
                error = f"{type(exc).__name__}: {exc}"
            took = (time.perf_counter() - started) * 1000
            ok = error is None
            done_at = self.clock()
            max_attempts = channel.max_attempts if channel is not None else 1
            if ok:
                status, next_at = "sent", None
            elif attempt >= max_attempts or not retry:
                status, next_at = "failed", None
                log.warning("notification %s to %s failed for good: %s", n.id, n.channel, error)
            else:
                backoff = min(
                    self.options.retry_base_s * 2 ** (attempt - 1), self.options.retry_max_s
                )
                status, next_at = "pending", done_at + timedelta(seconds=backoff)
                log.info(
                    "notification %s to %s failed (%s); retry in %.0fs",
                    n.id,
                    n.channel,
                    error,
                    backoff,
                )
            delivery = Delivery(n.id, attempt, done_at, ok, code, error, took)
            self.db.record_attempt(n, delivery, status, next_at)
            recorded = True
        finally:
            with self._flight_lock:
                if recorded:
                    self._attempted[n.id] = n.attempts + 1
                    self._attempted.move_to_end(n.id)
                while len(self._attempted) > 10_000:
                    self._attempted.popitem(last=False)
                self._in_flight.pop(n.id, None)
        self.kick()

    def send_test(self, name: str) -> tuple[Notification, Delivery]:
        """Send a test message through a channel now (one attempt, logged like any other)."""
        channel = self.get_channel(name)
        now = self.clock()
        rule = Rule(
            name="flowdeck-test",
            kind="consecutive_failures",
            severity="info",
            remediation="Nothing to do: this is a test of the channel.",
        )
        alert = Alert(
            fingerprint="test",
            rule=rule.name,
            kind=rule.kind,
            severity="info",
            state=FIRING,
            labels={"pipeline": "flowdeck_test", "env": "test", "project": "default"},
            subject={},
            value=None,
            summary=f"Test notification from flowdeck to channel {name}",
            active_since=now,
            fired_at=now,
            resolved_at=None,
            evaluated_at=now,
        )
        out = Outgoing(rule, "test", {}, (alert,), repeat=False)
        nid = new_id()
        n = Notification(
            id=nid,
            channel=name,
            rule=rule.name,
            group_key="test",
            kind="test",
            status="pending",
            payload={**self.payload(out, now), "id": nid, "channel": name, "test": True},
            attempts=0,
            created_at=now,
            next_attempt_at=None,
            sent_at=None,
            last_error=None,
            read_at=now,
        )
        self.db.add_notifications([n])
        self._send(n, channel, retry=False)
        deliveries = self.db.deliveries(nid)
        return self.db.get_notification(nid), deliveries[-1]

    # -- the background loop ---------------------------------------------------------------
    def kick(self) -> None:
        """Wake the loop now (a rule changed, a delivery finished, a test moved the clock)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.event.set)

    async def run(self, bus: EventBus) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = _Wake()
        with bus.subscribe(internal=True) as sub:
            first = True
            while not self.stopping():
                changes: list[Change] = []
                timeout = self._seconds_to_tick() if not first else 0.0
                next_retry = await asyncio.to_thread(self._seconds_to_retry)
                if next_retry is not None:
                    timeout = min(timeout, next_retry)
                getter = asyncio.ensure_future(sub.queue.get())
                waker = asyncio.ensure_future(self._wake.event.wait())
                try:
                    await asyncio.wait(
                        {getter, waker},
                        timeout=max(timeout, 0.0),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    for f in (getter, waker):
                        if not f.done():
                            f.cancel()
                self._wake.event.clear()
                if self.stopping():
                    break
                if getter.done() and not getter.cancelled():
                    changes.append(getter.result())
                gap = self._last_step + self.options.step_gap_s - time.monotonic()
                if gap > 0 and not first and _news(changes) and self._seconds_to_tick() > 0:
                    # The commits meanwhile join this step (a kick ends the wait).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.event.wait(), gap)
                    self._wake.event.clear()
                    if self.stopping():
                        break
                while not sub.queue.empty():
                    changes.append(sub.queue.get_nowait())
                full = sub.overflowed or first
                sub.overflowed = False
                changes = _news(changes)
                tick = first or self._seconds_to_tick() <= 0
                if tick:
                    self._last_tick = time.monotonic()
                first = False
                self._last_step = time.monotonic()
                try:
                    await asyncio.to_thread(self.step, changes, full=full, tick=tick)
                    self.stats.last_error = None
                except FlowdeckError as exc:
                    self.stats.last_error = str(exc)
                    log.warning("alert evaluation failed: %s", exc)
                except Exception as exc:
                    self.stats.last_error = str(exc)
                    log.exception("alert evaluation failed")

    def stopping(self) -> bool:
        return self._stopping

    async def stop(self, task: asyncio.Task[None], grace: float = 10.0) -> None:
        """End the loop after the step under way (a thread cannot be cancelled mid-query)."""
        self._stopping = True
        self.kick()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _seconds_to_tick(self) -> float:
        return max(self._last_tick + self.options.tick_s - time.monotonic(), 0.0)

    def _seconds_to_retry(self) -> float | None:
        try:
            at = self.db.next_attempt()
        except FlowdeckError:
            return None
        if at is None:
            return None
        return max((at - self.clock()).total_seconds(), 0.0) + 0.01

    def close(self) -> None:
        """Stop delivering and close alerting's connections, once a step under way ends."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._step_lock:
            self.db.close()


def _same(before: Alert | None, after: Alert) -> bool:
    """Nothing worth writing changed (a value that moved without changing the summary, such
    as a stale pipeline's age between two ticks, is not)."""
    return (
        before is not None
        and before.state == after.state
        and before.summary == after.summary
        and before.severity == after.severity
        and before.labels == after.labels
        and before.subject == after.subject
        and before.fired_at == after.fired_at
    )


def _writable(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows but nobody sets (so a GET's answer can be PUT back as it is)."""
    return {k: v for k, v in data.items() if k not in ("source", "health", "notifications")}


def _candidate(rule: Rule, s: PipelineState, now: datetime) -> bool:
    """Could the rule's condition hold for this pipeline? (Cheap; exact in evaluate.)"""
    if rule.kind == "stale":
        limit = timedelta(seconds=float(rule.param("max_age")))
        since = s.last_success_at if s.last_success_at is not None else s.last_run_at
        # A pipeline that never succeeded is measured from its first run, which is no later
        # than its last.
        return s.last_success_at is None or now - since > limit
    if rule.kind == "long_running":
        if s.last_status != "RUNNING":
            return False
        if rule.param("factor") is not None:
            return True
        return now - s.last_run_at > timedelta(seconds=float(rule.param("max_duration")))
    return True


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def alert_payload(a: Alert, base: str) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "status": a.state if a.state == FIRING else "resolved",
        "rule": a.rule,
        "kind": a.kind,
        "severity": a.severity,
        "summary": a.summary,
        "labels": dict(a.labels),
        "subject": dict(a.subject),
        "value": a.value,
        "active_since": a.active_since,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
        "acknowledged_by": a.acknowledged_by,
        "url": f"{base}/alerts/{a.fingerprint}",
    }


@asynccontextmanager
async def running(
    settings: Settings, store: Store, bus: EventBus, clock: Clock
) -> AsyncIterator[AlertService | None]:
    """Alerting for the life of the app: the alerts file loaded (refused by name when
    invalid), the background loop started, and both stopped on exit."""
    file = load_alerts_file(settings.alerts_file) if settings.alerts_file else None
    if file is not None:
        log.info(
            "alerts file %s: %d channel(s), %d rule(s)",
            file.path,
            len(file.channels),
            len(file.rules),
        )
    if not isinstance(store, SqlStore):
        yield None
        return
    options = AlertOptions(
        public_url=settings.resolved_public_url,
        runbook_url=settings.runbook_url,
        tick_s=settings.alert_tick_seconds,
    )
    service = AlertService(store, clock=clock, options=options, file=file)
    service.announce = bus.publish_alerts
    task = asyncio.create_task(service.run(bus), name="flowdeck-alerts")
    try:
        yield service
    finally:
        await service.stop(task)
        await asyncio.to_thread(service.close)


def _news(changes: list[Change]) -> list[Change]:
    """The changes with something to evaluate: alerting's own news (and resyncs) carry
    nothing."""
    return [c for c in changes if c.seq > 0 and (c.runs or c.batches)]
