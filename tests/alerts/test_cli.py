"""``flowdeck serve --alerts FILE`` as a user meets it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from flowdeck.cli import main


def test_a_bad_alerts_file_is_refused_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - {name: late, kind: stale, max_age: soon}\n")
    db = f"duckdb://{tmp_path / 'f.duckdb'}"
    result = CliRunner().invoke(main, ["serve", "--db", db, "--alerts", str(path)])
    assert result.exit_code == 1
    assert f"Error: alerts file {path} has 1 problem(s):" in result.output
    assert "rule[late].max_age: must be a duration such as 30s, 5m, 4h or 1d" in result.output
    assert not (tmp_path / "f.duckdb").exists()


def test_serve_help_names_the_alerts_option() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--alerts FILE" in result.output
    assert "FLOWDECK_ALERTS_FILE" in result.output
