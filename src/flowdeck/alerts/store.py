"""Where alerting keeps its rules, channels, alerts, history, silences and notifications.

The tables are schema version 2. Reads go through the run store's readers. Writes go through
a connection of alerting's own, so they never queue behind (or hold up) the run writer:
on DuckDB a second cursor of the one connection that owns the file (DuckDB runs its
transactions concurrently, and alerting never writes a table the run writer writes); on
PostgreSQL a connection of its own. A lock keeps alerting's own writes one at a time.

With PostgreSQL, :meth:`AlertStore.try_lead` takes a session advisory lock: only the
replica holding it evaluates and notifies, so nothing is announced twice.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from flowdeck.alerts.dispatch import Silence
from flowdeck.alerts.engine import FIRING, PENDING, Alert, Transition
from flowdeck.alerts.matchers import parse_matcher
from flowdeck.alerts.rules import Channel, Rule, parse_channel, parse_rule
from flowdeck.errors import NotFound, StoreUnavailable
from flowdeck.pipelines import PipelineKey, PipelineState
from flowdeck.runs import RunRecord
from flowdeck.store.deferred import lay_over
from flowdeck.store.sql import Cursor, SqlStore

_LEAD_LOCK: Final = 0x616C7274  # "alrt"
ALERT_COLUMNS: Final = tuple(Alert.__dataclass_fields__)
_ALERT_JSON: Final = frozenset({"labels", "subject"})
_CHUNK: Final = 200
_ROWS_PER_STATEMENT: Final = 100


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value if value is not None else {}


def _dump(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()


_SEQ = itertools.count()


def new_id() -> str:
    """Unique, and in the order made (history and notifications sort by it on ties)."""
    return f"{time.time_ns():019d}{next(_SEQ) % 1_000_000:06d}{uuid.uuid4().hex[:7]}"


def alert_from_row(row: Sequence[Any]) -> Alert:
    values = dict(zip(ALERT_COLUMNS, row, strict=True))
    for name in _ALERT_JSON:
        values[name] = _json(values[name])
    values["episode"] = int(values["episode"])
    return Alert(**values)


def _alert_params(alert: Alert) -> dict[str, Any]:
    params = {name: getattr(alert, name) for name in ALERT_COLUMNS}
    for name in _ALERT_JSON:
        params[name] = _dump(dict(params[name]))
    return params


def blank_health() -> dict[str, Any]:
    """A channel's health before any delivery was attempted."""
    return {
        "last_success_at": None,
        "last_failure_at": None,
        "last_error": None,
        "failures_since_success": 0,
    }


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    channel: str
    rule: str
    group_key: str
    kind: str  # firing, resolved or test
    status: str  # pending, sent or failed
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    read_at: datetime | None

    def out(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "rule": self.rule,
            "group_key": self.group_key,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "sent_at": self.sent_at,
            "last_error": self.last_error,
            "read": self.read_at is not None,
            "payload": self.payload,
        }


NOTIFICATION_COLUMNS: Final = tuple(Notification.__dataclass_fields__)


def _notification(row: Sequence[Any]) -> Notification:
    values = dict(zip(NOTIFICATION_COLUMNS, row, strict=True))
    values["payload"] = _json(values["payload"])
    values["attempts"] = int(values["attempts"])
    return Notification(**values)


@dataclass(frozen=True, slots=True)
class Delivery:
    notification_id: str
    attempt: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float

    def out(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "at": self.at,
            "ok": self.ok,
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }


class AlertStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._side: Any = None  # DuckDB cursor or psycopg connection, opened on first write
        self._lead_conn: Any = None

    # -- connections -------------------------------------------------------------------
    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store._q(cur, query, params)

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self.store.reader() as cur:
            yield cur

    def _rows(self, query: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        with self._read() as cur:
            self._q(cur, query, params)
            return list(cur.fetchall())

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        """One short transaction of alerting's own, committed on exit."""
        with self._lock:
            if self.store.backend == "duckdb":
                yield from self._duck_tx()
            else:
                yield from self._pg_tx()

    def _duck_tx(self) -> Iterator[Cursor]:
        import duckdb

        if self._side is None:
            # A second cursor of the store's connection (see the module docstring).
            self._side = self.store._db.cursor()  # type: ignore[attr-defined]
        cur = self._side
        try:
            cur.execute("BEGIN TRANSACTION")
        except duckdb.Error as exc:
            raise StoreUnavailable(f"duckdb: {exc}") from exc
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        try:
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            raise StoreUnavailable(f"duckdb commit failed: {exc}") from exc

    def _pg_tx(self) -> Iterator[Cursor]:
        import psycopg

        from flowdeck.store.postgres import conninfo_from_url

        try:
            if self._side is None or self._side.closed or self._side.broken:
                self._side = psycopg.connect(
                    conninfo_from_url(self.store.url), options="-c timezone=UTC"
                )
            with self._side.transaction(), self._side.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    def try_lead(self) -> bool:
        """True when this process may evaluate and notify: always on DuckDB (one process
        owns the file); on PostgreSQL while this replica holds the alerting lock."""
        if self.store.backend == "duckdb":
            return True
        import psycopg

        from flowdeck.store.postgres import conninfo_from_url

        conn = self._lead_conn
        try:
            if conn is not None and not conn.closed and not conn.broken:
                conn.execute("SELECT 1")
                return True
            conn = psycopg.connect(conninfo_from_url(self.store.url), autocommit=True)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LEAD_LOCK,)).fetchone()
        except psycopg.Error:
            self._lead_conn = None
            return False
        if row is not None and row[0]:
            self._lead_conn = conn
            return True
        conn.close()
        return False

    def close(self) -> None:
        with self._lock:
            for conn in (self._side, self._lead_conn):
                if conn is not None:
                    conn.close()
            self._side = self._lead_conn = None

    # -- rules and channels ------------------------------------------------------------
    def list_rules(self) -> list[Rule]:
        rows = self._rows("SELECT spec FROM alert_rules ORDER BY name")
        return [parse_rule(_json(spec)) for (spec,) in rows]

    def list_channels(self) -> list[Channel]:
        rows = self._rows("SELECT spec FROM alert_channels ORDER BY name")
        return [parse_channel(_json(spec)) for (spec,) in rows]

    def put_rule(self, rule: Rule, now: datetime) -> bool:
        """Create or replace; True when created."""
        return self._put("alert_rules", rule.name, rule.out(), now)

    def put_channel(self, channel: Channel, now: datetime) -> bool:
        return self._put("alert_channels", channel.name, channel.out(reveal=True), now)

    def _put(self, table: str, name: str, spec: Mapping[str, Any], now: datetime) -> bool:
        with self.tx() as cur:
            self._q(cur, f"SELECT 1 FROM {table} WHERE name = :n", {"n": name})
            exists = bool(cur.fetchall())
            params = {"n": name, "spec": _dump(spec), "now": now}
            if exists:
                self._q(
                    cur,
                    f"UPDATE {table} SET spec = :spec, updated_at = :now WHERE name = :n",
                    params,
                )
            else:
                self._q(
                    cur,
                    f"INSERT INTO {table} (name, spec, created_at, updated_at) "
                    "VALUES (:n, :spec, :now, :now)",
                    params,
                )
        return not exists

    def delete_rule(self, name: str) -> None:
        """Remove a rule and its current alerts (their history stays)."""
        with self.tx() as cur:
            self._delete(cur, "alert_rules", "alert rule", name)
            self._q(cur, "DELETE FROM alerts WHERE rule = :n", {"n": name})

    def delete_channel(self, name: str) -> None:
        with self.tx() as cur:
            self._delete(cur, "alert_channels", "channel", name)

    def _delete(self, cur: Cursor, table: str, what: str, name: str) -> None:
        """Delete the row ``name`` of ``table`` (one of ours, never client text); NotFound
        names it as ``what`` when there is none."""
        self._q(cur, f"SELECT 1 FROM {table} WHERE name = :n", {"n": name})
        if not cur.fetchall():
            raise NotFound(what, name)
        self._q(cur, f"DELETE FROM {table} WHERE name = :n", {"n": name})

    # -- alerts ------------------------------------------------------------------------
    _SELECT_ALERTS: Final = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"

    def alerts(
        self,
        states: Sequence[str] = (),
        rule: str | None = None,
        fingerprints: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if states:
            names = [f"s{i}" for i in range(len(states))]
            where.append(f"state IN ({', '.join(':' + n for n in names)})")
            params.update(zip(names, states, strict=True))
        if rule is not None:
            where.append("rule = :rule")
            params["rule"] = rule
        tail = " ORDER BY coalesce(fired_at, active_since, evaluated_at) DESC, fingerprint"
        if limit is not None:
            tail += " LIMIT :limit"
            params["limit"] = limit
        if fingerprints is None:
            query = self._SELECT_ALERTS + (" WHERE " + " AND ".join(where) if where else "")
            return [alert_from_row(r) for r in self._rows(query + tail, params)]
        out: list[Alert] = []
        fps = list(fingerprints)
        for start in range(0, len(fps), _CHUNK):
            chunk = fps[start : start + _CHUNK]
            names = [f"f{i}" for i in range(len(chunk))]
            clause = f"fingerprint IN ({', '.join(':' + n for n in names)})"
            query = self._SELECT_ALERTS + " WHERE " + " AND ".join([*where, clause])
            rows = self._rows(query, {**params, **dict(zip(names, chunk, strict=True))})
            out.extend(alert_from_row(r) for r in rows)
        return out

    def get_alert(self, fp: str) -> Alert:
        found = self.alerts(fingerprints=[fp])
        if not found:
            raise NotFound("alert", fp)
        return found[0]

    def active_alerts(self) -> list[Alert]:
        """Pending and firing alerts, and resolved ones still owed a message."""
        rows = self._rows(
            self._SELECT_ALERTS + " WHERE state IN (:p, :f) OR (notified = :f AND state <> :f)",
            {"p": PENDING, "f": FIRING},
        )
        return [alert_from_row(r) for r in rows]

    def save(self, transitions: Sequence[Transition], now: datetime) -> None:
        """Upsert the alerts; each change of state also goes to the history."""
        if not transitions:
            return
        latest = {t.alert.fingerprint: t for t in transitions}  # one row per alert
        columns = ", ".join(ALERT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in ALERT_COLUMNS if c != "fingerprint")
        changed = [t for t in transitions if t.before != t.alert.state]
        with self.tx() as cur:
            # Many rows per statement: one statement per row costs milliseconds on DuckDB.
            rows = list(latest.values())
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start : start + _ROWS_PER_STATEMENT]
                params: dict[str, Any] = {}
                tuples = []
                for i, t in enumerate(chunk):
                    own = _alert_params(t.alert)
                    params.update({f"{c}_{i}": own[c] for c in ALERT_COLUMNS})
                    tuples.append("(" + ", ".join(f":{c}_{i}" for c in ALERT_COLUMNS) + ")")
                self._q(
                    cur,
                    f"INSERT INTO alerts ({columns}) VALUES {', '.join(tuples)} "
                    f"ON CONFLICT (fingerprint) DO UPDATE SET {updates}",
                    params,
                )
            for start in range(0, len(changed), _ROWS_PER_STATEMENT):
                self._histories(
                    cur,
                    [
                        (t.alert, t.before, t.alert.state, "")
                        for t in changed[start : start + _ROWS_PER_STATEMENT]
                    ],
                    now,
                )

    def _histories(
        self, cur: Cursor, items: Sequence[tuple[Alert, str, str, str]], now: datetime
    ) -> None:
        """Append (alert, state before, state after, note) to the history."""
        names = (
            "id",
            "fp",
            "rule",
            "at",
            "before",
            "after",
            "labels",
            "value",
            "summary",
            "episode",
            "note",
        )
        params: dict[str, Any] = {}
        tuples = []
        for i, (alert, before, after, note) in enumerate(items):
            values = (
                new_id(),
                alert.fingerprint,
                alert.rule,
                now,
                before,
                after,
                _dump(dict(alert.labels)),
                alert.value,
                alert.summary,
                alert.episode,
                note,
            )
            params.update({f"{n}_{i}": v for n, v in zip(names, values, strict=True)})
            tuples.append("(" + ", ".join(f":{n}_{i}" for n in names) + ")")
        self._q(
            cur,
            "INSERT INTO alert_history (id, fingerprint, rule, changed_at, from_state, to_state, "
            f"labels, value, summary, episode, note) VALUES {', '.join(tuples)}",
            params,
        )

    def history(self, fingerprint: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where = "WHERE fingerprint = :fp" if fingerprint is not None else ""
        rows = self._rows(
            "SELECT fingerprint, rule, changed_at, from_state, to_state, labels, value, summary, "
            f"episode, note FROM alert_history {where} ORDER BY changed_at DESC, id DESC "
            "LIMIT :limit",
            {"fp": fingerprint, "limit": limit} if fingerprint else {"limit": limit},
        )
        keys = ("fingerprint", "rule", "at", "from", "to", "labels", "value", "summary")
        out = []
        for row in rows:
            item = dict(zip(keys, row[:8], strict=True))
            item["labels"] = _json(item["labels"])
            item["episode"] = int(row[8])
            item["note"] = row[9] or None
            out.append(item)
        return out

    def acknowledge(self, fp: str, by: str, comment: str | None, now: datetime) -> Alert:
        with self.tx() as cur:
            self._q(cur, self._SELECT_ALERTS + " WHERE fingerprint = :fp", {"fp": fp})
            rows = cur.fetchall()
            if not rows:
                raise NotFound("alert", fp)
            alert = alert_from_row(rows[0])
            self._q(
                cur,
                "UPDATE alerts SET acknowledged_at = :now, acknowledged_by = :by, "
                "ack_comment = :comment WHERE fingerprint = :fp",
                {"now": now, "by": by, "comment": comment, "fp": fp},
            )
            note = f"acknowledged by {by}" + (f": {comment}" if comment else "")
            self._histories(cur, [(alert, alert.state, alert.state, note)], now)
        return self.get_alert(fp)

    # -- silences ----------------------------------------------------------------------
    _SILENCE_COLUMNS: Final = "id, matchers, starts_at, ends_at, author, comment, created_at"

    def _silence(self, row: Sequence[Any]) -> Silence:
        matchers = tuple(parse_matcher(m) for m in _json(row[1]))
        return Silence(row[0], matchers, row[2], row[3], row[4], row[5], row[6])

    def silences(self, since: datetime | None = None) -> list[Silence]:
        """Every silence, or those not yet ended at ``since``."""
        where = " WHERE ends_at > :since" if since is not None else ""
        rows = self._rows(
            f"SELECT {self._SILENCE_COLUMNS} FROM silences{where} ORDER BY starts_at DESC, id",
            {"since": since} if since is not None else None,
        )
        return [self._silence(r) for r in rows]

    def get_silence(self, sid: str) -> Silence:
        rows = self._rows(
            f"SELECT {self._SILENCE_COLUMNS} FROM silences WHERE id = :id", {"id": sid}
        )
        if not rows:
            raise NotFound("silence", sid)
        return self._silence(rows[0])

    def add_silence(self, silence: Silence) -> None:
        with self.tx() as cur:
            self._q(
                cur,
                f"INSERT INTO silences ({self._SILENCE_COLUMNS}) VALUES "
                "(:id, :matchers, :starts_at, :ends_at, :author, :comment, :created_at)",
                {
                    "id": silence.id,
                    "matchers": _dump([m.out() for m in silence.matchers]),
                    "starts_at": silence.starts_at,
                    "ends_at": silence.ends_at,
                    "author": silence.author,
                    "comment": silence.comment,
                    "created_at": silence.created_at,
                },
            )

    def expire_silence(self, sid: str, now: datetime) -> Silence:
        silence = self.get_silence(sid)
        if silence.ends_at > now:
            with self.tx() as cur:
                self._q(
                    cur,
                    "UPDATE silences SET ends_at = :now, starts_at = least(starts_at, :now) "
                    "WHERE id = :id",
                    {"now": now, "id": sid},
                )
        return self.get_silence(sid)

    # -- notifications -----------------------------------------------------------------
    _SELECT_NOTIFICATIONS: Final = f"SELECT {', '.join(NOTIFICATION_COLUMNS)} FROM notifications"

    def add_notifications(self, items: Sequence[Notification]) -> None:
        with self.tx() as cur:
            self._insert_notifications(cur, items)

    def commit_dispatch(
        self, items: Sequence[Notification], alerts: Sequence[Alert], now: datetime
    ) -> None:
        """In one transaction: queue the messages and mark their alerts as told, so a crash
        can neither lose a message nor send it twice."""
        if not items and not alerts:
            return
        with self.tx() as cur:
            self._insert_notifications(cur, items)
            for alert in alerts:
                self._q(
                    cur,
                    "UPDATE alerts SET notified = :state, notified_at = :now "
                    "WHERE fingerprint = :fp",
                    {
                        "state": FIRING if alert.state == FIRING else "resolved",
                        "now": now,
                        "fp": alert.fingerprint,
                    },
                )

    def _insert_notifications(self, cur: Cursor, items: Sequence[Notification]) -> None:
        columns = ", ".join(NOTIFICATION_COLUMNS)
        values = ", ".join(f":{c}" for c in NOTIFICATION_COLUMNS)
        for n in items:
            params = {c: getattr(n, c) for c in NOTIFICATION_COLUMNS}
            params["payload"] = _dump(n.payload)
            self._q(cur, f"INSERT INTO notifications ({columns}) VALUES ({values})", params)

    def notifications(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        unread: bool = False,
        due: datetime | None = None,
        limit: int = 100,
    ) -> list[Notification]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if channel is not None:
            where.append("channel = :channel")
            params["channel"] = channel
        if status is not None:
            where.append("status = :status")
            params["status"] = status
        if unread:
            where.append("read_at IS NULL")
        if due is not None:
            where.append("status = 'pending' AND next_attempt_at <= :due")
            params["due"] = due
        query = self._SELECT_NOTIFICATIONS + (" WHERE " + " AND ".join(where) if where else "")
        order = "next_attempt_at, id" if due is not None else "created_at DESC, id"
        return [
            _notification(r) for r in self._rows(f"{query} ORDER BY {order} LIMIT :limit", params)
        ]

    def get_notification(self, nid: str) -> Notification:
        rows = self._rows(self._SELECT_NOTIFICATIONS + " WHERE id = :id", {"id": nid})
        if not rows:
            raise NotFound("notification", nid)
        return _notification(rows[0])

    def next_attempt(self) -> datetime | None:
        rows = self._rows("SELECT min(next_attempt_at) FROM notifications WHERE status = 'pending'")
        value: datetime | None = rows[0][0] if rows else None
        return value

    def record_attempt(
        self, n: Notification, delivery: Delivery, status: str, next_at: datetime | None
    ) -> None:
        with self.tx() as cur:
            self._q(
                cur,
                "INSERT INTO deliveries (notification_id, attempt, attempted_at, ok, status_code, "
                "error, duration_ms) VALUES (:id, :attempt, :at, :ok, :code, :error, :ms)",
                {
                    "id": n.id,
                    "attempt": delivery.attempt,
                    "at": delivery.at,
                    "ok": delivery.ok,
                    "code": delivery.status_code,
                    "error": delivery.error,
                    "ms": delivery.duration_ms,
                },
            )
            self._q(
                cur,
                "UPDATE notifications SET status = :status, attempts = :attempt, "
                "next_attempt_at = :next, last_error = :error, "
                "sent_at = CASE WHEN :ok THEN :at ELSE sent_at END WHERE id = :id",
                {
                    "status": status,
                    "attempt": delivery.attempt,
                    "next": next_at,
                    "error": delivery.error,
                    "ok": delivery.ok,
                    "at": delivery.at,
                    "id": n.id,
                },
            )

    def deliveries(self, nid: str) -> list[Delivery]:
        rows = self._rows(
            "SELECT notification_id, attempt, attempted_at, ok, status_code, error, duration_ms "
            "FROM deliveries WHERE notification_id = :id ORDER BY attempt",
            {"id": nid},
        )
        return [
            Delivery(
                r[0],
                int(r[1]),
                r[2],
                bool(r[3]),
                None if r[4] is None else int(r[4]),
                r[5],
                float(r[6]),
            )
            for r in rows
        ]

    def mark_read(self, ids: Sequence[str] | None, now: datetime) -> int:
        """Mark notifications read (every unread one when ``ids`` is None)."""
        with self.tx() as cur:
            if ids is None:
                self._q(cur, "SELECT count(*) FROM notifications WHERE read_at IS NULL")
                count = int(cur.fetchall()[0][0])
                self._q(
                    cur,
                    "UPDATE notifications SET read_at = :now WHERE read_at IS NULL",
                    {"now": now},
                )
                return count
            count = 0
            for nid in ids:
                self._q(
                    cur,
                    "SELECT count(*) FROM notifications WHERE id = :id AND read_at IS NULL",
                    {"id": nid},
                )
                count += int(cur.fetchall()[0][0])
                self._q(
                    cur,
                    "UPDATE notifications SET read_at = :now WHERE id = :id AND read_at IS NULL",
                    {"now": now, "id": nid},
                )
            return count

    def channel_health(self) -> dict[str, dict[str, Any]]:
        """Per channel: last success, last failure and its error, failures since success."""
        rows = self._rows(
            "SELECT n.channel, d.attempted_at, d.ok, d.error FROM deliveries d "
            "JOIN notifications n ON n.id = d.notification_id "
            "WHERE d.attempted_at >= (SELECT coalesce(max(d2.attempted_at), "
            "'1970-01-01T00:00:00Z') FROM deliveries d2 "
            "JOIN notifications n2 ON n2.id = d2.notification_id "
            "WHERE n2.channel = n.channel AND d2.ok) ORDER BY d.attempted_at"
        )
        out: dict[str, dict[str, Any]] = {}
        for channel, at, ok, error in rows:
            h = out.setdefault(channel, blank_health())
            if ok:
                h["last_success_at"] = at
            else:
                h.update(last_failure_at=at, last_error=error)
                h["failures_since_success"] += 1
        rows = self._rows(
            "SELECT channel, count(*) FILTER (WHERE status = 'pending'), "
            "count(*) FILTER (WHERE status = 'failed') FROM notifications GROUP BY channel"
        )
        for channel, pending, failed in rows:
            h = out.setdefault(channel, blank_health())
            h["pending"] = int(pending)
            h["failed"] = int(failed)
        return out

    # -- what the engine reads ---------------------------------------------------------
    def pipeline_states(self, keys: Sequence[PipelineKey] | None = None) -> list[PipelineState]:
        select = f"SELECT {self.store.pipeline_select} FROM pipelines"
        state = self.store.pipeline_from_row
        pending = self.store.pending_pipelines()  # before the read: see store/deferred.py
        if keys is None:
            return lay_over(pending, [state(r) for r in self._rows(select)])
        out: list[PipelineState] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            clauses, params = [], {}
            for i, (project, pipeline, env) in enumerate(chunk):
                clauses.append(f"(project = :p{i} AND pipeline = :n{i} AND env = :e{i})")
                params.update({f"p{i}": project, f"n{i}": pipeline, f"e{i}": env})
            out.extend(
                state(r) for r in self._rows(f"{select} WHERE {' OR '.join(clauses)}", params)
            )
        return lay_over(pending, out)

    def runs_by_id(self, ids: Sequence[str]) -> dict[str, RunRecord]:
        out: dict[str, RunRecord] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            names = [f"r{i}" for i in range(len(chunk))]
            rows = self._rows(
                f"SELECT {self.store.run_select} FROM runs WHERE run_id IN "
                f"({', '.join(':' + n for n in names)})",
                dict(zip(names, chunk, strict=True)),
            )
            for row in rows:
                record = self.store.run_from_row(row)
                out[record.run_id] = record
        return out

    def recent_successes(self, key: PipelineKey, limit: int) -> list[RunRecord]:
        project, pipeline, env = key
        rows = self._rows(
            f"SELECT {self.store.run_select} FROM runs WHERE project = :p AND pipeline = :n "
            "AND env = :e AND status = 'SUCCESS' ORDER BY sort_at DESC, run_id DESC LIMIT :limit",
            {"p": project, "n": pipeline, "e": env, "limit": limit},
        )
        return [self.store.run_from_row(r) for r in rows]

    def first_run_at(self, key: PipelineKey) -> datetime | None:
        project, pipeline, env = key
        rows = self._rows(
            "SELECT min(sort_at) FROM runs WHERE project = :p AND pipeline = :n AND env = :e",
            {"p": project, "n": pipeline, "e": env},
        )
        value: datetime | None = rows[0][0] if rows else None
        return value
