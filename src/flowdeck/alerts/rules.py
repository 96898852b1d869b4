"""Alert rules and notification channels: what they may say, checked at the edge.

A rule or channel arrives as a plain mapping (JSON body or YAML file) and leaves as a frozen
dataclass, or as :class:`InvalidInput` whose problems name the rule and the field
(``rule[two-failures].n: must be a whole number of at least 1``)."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flowdeck.alerts.matchers import (
    Matcher,
    MatcherError,
    format_duration,
    parse_duration,
    parse_matcher,
)
from flowdeck.errors import FieldProblem, InvalidInput

KINDS: Final = (
    "consecutive_failures",
    "stale",
    "volume_drop",
    "dq_error_rate",
    "batch_health",
    "long_running",
    "slo_burn_rate",
    "incident",
)
# Evaluated on the periodic tick as well as on each change: time alone can make them fire.
TIME_KINDS: Final = frozenset({"stale", "long_running"})
# Evaluated on the periodic tick only, over facts other services give (SLOs, incidents).
FACT_KINDS: Final = frozenset({"slo_burn_rate", "incident"})
# The windows burn rates are measured over (flowdeck.slo), by name.
BURN_WINDOWS: Final[dict[str, float]] = {
    "5m": 300.0,
    "30m": 1800.0,
    "1h": 3600.0,
    "6h": 21600.0,
    "24h": 86400.0,
    "7d": 604800.0,
    "30d": 2592000.0,
}
WINDOW_NAMES: Final[dict[float, str]] = {v: k for k, v in BURN_WINDOWS.items()}
SEVERITIES: Final = ("critical", "error", "warning", "info")
RUN_FIELDS: Final = ("rows_written", "rows_read", "rows_inserted", "rows_updated")
CHANNEL_TYPES: Final = ("webhook", "slack", "email", "pagerduty", "opsgenie", "teams")
TLS_MODES: Final = ("starttls", "ssl", "none")
SECRET_MASK: Final = "********"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")

# Per kind: parameter name → default (None: optional without default).
KIND_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "consecutive_failures": {"n": 2},
    "stale": {"max_age": 4 * 3600.0},
    "volume_drop": {"field": "rows_written", "drop_pct": 30.0, "window": 7},
    "dq_error_rate": {"threshold": 1.0},
    "batch_health": {},
    "long_running": {"max_duration": None, "factor": None},
    # The page half of the SRE workbook's pair; the ticket half is 6 over 6h and 30m.
    "slo_burn_rate": {"slo": "*", "factor": 14.4, "long_window": 3600.0, "short_window": 300.0},
    "incident": {"incident_kind": None},
}
ALL_PARAMS: Final = frozenset(p for params in KIND_PARAMS.values() for p in params)
COMMON_FIELDS: Final = frozenset(
    {
        "name",
        "kind",
        "description",
        "enabled",
        "selector",
        "severity",
        "for",
        "group_by",
        "group_wait",
        "repeat_interval",
        "channels",
        "runbook_url",
        "remediation",
    }
)
DEFAULT_GROUP_WAIT: Final = 30.0
DEFAULT_REPEAT: Final = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class Selector:
    """Which pipelines (or batches) a rule watches. Empty fields match everything."""

    project: str | None = None
    env: str | None = None
    pipeline: str | None = None  # a glob: load_*, *_sales
    labels: tuple[Matcher, ...] = ()

    def matches(self, project: str, env: str, pipeline: str, labels: Mapping[str, str]) -> bool:
        if self.project is not None and project != self.project:
            return False
        if self.env is not None and env != self.env:
            return False
        if self.pipeline is not None and not fnmatch.fnmatchcase(pipeline, self.pipeline):
            return False
        return all(m.matches(labels) for m in self.labels)

    def out(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("project", "env", "pipeline"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        if self.labels:
            out["labels"] = [str(m) for m in self.labels]
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: str
    selector: Selector = field(default_factory=Selector)
    severity: str = "error"
    for_s: float = 0.0
    group_by: tuple[str, ...] = ()
    group_wait_s: float = DEFAULT_GROUP_WAIT
    repeat_interval_s: float = DEFAULT_REPEAT  # 0: never repeat
    channels: tuple[str, ...] = ()
    runbook_url: str | None = None
    remediation: str | None = None
    description: str | None = None
    enabled: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    source: str = "api"  # or "file": read-only through the API

    def param(self, name: str) -> Any:
        return self.params.get(name)

    def out(self) -> dict[str, Any]:
        """The rule as the API shows it and the store keeps it (durations as text)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "enabled": self.enabled,
            "selector": self.selector.out(),
            "severity": self.severity,
            "for": format_duration(self.for_s),
            "group_by": list(self.group_by),
            "group_wait": format_duration(self.group_wait_s),
            "repeat_interval": format_duration(self.repeat_interval_s),
            "channels": list(self.channels),
            "runbook_url": self.runbook_url,
            "remediation": self.remediation,
        }
        for name, value in self.params.items():
            if value is None:
                continue
            if name in ("long_window", "short_window"):
                out[name] = WINDOW_NAMES.get(value) or format_duration(value)
            elif name in ("max_age", "max_duration"):
                out[name] = format_duration(value)
            else:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str
    config: Mapping[str, Any]
    send_resolved: bool = True
    timeout_s: float = 10.0
    max_attempts: int = 6
    source: str = "api"

    def out(self, *, reveal: bool = False) -> dict[str, Any]:
        """Secrets are write-only: shown masked unless ``reveal`` (storage)."""
        config = dict(self.config)
        if not reveal:
            for key in SECRET_KEYS[self.type]:
                if config.get(key):
                    config[key] = SECRET_MASK
        return {
            "name": self.name,
            "type": self.type,
            **config,
            "send_resolved": self.send_resolved,
            "timeout": format_duration(self.timeout_s),
            "max_attempts": self.max_attempts,
        }


