"""Enrichment results as a triager reads them: one short mrkdwn line per enricher.

A raw result (``labels={"instance-type": …}, parent=folders/7, state=ACTIVE``) makes people
parse JSON on a phone. Each built-in enricher gets a line that says what matters for the
decision (whose project, who the person is and whether they still work here, whether the
indicator is known bad), and what should alarm stands out (terminated, malicious, young
domain, disabled). Shapes: README "Enricher result shapes" and ``docs/enrichers.md``.

Provider data is attacker-influenced (a WHOIS registrar, a threat-feed detail), so every value
is read defensively (a wrong type is skipped, never an exception) and mrkdwn-escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from secbot.domain.enrichment import Enrichment
from secbot.render import mrkdwn as md

#: What people call each built-in enricher.
LABELS: Mapping[str, str] = {
    "gcp_project": "GCP project",
    "gcp_service_account": "Service account",
    "hr": "Employee",
    "oncall": "On call",
    "jit_permissions": "JIT access",
    "threat_intel": "Threat intel",
    "whois": "WHOIS",
}
#: Project labels that decide triage (auto-close rules key on ``instance-type``), shown first.
KEY_LABELS = ("instance-type", "env", "environment", "team", "owner", "data-classification")
#: One value is never allowed to take over the line.
VALUE_MAX = 200
#: How many labels, grants or providers one line lists before "+N more".
LIST_MAX = 4
TERMINATED_WORDS = frozenset(
    {"terminated", "inactive", "former", "offboarded", "separated", "deactivated", "left"}
)
VERDICT_MARK = {"malicious": ":red_circle: ", "suspicious": ":warning: "}
_SEP = " · "


#: What enrichment data is made of once frozen (and in tests): checked by exact type first,
#: because an ``isinstance(…, Mapping)`` ABC check costs several times more and a summary
#: makes dozens of them.
_PLAIN_MAPPINGS = (MappingProxyType, dict)


def _is_mapping(value: Any) -> bool:
    return type(value) in _PLAIN_MAPPINGS or isinstance(value, Mapping)


def _scalar(value: Any) -> bool:
    """A value a line may show: not missing, not a flag, not a container."""
    if type(value) is str:
        return True
    return value is not None and not isinstance(value, (bool, list, tuple)) and not (
        _is_mapping(value)
    )


def _raw(data: Mapping[str, Any], key: Any) -> Any:
    return data.get(key) if _is_mapping(data) else None


def _text(data: Mapping[str, Any], key: Any) -> str | None:
    """The escaped, shortened value of ``key``; None when missing, empty or not a scalar."""
    value = _raw(data, key)
    if not _scalar(value):
        return None
    text = md.truncate(md.escape(value), VALUE_MAX)
    return text if text.strip() else None


def _code(data: Mapping[str, Any], key: str) -> str | None:
    value = _raw(data, key)
    if not _scalar(value) or not str(value).strip():
        return None
    return md.code(md.truncate(str(value), VALUE_MAX))


def _mappings(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = _raw(data, key)
    if not isinstance(value, (list, tuple)):
        return []
    return [item for item in value if _is_mapping(item)]


def _strings(data: Mapping[str, Any], key: str) -> list[str]:
    value = _raw(data, key)
    if not isinstance(value, (list, tuple)):
        return []
    return [md.truncate(md.escape(v), VALUE_MAX) for v in value if isinstance(v, (str, int))]


def _more(items: list[str], sep: str = ", ") -> str:
    shown = sep.join(items[:LIST_MAX])
    return shown + (f" +{len(items) - LIST_MAX} more" if len(items) > LIST_MAX else "")


def _join(*parts: str | None) -> str:
    return _SEP.join(p for p in parts if p)


def gcp_project(data: Mapping[str, Any]) -> str:
    """``Payments (`prod-payments`) · instance-type: customer · team: payments``."""
    name, ident = _text(data, "display_name"), _code(data, "project_id")
    title = f"{name} ({ident})" if name and ident else name or ident
    labels = _raw(data, "labels")
    pairs: list[str] = []
    if _is_mapping(labels):
        keys: list[Any] = [k for k in KEY_LABELS if k in labels]
        keys += sorted((k for k in labels if k not in KEY_LABELS), key=str)[:LIST_MAX]
        pairs = [f"{md.escape(k)}: {md.truncate(md.escape(labels[k]), VALUE_MAX)}" for k in keys]
    state = _text(data, "state")
    alarm = f":warning: state {state}" if state and state != "ACTIVE" else None
    return _join(title, _more(pairs, _SEP) if pairs else "no labels", alarm)


def _is_terminated(data: Mapping[str, Any]) -> bool:
    status = _raw(data, "employment_status")
    return _raw(data, "terminated") is True or (
        isinstance(status, str) and status.strip().lower() in TERMINATED_WORDS
    )


def hr(data: Mapping[str, Any]) -> str:
    """``Bob Ortiz · AE, Sales · manager pat@example.com · :rotating_light: *Terminated*``."""
    who = _text(data, "name") or _text(data, "email")
    role = ", ".join(t for t in (_text(data, "title"), _text(data, "division")) if t)
    manager = _text(data, "manager")
    status = _text(data, "employment_status")
    standing = status
    if _is_terminated(data):
        extra = f" ({status})" if status and status.lower() != "terminated" else ""
        standing = f":rotating_light: *Terminated employee*{extra}"
    return _join(who, role, f"manager {manager}" if manager else None, standing)


def oncall(data: Mapping[str, Any]) -> str:
    """``yes (platform-primary)`` / ``no``."""
    flag = _raw(data, "on_call")
    schedules = _strings(data, "schedules")
    answer = "yes" if flag is True else "no" if flag is False else "unknown"
    return answer + (f" ({_more(schedules)})" if schedules else "")


def _grant(grant: Mapping[str, Any]) -> str:
    what = _code(grant, "permission") or "a grant"
    where = _code(grant, "resource")
    until = _text(grant, "expires_at")
    why = _text(grant, "justification")
    return (
        what
        + (f" on {where}" if where else "")
        + (f", expires {until}" if until else ", no expiry given")
        + (f" — “{why}”" if why else "")
    )


def jit_permissions(data: Mapping[str, Any]) -> str:
    """One bullet per grant: permission, resource, expiry, justification."""
    grants = _mappings(data, "grants")
    if not grants:
        return "no active grants"
    lines = [_grant(g) for g in grants[:LIST_MAX]]
    if len(grants) > LIST_MAX:
        lines.append(f"+{len(grants) - LIST_MAX} more")
    return f"{len(grants)} active grant{'s' * (len(grants) != 1)}" + "".join(
        f"\n• {line}" for line in lines
    )


def _verdict(data: Mapping[str, Any]) -> str:
    verdict = _text(data, "verdict") or "unknown"
    return f"{VERDICT_MARK.get(verdict, '')}*{verdict}*"


def threat_intel(data: Mapping[str, Any]) -> str:
    """``203.0.113.7`: *malicious* — abuseipdb: malicious, greynoise: benign``."""
    sources = [
        f"{_text(s, 'provider') or 'provider'}: {_text(s, 'verdict') or 'unknown'}"
        for s in _mappings(data, "sources")
    ]
    head = _join(_code(data, "indicator"), _verdict(data))
    partial = " (some providers failed)" if _raw(data, "partial") is True else ""
    return head + (f" — {_more(sources)}" if sources else "") + partial


def _age(data: Mapping[str, Any]) -> str | None:
    days = _raw(data, "age_days")
    created = _text(data, "created")
    date = created[:10] if created else None
    if isinstance(days, int) and not isinstance(days, bool):
        return f"registered {date} ({days} days ago)" if date else f"{days} days old"
    return f"registered {date}" if date else None


def whois(data: Mapping[str, Any]) -> str:
    """Domain: registrar and age (a young domain stands out); IP: network owner."""
    registrar = _text(data, "registrar")
    owner = _text(data, "network_owner")
    young = ":warning: *young domain*" if _raw(data, "young_domain") is True else None
    return _join(
        _code(data, "query"),
        f"registrar {registrar}" if registrar else None,
        _age(data),
        young,
        f"network {owner}" if owner else None,
        _text(data, "country"),
    )


def gcp_service_account(data: Mapping[str, Any]) -> str:
    """``ci@p.iam.gserviceaccount.com` (CI deployer) in `p` · *disabled*``."""
    email, name = _code(data, "email"), _text(data, "display_name")
    project = _code(data, "project_id")
    disabled = _raw(data, "disabled")
    state = "*disabled*" if disabled is True else "enabled" if disabled is False else None
    who = (email or "") + (f" ({name})" if name else "")
    return _join(who + (f" in {project}" if project else ""), state)


def generic(data: Mapping[str, Any]) -> str:
    """Enrichers without their own line: the first few scalar values, by name."""
    pairs = [
        f"{md.escape(k)}: {text}"
        for k in list(data)[: LIST_MAX * 2]
        if (text := _text(data, k)) is not None
    ]
    return _more(pairs, _SEP)


SUMMARIES: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "gcp_project": gcp_project,
    "gcp_service_account": gcp_service_account,
    "hr": hr,
    "oncall": oncall,
    "jit_permissions": jit_permissions,
    "threat_intel": threat_intel,
    "whois": whois,
}


def summarize_enrichment(enrichment: Enrichment) -> str:
    """One escaped line per enricher: what it found, or why it is unavailable (never silent).

    The unavailable line names the enricher as configured (``gcp_project``) too: that is what
    an operator has to fix.
    """
    label = md.escape(LABELS.get(enrichment.name, enrichment.name))
    if not enrichment.available:
        named = f" ({md.code(enrichment.name)})" if enrichment.name in LABELS else ""
        return f"*{label}*{named} unavailable: {md.escape(enrichment.error)}"
    text = SUMMARIES.get(enrichment.name, generic)(enrichment.data)
    return f"*{label}*: {text.strip() or 'no data'}"
