"""Settings: env over file over defaults; bad values named by their variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from secbot.runtime.settings import SettingsError, load_settings


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