# Fields never shown back (Slack and Teams webhook URLs are credentials themselves).
SECRET_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "webhook": ("secret",),
    "slack": ("url",),
    "teams": ("url",),
    "email": ("password",),
    "pagerduty": ("routing_key",),
    "opsgenie": ("api_key",),
}


class _Checker:
    """Collects every problem of one object, each located under ``where``."""

    def __init__(self, where: str, data: Mapping[str, Any]) -> None:
        self.where = where
        self.data = data
        self.problems: list[FieldProblem] = []

    def fail(self, name: str, msg: str) -> None:
        self.problems.append(FieldProblem(f"{self.where}.{name}" if name else self.where, msg))

    def get(self, name: str, default: Any = None) -> Any:
        value = self.data.get(name)
        return default if value is None else value

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> Any:
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(name, "must be a non-empty string")
            return default
        if len(value) > 10_000:
            self.fail(name, "must be at most 10,000 characters")
            return default
        return value

    def duration(self, name: str, default: float | None, *, positive: bool = False) -> Any:
        raw = self.data.get(name)
        if raw is None:
            return default
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            self.fail(name, str(exc))
            return default
        if positive and seconds <= 0:
            self.fail(name, "must be longer than 0s")
        return seconds

    def number(
        self, name: str, default: Any, *, low: float, high: float, whole: bool = False
    ) -> Any:
        raw: Any = self.data.get(name)
        if raw is None:
            return default
        if isinstance(raw, str) and raw.strip().endswith("%") and not whole:
            with contextlib.suppress(ValueError):
                raw = float(raw.strip()[:-1])
        kind = "a whole number" if whole else "a number"
        ok = (
            isinstance(raw, int)
            if whole
            else isinstance(raw, int | float) and raw == raw and abs(raw) != float("inf")
        )
        if isinstance(raw, bool) or not ok:
            self.fail(name, f"must be {kind}")
            return default
        if not low <= raw <= high:
            self.fail(name, f"must be {kind} from {low:g} to {high:g}")
            return default
        return int(raw) if whole else float(raw)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.data.get(name)
        if raw is None:
            return default
        if not isinstance(raw, bool):
            self.fail(name, "must be true or false")
            return default
        return raw

    def names(self, name: str) -> tuple[str, ...]:
        raw = self.data.get(name)
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
            self.fail(name, "must be a list of names")
            return ()
        return tuple(dict.fromkeys(raw))

    def url(self, name: str, *, required: bool = False) -> Any:
        value = self.text(name, required=required)
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            self.fail(name, "must be an http:// or https:// URL")
        return value

    def unknown(self, allowed: frozenset[str], why: Callable[[str], str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(str(key), why(str(key)))


def _where(kind: str, data: Mapping[str, Any], index: int | None) -> str:
    name = data.get("name")
    if isinstance(name, str) and name:
        return f"{kind}[{name}]"
    return f"{kind}s[{index}]" if index is not None else kind


def _checker(kind: str, data: Any, index: int | None) -> _Checker:
    """The checker of one rule or channel; InvalidInput at once when it is no mapping."""
    if not isinstance(data, Mapping):
        where = f"{kind}s[{index}]" if index is not None else kind
        raise InvalidInput([FieldProblem(where, "must be an object")])
    return _Checker(_where(kind, data, index), data)


def _name(c: _Checker) -> str:
    name = c.text("name", required=True, default="")
    if name and not _NAME.match(name):
        c.fail(
            "name",
            "must start with a letter or digit and use only letters, digits, '_', '.' "
            "or '-' (at most 100 characters)",
        )
    return str(name)


def parse_rule(
    data: Any,
    *,
    index: int | None = None,
    source: str = "api",
    channels: Callable[[str], bool] | None = None,
) -> Rule:
    """A rule from its mapping, or InvalidInput naming each bad field. ``channels`` tells
    whether a channel name exists (unchecked when None)."""
    c = _checker("rule", data, index)
    name = _name(c)
    kind = data.get("kind")
    if kind not in KINDS:
        c.fail("kind", f"must be one of {', '.join(KINDS)}")
        raise InvalidInput(c.problems)
    allowed = COMMON_FIELDS | set(KIND_PARAMS[kind])

    def why(key: str) -> str:
        if key in ALL_PARAMS:
            return f"is not a parameter of {kind} rules"
        return "is not a known field"

    c.unknown(frozenset(allowed), why)
    selector = _selector(c, kind)
    severity = c.get("severity", "error")
    if severity not in SEVERITIES:
        c.fail("severity", f"must be one of {', '.join(SEVERITIES)}")
    group_by = c.names("group_by")
    chans = c.names("channels")
    if channels is not None:
        for i, chan in enumerate(chans):
            if not channels(chan):
                c.fail(f"channels[{i}]", f"no channel is named {chan!r}")
    params = _params(c, kind)
    rule = Rule(
        name=name,
        kind=kind,
        selector=selector,
        severity=severity,
        for_s=c.duration("for", 0.0),
        group_by=group_by,
        group_wait_s=c.duration("group_wait", DEFAULT_GROUP_WAIT),
        repeat_interval_s=c.duration("repeat_interval", DEFAULT_REPEAT),
        channels=chans,
        runbook_url=c.url("runbook_url"),
        remediation=c.text("remediation"),
        description=c.text("description"),
        enabled=c.boolean("enabled", True),
        params=params,
        source=source,
    )
    if c.problems:
        raise InvalidInput(c.problems)
    return rule


def _selector(c: _Checker, kind: str) -> Selector:
    raw = c.data.get("selector")
    if raw is None:
        return Selector()
    if not isinstance(raw, Mapping):
        c.fail("selector", "must be an object with project, env, pipeline and labels")
        return Selector()
    sc = _Checker(f"{c.where}.selector", raw)
    fields = {"project", "env", "pipeline", "labels"}
    if kind == "batch_health":
        # A batch has a project and an env; pipelines and labels are its runs'.
        fields = {"project", "env"}
    elif kind == "incident":
        # An incident belongs to a pipeline of a project; its labels are incident_kind,
        # incident_severity and stage.
        fields = {"project", "pipeline", "labels"}
    sc.unknown(
        frozenset(fields),
        lambda k: (
            f"does not apply to {kind} rules"
            if k in ("pipeline", "labels", "env")
            else "is not a known field (project, env, pipeline, labels)"
        ),
    )
    labels: list[Matcher] = []
    raw_labels = raw.get("labels")
    if isinstance(raw_labels, Mapping):
        items: list[Any] = [
            {"name": k, "op": "=", "value": v} if isinstance(v, str) else f"{k}={v!r}"
            for k, v in raw_labels.items()
        ]
    elif isinstance(raw_labels, list):
        items = raw_labels
    elif raw_labels is None:
        items = []
    else:
        sc.fail("labels", "must be a map of label → value or a list of matchers")
        items = []
    for i, item in enumerate(items):
        try:
            labels.append(parse_matcher(item))
        except MatcherError as exc:
            sc.fail(f"labels[{i}]", str(exc))
    selector = Selector(
        project=sc.text("project"),
        env=sc.text("env"),
        pipeline=sc.text("pipeline"),
        labels=tuple(labels),
    )
    c.problems.extend(sc.problems)
    return selector


def _params(c: _Checker, kind: str) -> dict[str, Any]:
    defaults = KIND_PARAMS[kind]
    out: dict[str, Any] = {}
    if kind == "consecutive_failures":
        out["n"] = c.number("n", defaults["n"], low=1, high=1000, whole=True)
    elif kind == "stale":
        out["max_age"] = c.duration("max_age", defaults["max_age"], positive=True)
    elif kind == "volume_drop":
        name = c.text("field", default=defaults["field"])
        if name is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            c.fail(
                "field",
                f"must be {', '.join(RUN_FIELDS)} or a numeric custom_stats key "
                "(letters, digits and '_')",
            )
        out["field"] = name
        out["drop_pct"] = c.number("drop_pct", defaults["drop_pct"], low=0.01, high=100)
        out["window"] = c.number("window", defaults["window"], low=1, high=100, whole=True)
    elif kind == "dq_error_rate":
        out["threshold"] = c.number("threshold", defaults["threshold"], low=0, high=100)
    elif kind == "long_running":
        max_duration = c.duration("max_duration", None, positive=True)
        factor = c.number("factor", None, low=1.01, high=1000)
        if max_duration is None and factor is None and "factor" not in c.data:
            max_duration = 2 * 3600.0
        out["max_duration"] = max_duration
        out["factor"] = factor
    elif kind == "slo_burn_rate":
        out["slo"] = c.text("slo", default=defaults["slo"])
        out["factor"] = c.number("factor", defaults["factor"], low=1, high=1000)
        windows = ", ".join(BURN_WINDOWS)
        for name in ("long_window", "short_window"):
            seconds = c.duration(name, defaults[name])
            if seconds not in WINDOW_NAMES:
                c.fail(name, f"must be one of {windows} (the windows burn rates are measured over)")
                seconds = defaults[name]
            out[name] = seconds
        if out["short_window"] >= out["long_window"] and not any(
            p.loc.endswith("_window") for p in c.problems
        ):
            c.fail("short_window", "must be shorter than long_window")
    elif kind == "incident":
        out["incident_kind"] = c.text("incident_kind")
    return out


def parse_channel(data: Any, *, index: int | None = None, source: str = "api") -> Channel:
    c = _checker("channel", data, index)
    name = _name(c)
    ctype = data.get("type")
    if ctype not in CHANNEL_TYPES:
        c.fail("type", f"must be one of {', '.join(CHANNEL_TYPES)}")
        raise InvalidInput(c.problems)
    common = {"name", "type", "send_resolved", "timeout", "max_attempts"}
    config: dict[str, Any] = {}
    if ctype == "webhook":
        own = {"url", "secret", "headers"}
        config["url"] = c.url("url", required=True)
        config["secret"] = c.text("secret")
        headers = data.get("headers")
        if headers is not None and not (
            isinstance(headers, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            c.fail("headers", "must be a map of header name → text")
            headers = None
        config["headers"] = dict(headers or {})
    elif ctype in ("slack", "teams"):
        own = {"url"}
        config["url"] = c.url("url", required=True)
    elif ctype == "email":
        own = {"host", "port", "tls", "ca_file", "username", "password", "from", "to"}
        config["host"] = c.text("host", required=True)
        tls = c.get("tls", "starttls")
        if tls not in TLS_MODES:
            c.fail("tls", f"must be one of {', '.join(TLS_MODES)}")
            tls = "starttls"
        config["tls"] = tls
        # A CA bundle (PEM) to trust instead of the system's: a private CA, a self-signed
        # relay. Read at each delivery, so a renewed file needs no restart.
        ca_file = c.text("ca_file")
        if ca_file is not None and tls == "none":
            c.fail("ca_file", "needs tls: starttls or ssl")
        elif ca_file is not None and not os.access(ca_file, os.R_OK):
            c.fail("ca_file", f"no readable file {ca_file!r}")
        config["ca_file"] = ca_file
        port = {"ssl": 465, "starttls": 587, "none": 25}[tls]
        config["port"] = c.number("port", port, low=1, high=65535, whole=True)
        config["username"] = c.text("username")
        config["password"] = c.text("password")
        if (config["username"] is None) != (config["password"] is None):
            c.fail("password", "username and password go together")
        sender = c.text("from", required=True)
        if sender is not None and "@" not in sender:
            c.fail("from", "must be an e-mail address")
        config["from"] = sender
        to = c.names("to")
        if data.get("to") is None:
            c.fail("to", "is required (one address or a list)")
        for i, address in enumerate(to):
            if "@" not in address:
                c.fail(f"to[{i}]", "must be an e-mail address")
        config["to"] = list(to)
    elif ctype == "pagerduty":
        own = {"routing_key", "url"}
        config["routing_key"] = c.text("routing_key", required=True)
        config["url"] = c.url("url") or "https://events.pagerduty.com/v2/enqueue"
    else:  # opsgenie
        own = {"api_key", "url"}
        config["api_key"] = c.text("api_key", required=True)
        config["url"] = c.url("url") or "https://api.opsgenie.com/v2/alerts"
    c.unknown(
        frozenset(common | own),
        lambda k: f"is not a field of {ctype} channels ({', '.join(sorted(own))})",
    )
    channel = Channel(
        name=name,
        type=ctype,
        config=config,
        send_resolved=c.boolean("send_resolved", True),
        timeout_s=c.duration("timeout", 10.0, positive=True),
        max_attempts=c.number("max_attempts", 6, low=1, high=50, whole=True),
        source=source,
    )
    if c.problems:
        raise InvalidInput(c.problems)
    return channel


def keep_secrets(new: Mapping[str, Any], old: Channel | None) -> dict[str, Any]:
    """A channel sent back with its masked secrets keeps the stored ones."""
    data = dict(new)
    if old is None or old.type != data.get("type"):
        return data
    for key in SECRET_KEYS[old.type]:
        if data.get(key) == SECRET_MASK:
            data[key] = old.config.get(key)
    return data
