"""Alerting as code: channels and rules from a YAML file read at start.

``${NAME}`` in any string value is replaced by the environment variable NAME (``$$`` is a
literal ``$``), after the YAML is parsed, so a secret's characters never change its
structure. A variable that is not set is an error naming it and the field."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flowdeck.alerts.rules import Channel, Rule, parse_channel, parse_rule
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class AlertsFile:
    path: str
    channels: tuple[Channel, ...] = ()
    rules: tuple[Rule, ...] = ()


class AlertsFileError(FlowdeckError):
    """The alerts file cannot be used; the message names the file and the field."""


def expand(value: Any, env: Mapping[str, str], where: str, problems: list[FieldProblem]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1)
            if name not in env:
                problems.append(FieldProblem(where, f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand(v, env, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: expand(v, env, f"{where}.{k}", problems) for k, v in value.items()}
    return value


def load_alerts_file(path: str | Path, env: Mapping[str, str] | None = None) -> AlertsFile:
    """Read, expand and validate the file; raises AlertsFileError listing every problem."""
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertsFileError(f"alerts file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AlertsFileError(f"alerts file {path}: not valid YAML: {exc}") from None
    if data is None:
        return AlertsFile(str(path))
    if not isinstance(data, Mapping):
        raise AlertsFileError(f"alerts file {path}: must be a map with 'channels' and 'rules'")
    problems: list[FieldProblem] = []
    for key in data:
        if key not in ("channels", "rules"):
            problems.append(FieldProblem(str(key), "is not a known section (channels, rules)"))
    sections: dict[str, list[Any]] = {}
    for key in ("channels", "rules"):
        raw = data.get(key) or []
        if not isinstance(raw, list):
            problems.append(FieldProblem(key, "must be a list"))
            raw = []
        sections[key] = raw

    channels: list[Channel] = []
    for i, item in enumerate(sections["channels"]):
        where = f"channels[{i}]"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            where = f"channel[{item['name']}]"
        item = expand(item, env, where, problems)
        try:
            channels.append(parse_channel(item, index=i, source="file"))
        except InvalidInput as exc:
            problems.extend(exc.problems)
    names = {c.name for c in channels}
    rules: list[Rule] = []
    for i, item in enumerate(sections["rules"]):
        where = f"rules[{i}]"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            where = f"rule[{item['name']}]"
        item = expand(item, env, where, problems)
        try:
            # Channels named by file rules must be in the file: the file stands on its own.
            rules.append(parse_rule(item, index=i, source="file", channels=names.__contains__))
        except InvalidInput as exc:
            problems.extend(exc.problems)
    for kind, key in (("channel", "channels"), ("rule", "rules")):
        seen: set[str] = set()
        for item in sections[key]:
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(name, str) and name in seen:
                problems.append(FieldProblem(f"{kind}[{name}].name", "is defined twice"))
            seen.add(str(name))
    if problems:
        listed = "\n  ".join(str(p) for p in problems)
        raise AlertsFileError(f"alerts file {path} has {len(problems)} problem(s):\n  {listed}")
    return AlertsFile(str(path), tuple(channels), tuple(rules))
