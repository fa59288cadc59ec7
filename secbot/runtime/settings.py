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

from secbot.domain.errors import SecBotError


class SettingsError(SecBotError):
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
    poll_page_size: int = Field(
        500, ge=1, le=10_000, validation_alias=_env("SECBOT_POLL_PAGE_SIZE")
    )
    default_channel: str | None = Field(None, validation_alias=_env("SECBOT_DEFAULT_CHANNEL"))
    triagers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("SECBOT_TRIAGERS")
    )
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

    # Enrichers (docs/enrichers.md). An enricher is built only when its provider is configured.
    enrich_provider_timeout: float = Field(
        4.0, gt=0, validation_alias=_env("SECBOT_ENRICH_PROVIDER_TIMEOUT")
    )
    enrich_retries: int = Field(2, ge=0, le=10, validation_alias=_env("SECBOT_ENRICH_RETRIES"))
    enrich_concurrency: int = Field(
        20, ge=1, le=1000, validation_alias=_env("SECBOT_ENRICH_CONCURRENCY")
    )
    enrich_cache_ttl: int = Field(900, ge=1, validation_alias=_env("SECBOT_ENRICH_CACHE_TTL"))
    enrich_negative_ttl: int = Field(60, ge=1, validation_alias=_env("SECBOT_ENRICH_NEGATIVE_TTL"))
    enrich_local_cache_ttl: float = Field(
        10.0, ge=0, validation_alias=_env("SECBOT_ENRICH_LOCAL_CACHE_TTL")
    )
    enrich_breaker_threshold: int = Field(
        5, ge=1, validation_alias=_env("SECBOT_ENRICH_BREAKER_THRESHOLD")
    )
    enrich_breaker_window: float = Field(
        60.0, gt=0, validation_alias=_env("SECBOT_ENRICH_BREAKER_WINDOW")
    )
    gcp_enabled: bool = Field(False, validation_alias=_env("SECBOT_GCP_ENABLED"))
    gcp_iam_url: str = Field(
        "https://iam.googleapis.com", validation_alias=_env("SECBOT_GCP_IAM_URL")
    )
    gcp_project_fields: str = Field(
        "cloud.project.id,gcp.audit.resource_name",
        validation_alias=_env("SECBOT_GCP_PROJECT_FIELDS"),
    )
    gcp_service_account_fields: str = Field(
        "gcp.audit.resource_name,gcp.audit.request.name,user.email",
        validation_alias=_env("SECBOT_GCP_SERVICE_ACCOUNT_FIELDS"),
    )
    jit_provider: Literal["entitle", "generic"] = Field(
        "entitle", validation_alias=_env("SECBOT_JIT_PROVIDER")
    )
    entitle_url: str | None = Field(None, validation_alias=_env("SECBOT_ENTITLE_URL"))
    entitle_token: SecretStr | None = Field(None, validation_alias=_env("SECBOT_ENTITLE_TOKEN"))
    jit_fields: str = Field("user.email", validation_alias=_env("SECBOT_JIT_FIELDS"))
    jit_cache_ttl: int = Field(60, ge=1, validation_alias=_env("SECBOT_JIT_CACHE_TTL"))
    oncall_provider: Literal["pagerduty", "opsgenie"] = Field(
        "pagerduty", validation_alias=_env("SECBOT_ONCALL_PROVIDER")
    )
    opsgenie_url: str = Field(
        "https://api.opsgenie.com", validation_alias=_env("SECBOT_OPSGENIE_URL")
    )
    opsgenie_key: SecretStr | None = Field(None, validation_alias=_env("SECBOT_OPSGENIE_KEY"))
    pagerduty_url: str = Field(
        "https://api.pagerduty.com", validation_alias=_env("SECBOT_PAGERDUTY_URL")
    )
    pagerduty_token: SecretStr | None = Field(None, validation_alias=_env("SECBOT_PAGERDUTY_TOKEN"))
    oncall_fields: str = Field("user.email", validation_alias=_env("SECBOT_ONCALL_FIELDS"))
    oncall_cache_ttl: int = Field(60, ge=1, validation_alias=_env("SECBOT_ONCALL_CACHE_TTL"))
    hris_url: str | None = Field(None, validation_alias=_env("SECBOT_HRIS_URL"))
    hris_token: SecretStr | None = Field(None, validation_alias=_env("SECBOT_HRIS_TOKEN"))
    hr_fields: str = Field("user.email", validation_alias=_env("SECBOT_HR_FIELDS"))
    hr_alert_prefix: str = Field(
        "enriched_employee", validation_alias=_env("SECBOT_HR_ALERT_PREFIX")
    )
    abuseipdb_url: str = Field(
        "https://api.abuseipdb.com", validation_alias=_env("SECBOT_ABUSEIPDB_URL")
    )
    abuseipdb_key: SecretStr | None = Field(None, validation_alias=_env("SECBOT_ABUSEIPDB_KEY"))
    greynoise_url: str = Field(
        "https://api.greynoise.io", validation_alias=_env("SECBOT_GREYNOISE_URL")
    )
    greynoise_key: SecretStr | None = Field(None, validation_alias=_env("SECBOT_GREYNOISE_KEY"))
    virustotal_url: str = Field(
        "https://www.virustotal.com", validation_alias=_env("SECBOT_VIRUSTOTAL_URL")
    )
    virustotal_key: SecretStr | None = Field(None, validation_alias=_env("SECBOT_VIRUSTOTAL_KEY"))
    threat_intel_fields: str = Field(
        "source.ip,destination.ip,url.domain,dns.question.name,file.hash.sha256",
        validation_alias=_env("SECBOT_THREAT_INTEL_FIELDS"),
    )
    whois_enabled: bool = Field(True, validation_alias=_env("SECBOT_WHOIS_ENABLED"))
    rdap_url: str = Field("https://rdap.org", validation_alias=_env("SECBOT_RDAP_URL"))
    whois_fields: str = Field(
        "url.domain,dns.question.name,destination.domain,source.ip,destination.ip",
        validation_alias=_env("SECBOT_WHOIS_FIELDS"),
    )
    whois_young_days: int = Field(30, ge=0, validation_alias=_env("SECBOT_WHOIS_YOUNG_DAYS"))

    # Slack behaviour -------------------------------------------------------------------
    reactions: dict[str, str] = Field(
        default_factory=lambda: {
            "white_check_mark": "closed:issue_resolved",
            "x": "closed:false_positive",
            "eyes": "acknowledged",
            "arrows_counterclockwise": "open",
        },
        validation_alias=_env("SECBOT_REACTIONS"),
        description='emoji → "status[:closing_reason]" (JSON in the environment)',
    )
    slack_pace: float = Field(1.0, ge=0, validation_alias=_env("SECBOT_SLACK_PACE"))
    lease_ttl: float = Field(15.0, ge=1, validation_alias=_env("SECBOT_LEASE_TTL"))
    flood_threshold: int = Field(20, ge=0, validation_alias=_env("SECBOT_FLOOD_THRESHOLD"))
    auth_log_indices: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["logs-okta.system-*", "logs-google_workspace.login-*"],
        validation_alias=_env("SECBOT_AUTH_LOG_INDICES"),
    )
    locate_lookback_days: int = Field(
        7, ge=1, le=90, validation_alias=_env("SECBOT_LOCATE_LOOKBACK_DAYS")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("SECBOT_LOG_LEVEL")
    )

    @field_validator("auth_log_indices", mode="before")
    @classmethod
    def _split_indices(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

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


def _env_of(name: str, alias: object) -> str:
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return name.upper()


_FIELD_TO_ENV: dict[str, str] = {
    name: _env_of(name, field.validation_alias) for name, field in Settings.model_fields.items()
}


_SECRET_FIELDS = frozenset(
    name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
)


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
            if field in _SECRET_FIELDS:
                shown = ""  # never echo a secret, even a malformed one
            problems.append(f"{name}: {err['msg']}{shown}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from exc


__all__ = ["Settings", "SettingsError", "env_name", "load_settings"]
