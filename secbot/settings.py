"""SecBot settings: one pydantic-settings model that holds every default (DESIGN.md §4).

Environment variables win over the optional YAML file (``--config``), which wins over the
defaults below. Secrets are ``SecretStr`` so they never show in ``repr`` or logs. Nothing here
reads the environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class SettingsError(Exception):
    """Settings could not be loaded; the message names the variable and the value's problem."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every knob SecBot has, with its default. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
        env_ignore_empty=True,
    )

    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field(
        "https://slack.com/api/", validation_alias=_env("SECBOT_SLACK_API_URL")
    )
    siem: Literal["elastic", "embedded"] = Field("elastic", validation_alias=_env("SECBOT_SIEM"))
    elasticsearch_url: str | None = Field(None, validation_alias=_env("SECBOT_ELASTICSEARCH_URL"))
    elasticsearch_api_key: SecretStr | None = Field(
        None, validation_alias=_env("SECBOT_ELASTICSEARCH_API_KEY")
    )
    kibana_url: str | None = Field(None, validation_alias=_env("SECBOT_KIBANA_URL"))
    kibana_space: str = Field("default", validation_alias=_env("SECBOT_KIBANA_SPACE"))
    kibana_api_key: SecretStr | None = Field(None, validation_alias=_env("SECBOT_KIBANA_API_KEY"))
    alerts_index: str = Field(
        ".alerts-security.alerts-default", validation_alias=_env("SECBOT_ALERTS_INDEX")
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("SECBOT_REDIS_URL"))
    redis_prefix: str = Field("secbot:", validation_alias=_env("SECBOT_REDIS_PREFIX"))
    rules_dir: Path = Field(Path("rules"), validation_alias=_env("SECBOT_RULES_DIR"))
    poll_interval: float = Field(2.0, gt=0, validation_alias=_env("SECBOT_POLL_INTERVAL"))
    poll_overlap: float = Field(300.0, ge=0, validation_alias=_env("SECBOT_POLL_OVERLAP"))
    poll_page_size: int = Field(500, ge=1, le=10_000, validation_alias=_env("SECBOT_POLL_PAGE_SIZE"))
    default_channel: str | None = Field(None, validation_alias=_env("SECBOT_DEFAULT_CHANNEL"))
    triagers: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias=_env("SECBOT_TRIAGERS"))
    gcp_endpoint: str | None = Field(None, validation_alias=_env("SECBOT_GCP_ENDPOINT"))
    http_port: int = Field(8080, ge=0, le=65535, validation_alias=_env("SECBOT_HTTP_PORT"))
    embedded_db: Path = Field(
        Path("secbot-embedded.sqlite3"), validation_alias=_env("SECBOT_EMBEDDED_DB")
    )
    enrich_timeout: float = Field(5.0, gt=0, validation_alias=_env("SECBOT_ENRICH_TIMEOUT"))
    expression_timeout: float = Field(
        0.25, gt=0, validation_alias=_env("SECBOT_EXPRESSION_TIMEOUT")
    )
    alert_ttl: int = Field(30 * 86400, gt=0, validation_alias=_env("SECBOT_ALERT_TTL"))

    @field_validator("triagers", mode="before")
    @classmethod
    def _split_triagers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("triagers")
    @classmethod
    def _check_triagers(cls, value: list[str]) -> list[str]:
        for item in value:
            if item[:1] not in ("U", "W", "S"):
                raise ValueError(f"{item!r} is not a Slack user id (U…/W…) or user-group id (S…)")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins base_url + method name, so the slash is required.
        return value if value.endswith("/") else value + "/"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Env first, then explicit values (the YAML file, passed as init kwargs), then defaults.
        return env_settings, init_settings


_FIELD_TO_ENV = {
    name: (field.validation_alias.choices[0] if isinstance(field.validation_alias, AliasChoices)
           else name.upper())
    for name, field in Settings.model_fields.items()
}


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return str(_FIELD_TO_ENV.get(field, field))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: settings file must be a mapping of names to values")
    # Accept both field names (poll_interval) and variable names (SECBOT_POLL_INTERVAL).
    by_env = {env.lower(): name for name, env in _FIELD_TO_ENV.items()}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = by_env.get(str(key).lower(), str(key).lower())
        out[name] = value
    return out


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment, ``config`` (YAML) and ``overrides``.

    Raises :class:`SettingsError` with one line per problem, each naming the variable.
    """
    values: dict[str, Any] = _read_yaml(config) if config else {}
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            field = loc[0] if loc else "?"
            name = env_name(field) if field in _FIELD_TO_ENV else field
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            if field in ("slack_bot_token", "slack_app_token") or "api_key" in field:
                shown = ""
            problems.append(f"{name}: {err['msg']}{shown}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from exc


__all__ = ["Settings", "SettingsError", "env_name", "load_settings"]
