"""Settings: env over file over defaults; bad values named by their variable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from secbot.runtime.settings import Settings, SettingsError, env_name, load_settings


def test_defaults_follow_the_design_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECBOT_SIEM", "SECBOT_POLL_INTERVAL", "SECBOT_TRIAGERS", "SECBOT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.siem == "elastic"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.alerts_index == ".alerts-security.alerts-default"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.poll_interval == 2.0
    assert settings.poll_overlap == 300.0
    assert settings.kibana_space == "default"
    assert settings.triagers == []
    assert settings.http_port == 8080


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "secbot.yaml"
    config.write_text("SECBOT_POLL_INTERVAL: 9\ndefault_channel: C0FILE\nSECBOT_TRIAGERS: U1,S2\n")
    monkeypatch.setenv("SECBOT_POLL_INTERVAL", "0.5")
    settings = load_settings(config)
    assert settings.poll_interval == 0.5
    assert settings.default_channel == "C0FILE"
    assert settings.triagers == ["U1", "S2"]


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    settings = load_settings()
    assert "xoxb-very-secret" not in repr(settings)
    assert "xoxb-very-secret" not in str(settings.model_dump())
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-very-secret"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECBOT_POLL_INTERVAL", "soon")
    with pytest.raises(SettingsError, match="SECBOT_POLL_INTERVAL"):
        load_settings()


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "secbot.yaml"
    config.write_text("poll_intervall: 3\n")
    with pytest.raises(SettingsError, match="poll_intervall"):
        load_settings(config)


def test_cli_exits_2_on_invalid_settings(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SECBOT_TRIAGERS": "bob", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "secbot", "run"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "SECBOT_TRIAGERS" in result.stderr and "'bob'" in result.stderr


def test_a_misspelt_secret_in_the_file_is_named_but_never_echoed(tmp_path: Path) -> None:
    config = tmp_path / "secbot.yaml"
    config.write_text("SLACK_BOT_TOKN: xoxb-leaked-if-echoed\nSECBOT_PAGERDUTY_TOKN: pd-secret\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "SLACK_BOT_TOKN" in message and "SECBOT_PAGERDUTY_TOKN" in message
    assert "xoxb-leaked-if-echoed" not in message and "pd-secret" not in message


def test_broken_yaml_is_reported_without_quoting_the_line(tmp_path: Path) -> None:
    config = tmp_path / "secbot.yaml"
    config.write_text('SLACK_BOT_TOKEN: "xoxb-half-quoted\n  other: [\n')
    with pytest.raises(SettingsError, match="invalid YAML") as caught:
        load_settings(config)
    assert "xoxb-half-quoted" not in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "absent.yaml")


def test_file_keys_may_be_field_or_variable_names_in_any_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SECBOT_KIBANA_SPACE", raising=False)
    config = tmp_path / "secbot.yaml"
    config.write_text("slack_bot_token: xoxb-file\nSecbot_Kibana_Space: sec\n")
    settings = load_settings(config)
    assert settings.kibana_space == "sec"
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-file"


def test_every_variable_in_the_readme_settings_table_sets_its_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`((?:SECBOT|SLACK)_[A-Z_]+)`", table))
    assert {"SLACK_BOT_TOKEN", "SECBOT_POLL_INTERVAL", "SECBOT_ALERT_TTL"} <= names
    fields = {env_name(field): field for field in Settings.model_fields}
    assert names <= set(fields), f"not settable: {sorted(names - set(fields))}"
    # And the environment really reaches the field under that name.
    samples = {"SLACK_BOT_TOKEN": "xoxb-t", "SECBOT_POLL_INTERVAL": "7", "SECBOT_SIEM": "embedded"}
    for name, value in samples.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.poll_interval == 7.0 and settings.siem == "embedded"
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-t"

