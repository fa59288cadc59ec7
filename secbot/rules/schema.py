"""The rule file format (DESIGN.md §5) as a pydantic model: precise types, unknown keys rejected.

These models are pure data: what a reviewer approved in a pull request. Compiled expressions
and templates live beside them in :class:`secbot.rules.ruleset.CompiledRule`, never inside.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from secbot.domain.source import SIEM_SOURCE, SOURCE_FIELD
from secbot.domain.status import (
    AUTO_CLOSE_REASON,
    KIBANA_REASONS,
    MAX_REASON_LENGTH,
    check_reason,
)
from secbot.rules.durations import Duration

Severity = Literal["info", "low", "medium", "high", "critical"]
#: One of Kibana's documented reasons or a custom one (1–1024 characters). A custom reason
#: must also be listed in Kibana's ``securitySolution:detectionsCloseReasons``, which a rule
#: file cannot check: a refused reason leaves the alert open, and the message and audit say so.
ClosingReason = Annotated[
    str,
    AfterValidator(check_reason),
    Field(
        min_length=1,
        max_length=MAX_REASON_LENGTH,
        description=f"Kibana closing reason: {', '.join(KIBANA_REASONS)}, or a custom reason "
        "configured in Kibana",
        json_schema_extra={"examples": list(KIBANA_REASONS)},
    ),
]

_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,99}$")
_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$|^#[a-z0-9_\-]{1,80}$")
_FIELD = re.compile(r"^[@A-Za-z_][\w@.\-]*$")
#: Most ``fields`` one rule may list. Block Kit shows 10 fields per section and 50 blocks per
#: message; 50 fields take 5 blocks and leave room for the title, enrichment, notes, status
#: line and alert id. A longer list used to push the status block out of the message, so a
#: later status edit (✅) failed. Nobody reads more than this on a phone anyway.
MAX_RULE_FIELDS = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_channel(value: str) -> str:
    if not _CHANNEL.match(value):
        raise ValueError(f"{value!r} is not a Slack channel id (C…/G…) or #name")
    return value


StrOrList = str | list[str]

_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class Match(_Strict):
    """Every given condition must hold."""

    rule_name: StrOrList | None = Field(None, description="kibana.alert.rule.name (any of)")
    rule_id: StrOrList | None = Field(None, description="kibana.alert.rule.rule_id (any of)")
    when: str | None = Field(None, description="expression over alert and IncludedFields")
    source: str | None = Field(
        None,
        description=f"intake source ({SOURCE_FIELD}, a sources/<name>.yaml); default: the SIEM "
        f"({SIEM_SOURCE!r}); a rule matches alerts of its one source only",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is not None and not _SOURCE.match(value):
            raise ValueError(f"{value!r} is not a source name (the stem of sources/<name>.yaml)")
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> Match:
        if (self.rule_name is None and self.rule_id is None and self.when is None
                and self.source is None):
            raise ValueError("match needs at least one of rule_name, rule_id, when, source")
        return self


class Dedup(_Strict):
    key: list[str] = Field(min_length=1, description="alert fields that make two alerts 'the same'")
    window: Duration = Field(description="how long a first alert absorbs duplicates, e.g. 2h")


class Group(_Strict):
    """``group: {by: [user.email], window: 1h}`` (DESIGN.md §5): alerts of the rule sharing
    these values inside the window are one group, one Slack message, from the first on."""

    by: list[str] = Field(min_length=1, description="alert fields whose values make a group")
    window: Duration = Field(description="how long a group takes new members, e.g. 1h")


class RouteWhen(_Strict):
    if_: str = Field(alias="if", description="expression; first true wins")
    channel: str

    _channel = field_validator("channel")(_check_channel)


class Route(_Strict):
    channel: str | None = None
    when: list[RouteWhen] = Field(default_factory=list)

    @field_validator("channel")
    @classmethod
    def _chan(cls, value: str | None) -> str | None:
        return None if value is None else _check_channel(value)


class AutoClose(_Strict):
    when: str = Field(description="expression; true closes the alert in the SIEM")
    reason: ClosingReason = AUTO_CLOSE_REASON
    mode: Literal["enforce", "shadow"] = Field(
        "enforce",
        description="enforce: close when true; shadow: decide and show 'would auto-close', "
        "never close (issue 15)",
    )
    expires: date | None = Field(
        None, description="after this date (UTC) the rule behaves as shadow; e.g. 2027-06-30",
    )


def _check_field(value: str | None) -> str | None:
    if value is not None and not _FIELD.match(value):
        raise ValueError(f"{value!r} is not a field name")
    return value


class Escalation(_Strict):
    """One ``escalate`` entry (DESIGN.md §5): the first whose ``if`` holds applies. It sees
    the auto-close environment (``enrichments`` included)."""

    if_: str = Field(alias="if", description="expression; first true wins")
    severity: Severity | None = Field(None, description="shown on the message instead")
    channel: str | None = Field(None, description="post here instead of the routed channel")
    page: str | None = Field(None, description="destination to page: pagerduty or a webhook")
    ticket: str | None = Field(None, description="destination for a ticket: jira or a webhook")
    notify: list[str] = Field(
        default_factory=list, description="further destinations by name (SECBOT_WEBHOOKS)",
    )

    @field_validator("channel")
    @classmethod
    def _chan(cls, value: str | None) -> str | None:
        return None if value is None else _check_channel(value)

    def destinations(self) -> tuple[str, ...]:
        """Every destination this entry names, in order, each once."""
        named = [d for d in (self.page, self.ticket, *self.notify) if d]
        return tuple(dict.fromkeys(named))


class AskOutcome(_Strict):
    """What an answer (or silence) does: set a status (with a reason when closing), or run
    the rule's ``escalate`` entries as if they matched."""

    status: Literal["closed", "acknowledged", "open"] | None = None
    reason: ClosingReason | None = None
    escalate: bool = False

    @model_validator(mode="after")
    def _one(self) -> AskOutcome:
        if (self.status is None) == (not self.escalate):
            raise ValueError("give either status (with reason when closed) or escalate: true")
        if self.reason is not None and self.status != "closed":
            raise ValueError("reason applies to status: closed only")
        return self


