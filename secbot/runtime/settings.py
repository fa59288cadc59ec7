"""SecBot settings: one pydantic-settings model that holds every default (DESIGN.md §4).

Environment variables (``SECBOT_<FIELD>``; the Slack tokens keep Slack's own
``SLACK_BOT_TOKEN`` / ``SLACK_APP_TOKEN``) win over the optional YAML file (``--config``, read by
pydantic-settings' ``YamlConfigSettingsSource``), which wins over the defaults below. Keys in the
file may be field names (``poll_interval``) or variable names (``SECBOT_POLL_INTERVAL``); unknown
keys are errors that name the key and never echo its value (it may be a misspelt secret).
Secrets are ``SecretStr`` so they never show in ``repr`` or logs. Nothing here reads the
environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from secbot.domain.errors import SecBotError

ENV_PREFIX = "SECBOT_"
#: The YAML file :func:`load_settings` is reading, for :meth:`Settings.settings_customise_sources`.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("secbot_config_file", default=None)


class SettingsError(SecBotError):
    """Settings could not be loaded; the message names the variable and the value's problem."""


class WebhookTarget(BaseModel):
    """One ``SECBOT_WEBHOOKS`` entry: where to post and the HMAC secret that signs the body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr


class Settings(BaseSettings):
    """Every knob SecBot has, with its default. The variable is ``SECBOT_`` + the field name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
        env_ignore_empty=True,
    )

    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/")
    siem: Literal["elastic", "embedded"] = Field("elastic")
    elasticsearch_url: str | None = Field(None)
    elasticsearch_api_key: SecretStr | None = Field(None)
    kibana_url: str | None = Field(None)
    kibana_space: str = Field("default")
    kibana_api_key: SecretStr | None = Field(None)
    alerts_index: str = Field(".alerts-security.alerts-default")
    redis_url: str = Field("redis://127.0.0.1:6379/0")
    redis_prefix: str = Field("secbot:")
    rules_dir: Path = Field(Path("rules"))
    poll_interval: float = Field(2.0, gt=0)
    poll_overlap: float = Field(300.0, ge=0)
    poll_page_size: int = Field(500, ge=1, le=10_000)
    default_channel: str | None = Field(None)
    triagers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    gcp_endpoint: str | None = Field(None)
    http_port: int = Field(8080, ge=0, le=65535)
    embedded_db: Path = Field(Path("secbot-embedded.sqlite3"))
    enrich_timeout: float = Field(5.0, gt=0)
    expression_timeout: float = Field(0.25, gt=0)
    alert_ttl: int = Field(30 * 86400, gt=0)

    # Enrichers (docs/enrichers.md). An enricher is built only when its provider is configured.
    enrich_provider_timeout: float = Field(4.0, gt=0)
    enrich_retries: int = Field(2, ge=0, le=10)
    enrich_concurrency: int = Field(20, ge=1, le=1000)
    enrich_cache_ttl: int = Field(900, ge=1)
    enrich_negative_ttl: int = Field(60, ge=1)
    enrich_local_cache_ttl: float = Field(10.0, ge=0)
    enrich_breaker_threshold: int = Field(5, ge=1)
    enrich_breaker_window: float = Field(60.0, gt=0)
    gcp_enabled: bool = Field(False)
    gcp_iam_url: str = Field("https://iam.googleapis.com")
    gcp_project_fields: str = Field(
        "cloud.project.id,gcp.audit.resource_name",
    )
    gcp_service_account_fields: str = Field(
        "gcp.audit.resource_name,gcp.audit.request.name,user.email",
    )
    jit_provider: Literal["entitle", "generic"] = Field("entitle")
    entitle_url: str | None = Field(None)
    entitle_token: SecretStr | None = Field(None)
    jit_fields: str = Field("user.email")
    jit_cache_ttl: int = Field(60, ge=1)
    oncall_provider: Literal["pagerduty", "opsgenie"] = Field("pagerduty")
    opsgenie_url: str = Field("https://api.opsgenie.com")
    opsgenie_key: SecretStr | None = Field(None)
    pagerduty_url: str = Field("https://api.pagerduty.com")
    pagerduty_token: SecretStr | None = Field(None)
    oncall_fields: str = Field("user.email")
    oncall_cache_ttl: int = Field(60, ge=1)
    hris_url: str | None = Field(None)
    hris_token: SecretStr | None = Field(None)
    hr_fields: str = Field("user.email")
    hr_alert_prefix: str = Field("enriched_employee")
    abuseipdb_url: str = Field("https://api.abuseipdb.com")
    abuseipdb_key: SecretStr | None = Field(None)
    greynoise_url: str = Field("https://api.greynoise.io")
    greynoise_key: SecretStr | None = Field(None)
    virustotal_url: str = Field("https://www.virustotal.com")
    virustotal_key: SecretStr | None = Field(None)
    threat_intel_fields: str = Field(
        "source.ip,destination.ip,url.domain,dns.question.name,file.hash.sha256",
    )
    whois_enabled: bool = Field(True)
    rdap_url: str = Field("https://rdap.org")
    whois_fields: str = Field(
        "url.domain,dns.question.name,destination.domain,source.ip,destination.ip",
    )
    whois_young_days: int = Field(30, ge=0)

    # Slack behaviour -------------------------------------------------------------------
    reactions: dict[str, str] = Field(
        default_factory=lambda: {
            "white_check_mark": "closed:benign_positive",
            "x": "closed:false_positive",
            "eyes": "acknowledged",
            "arrows_counterclockwise": "open",
        },
        description='emoji → "status[:closing_reason]" (JSON in the environment)',
    )
    slack_pace: float = Field(1.0, ge=0)
    lease_ttl: float = Field(15.0, ge=1)
    flood_threshold: int = Field(20, ge=0)  # SECBOT_FLOOD_THRESHOLD: old name of the next
    group_threshold: int | None = Field(None, ge=0)  # storm groups above N alerts/min; 0 = off
    auth_log_indices: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["logs-okta.system-*", "logs-google_workspace.login-*"],
    )
    locate_lookback_days: int = Field(7, ge=1, le=90)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")

    # Push intake (DESIGN.md §11, README "Intake") ------------------------------------------
    intake_port: int = Field(8081, ge=0, le=65535)
    intake_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    intake_max_bytes: int = Field(1_048_576, ge=1)
    intake_rate: float = Field(500.0, gt=0, description="alerts/s per source (token bucket)")
    sources_dir: Path = Field(Path("sources"))
    intake_url: str = Field("http://127.0.0.1:8081")
    intake_token: SecretStr | None = Field(None)

    # Destinations (DESIGN.md §12, issue 13) ------------------------------------------------
    pagerduty_events_url: str = Field("https://events.pagerduty.com")
    pagerduty_routing_key: SecretStr | None = Field(None)
    jira_url: str | None = Field(None)
    jira_email: str | None = Field(None)
    jira_api_token: SecretStr | None = Field(None)
    jira_project: str | None = Field(None)
    jira_issue_type: str = Field("Task")
    jira_close_transition: str = Field("Done")
    jira_webhook_secret: SecretStr | None = Field(None)
    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)
    # a claimed destination call not finished after this many seconds is retried (kill -9)
    outbox_lease: float = Field(30.0, gt=0)
    lists_dir: Path = Field(Path("lists"))

    # Asking and response actions (DESIGN.md §13, issue 14) ---------------------------------
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auto_approve_hours: str | None = Field(None, description="e.g. '22-07 Europe/Oslo'")
    respond_dry_run: bool = Field(False)
    okta_url: str | None = Field(None)
    okta_token: SecretStr | None = Field(None)

    # Auto-close trust and reports (issue 15) -------------------------------------------------
    review_channel: str | None = Field(None)
    report_channel: str | None = Field(None)
    review_sample_size: int = Field(5, ge=1, le=100)
    review_demote: bool = Field(True)
    trust_promote_after: int = Field(50, ge=1)
    review_hour: int = Field(9, ge=0, le=23)  # UTC hour of the daily QA sample
    report_weekday: int = Field(0, ge=0, le=6)  # weekly stats report: 0 = Monday … 6 = Sunday
    report_hour: int = Field(9, ge=0, le=23)  # its UTC hour

    @field_validator("auth_log_indices", mode="before")
    @classmethod
    def _split_indices(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("triagers", "approvers", mode="before")
    @classmethod
    def _split_triagers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("triagers", "approvers")
    @classmethod
    def _check_triagers(cls, value: list[str]) -> list[str]:
        for item in value:
            if item[:1] not in ("U", "W", "S"):
                raise ValueError(f"{item!r} is not a Slack user id (U…/W…) or user-group id (S…)")
        return value

    @field_validator("intake_tokens", mode="before")
    @classmethod
    def _split_intake_tokens(cls, value: Any) -> Any:
        # "source=token,source=token"; the message never quotes a token.
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in (part.strip() for part in value.split(",")):
            source, sep, token = item.partition("=")
            if item and (not sep or not source.strip() or not token.strip()):
                raise ValueError("expected comma-separated source=token pairs")
            if item:
                pairs[source.strip()] = token.strip()
        return pairs

    @property
    def storm_threshold(self) -> int:
        """SECBOT_GROUP_THRESHOLD, else its old name SECBOT_FLOOD_THRESHOLD (default 20)."""
        return self.flood_threshold if self.group_threshold is None else self.group_threshold

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
        # Earlier wins: environment, then explicit keyword values, then the YAML file.
        config = _CONFIG_FILE.get()
        if config is None:
            return env_settings, init_settings
        return env_settings, init_settings, _YamlFile(settings_cls, config)


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    return ENV_PREFIX + field.upper()


#: Every accepted key of the file, lower-cased → field name.
_KEYS: dict[str, str] = {
    **{env_name(name).lower(): name for name in Settings.model_fields},
    **{name: name for name in Settings.model_fields},
}
_SECRET_FIELDS = frozenset(
    name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
)


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, with variable names accepted as keys and read errors
    turned into :class:`SettingsError` (a missing or broken file is not "no settings")."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, yaml_file=path, yaml_file_encoding="utf-8")

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except OSError as exc:
            raise SettingsError(f"{file_path}: cannot read settings file: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            # Position and problem only: PyYAML's full message may quote the line (a secret).
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "cannot parse"
            raise SettingsError(f"{file_path}: invalid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            raise SettingsError(f"{file_path}: settings file must be a mapping of names to values")
        # Unknown keys pass through unchanged, so extra="forbid" names them as written.
        return {_KEYS.get(str(key).lower(), str(key)): value for key, value in data.items()}


def _problem(err: Any) -> str:
    """One line naming the variable; the offending value only when it is safe to show."""
    loc = [str(part) for part in err["loc"]]
    field = loc[0] if loc else "?"
    if err["type"] == "extra_forbidden":
        # Never echo the value: a misspelt secret key would print the secret.
        return f"{field}: unknown setting"
    name = env_name(field) if field in Settings.model_fields else field
    value = err.get("input")
    shown = "" if isinstance(value, dict) or field in _SECRET_FIELDS else f" (got {value!r})"
    return f"{name}: {err['msg']}{shown}"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the environment, ``config`` (YAML) and ``overrides``.

    Raises :class:`SettingsError` with one line per problem, each naming the variable.
    """
    if config is not None and not config.is_file():
        raise SettingsError(f"{config}: cannot read settings file: no such file")
    token = _CONFIG_FILE.set(config)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors()]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from exc
    finally:
        _CONFIG_FILE.reset(token)


__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "WebhookTarget", "env_name", "load_settings"]
