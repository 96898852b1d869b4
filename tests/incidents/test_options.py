"""The detection settings read from the environment, and their refusals."""

from __future__ import annotations

import pytest

from flowdeck.incidents.service import IncidentOptions


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    options = IncidentOptions.from_env()
    assert (options.tick_s, options.window_s) == (5.0, 60)
    assert (options.detect.hold_s, options.detect.calm_s, options.detect.silent_s) == (
        120.0,
        300.0,
        300.0,
    )
    monkeypatch.setenv("FLOWDECK_INCIDENT_TICK_SECONDS", "0")
    monkeypatch.setenv("FLOWDECK_INCIDENT_HOLD_SECONDS", "30")
    monkeypatch.setenv("FLOWDECK_INCIDENT_CALM_SECONDS", "90.5")
    monkeypatch.setenv("FLOWDECK_INCIDENT_WINDOW_SECONDS", "120")
    options = IncidentOptions.from_env()
    assert (options.tick_s, options.window_s) == (0.0, 120)
    assert (options.detect.hold_s, options.detect.calm_s) == (30.0, 90.5)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "FLOWDECK_INCIDENT_HOLD_SECONDS",
            "2m",
            "FLOWDECK_INCIDENT_HOLD_SECONDS must be a number of seconds, got '2m'",
        ),
        (
            "FLOWDECK_INCIDENT_CALM_SECONDS",
            "0",
            "FLOWDECK_INCIDENT_CALM_SECONDS must be more than 0 seconds, got '0'",
        ),
        (
            "FLOWDECK_INCIDENT_TICK_SECONDS",
            "-1",
            "FLOWDECK_INCIDENT_TICK_SECONDS must be 0 or more seconds, got '-1'",
        ),
    ],
)
def test_bad_settings_stop_the_start_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        IncidentOptions.from_env()
    assert str(stopped.value) == message