class Ask(_Strict):
    """``ask``: the person involved is asked by DM with Yes / No buttons (DESIGN.md §13)."""

    user: str = Field(description="alert field holding the person's email")
    question: str = Field(min_length=1, max_length=2000, description="Jinja2 template")
    timeout: Duration = Field(description="how long to wait for an answer, e.g. 2h")
    justification: bool = Field(False, description="offer a modal for a written justification")
    on_yes: AskOutcome
    on_no: AskOutcome
    on_timeout: AskOutcome

    _user = field_validator("user")(_check_field)


RESPONSE_ACTIONS = ("isolate_host", "suspend_user", "disable_sa_key")


class Respond(_Strict):
    """One proposed response action, run only after approval (DESIGN.md §8, §13)."""

    action: Literal["isolate_host", "suspend_user", "disable_sa_key"]
    host: str | None = Field(None, description="isolate_host: alert field naming the host")
    user: str | None = Field(None, description="suspend_user: alert field with the email")
    key: str | None = Field(None, description="disable_sa_key: alert field with the key name")
    when: str | None = Field(None, description="expression; propose only when true")

    _fields = field_validator("host", "user", "key")(_check_field)

    @model_validator(mode="after")
    def _target(self) -> Respond:
        needed = {"isolate_host": "host", "suspend_user": "user", "disable_sa_key": "key"}
        name = needed[self.action]
        if getattr(self, name) is None:
            raise ValueError(f"{self.action} needs {name}: <alert field>")
        return self


class Message(_Strict):
    title: str | None = Field(None, max_length=2000)
    body: str | None = Field(None, max_length=20000)


class Expect(_Strict):
    matched: bool | None = None
    auto_close: bool | None = None
    channel: str | None = None
    escalate: bool | None = Field(None, description="an escalate entry applies")
    severity: Severity | None = Field(None, description="the severity shown")


class RuleTest(_Strict):
    name: str = Field(min_length=1)
    alert: dict[str, Any]
    enrichments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    expect: Expect


class Rule(_Strict):
    """One detection-to-Slack rule, as reviewed in ``rules/<id>.yaml``."""

    id: str
    name: str = Field(min_length=1, max_length=150)
    description: str = ""
    severity: Severity | None = None
    match: Match
    fields: list[str] = Field(
        default_factory=list,
        description=f"alert fields shown and passed to expressions (at most {MAX_RULE_FIELDS})",
        json_schema_extra={"maxItems": MAX_RULE_FIELDS},
    )
    enrich: list[str] = Field(default_factory=list)
    dedup: Dedup | None = None
    group: Group | None = None
    route: Route | None = None
    auto_close: AutoClose | None = None
    escalate: list[Escalation] = Field(default_factory=list, description="first match wins")
    ask: Ask | None = None
    respond: list[Respond] = Field(default_factory=list)
    message: Message | None = None
    runbook: str | None = Field(None, max_length=5000)
    tests: list[RuleTest] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _RULE_ID.match(value):
            raise ValueError(f"{value!r}: use lowercase letters, digits, '_' and '-'")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_RULE_FIELDS:
            raise ValueError(
                f"{len(value)} names listed, at most {MAX_RULE_FIELDS} allowed (every 10 "
                "take one of the 50 blocks a Slack message may have)"
            )
        for name in value:
            if not _FIELD.match(name):
                raise ValueError(f"{name!r} is not a field name")
        if len(set(value)) != len(value):
            raise ValueError("fields lists a name twice")
        return value


def rule_json_schema() -> dict[str, Any]:
    """JSON Schema of the rule file format, for editors (``secbot rules schema``)."""
    schema = Rule.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "SecBot rule"
    return schema
