"""``hr``: who the actor is — division, title, manager, employment status — and whether they left.

Two sources, in this order:

1. Fields already on the alert (``enriched_employee.*``, prefix configurable), as an ingest
   pipeline puts them: used without any call when they include an employment status, or when
   no HRIS is configured.
2. An HRIS HTTP API: ``GET {SECBOT_HRIS_URL}/employees/{email}`` with ``Authorization: Bearer``
   answering one employee object. Common field spellings are accepted (``division`` or
   ``department``, ``title`` or ``jobTitle``, ``employment_status``/``employmentStatus``/
   ``status``, ``manager`` as a string or ``{email, name}``, ``termination_date``…). 404 →
   "not found".

Result: ``{email, name, division, title, manager, employment_status, terminated, source}``;
a terminated employee also gets ``warning: "TERMINATED EMPLOYEE …"`` so the message shouts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from secbot.domain.alert import Alert, thaw
from secbot.domain.enrichment import Enrichment
from secbot.enrich.common import InvalidKeyError, ProviderError, SourceBase
from secbot.enrich.http import RetryPolicy, get_json, join_url

TERMINATED_STATUSES = frozenset(
    {"terminated", "inactive", "former", "offboarded", "separated", "deactivated", "left"}
)
_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "work_email", "workEmail", "mail"),
    "name": ("name", "display_name", "displayName", "full_name", "fullName"),
    "division": ("division", "department", "org", "organization"),
    "title": ("title", "job_title", "jobTitle"),
    "manager": ("manager", "manager_email", "managerEmail", "supervisor"),
    "employment_status": ("employment_status", "employmentStatus", "status"),
    "termination_date": ("termination_date", "terminationDate", "end_date", "endDate"),
}


def _pick(record: Mapping[str, Any], field: str) -> Any:
    for alias in _ALIASES[field]:
        value = record.get(alias)
        if value not in (None, ""):
            return value
    return None


def _person(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("email") or value.get("name") or value.get("displayName")
    return str(value) if value not in (None, "") else None


def _past(value: Any, today: date) -> bool:
    if not value:
        return False
    text = str(value).strip().replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return False
    return when.date() <= today


def employee(
    record: Mapping[str, Any], *, source: str, today: date | None = None
) -> dict[str, Any]:
    """A raw employee record (alert fields or HRIS JSON) → the ``hr`` shape."""
    today = today or datetime.now(UTC).date()
    status = _pick(record, "employment_status")
    status_text = str(status).strip().lower() if status is not None else None
    terminated = bool(
        (status_text in TERMINATED_STATUSES)
        or _past(_pick(record, "termination_date"), today)
        or record.get("terminated") is True
    )
    out: dict[str, Any] = {
        "email": _person(_pick(record, "email")),
        "name": _person(_pick(record, "name")),
        "division": _pick(record, "division"),
        "title": _pick(record, "title"),
        "manager": _person(_pick(record, "manager")),
        "employment_status": status_text,
        "terminated": terminated,
        "source": source,
    }
    if terminated:
        out["warning"] = "TERMINATED EMPLOYEE: this account should have no access"
    return out


class HrEnricher(SourceBase):
    """Employee data from the alert's ``enriched_employee.*`` fields or an HRIS API."""

    name = "hr"

    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        fields: Iterable[str] = ("user.email",),
        alert_prefix: str = "enriched_employee",
        policy: RetryPolicy | None = None,
    ) -> None:
        self.fields = tuple(fields)
        self._http = http
        self._base = base_url
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._prefix = alert_prefix
        self._policy = policy or RetryPolicy()

    @property
    def has_hris(self) -> bool:
        return self._http is not None and bool(self._base)

    def normalize_key(self, key: str) -> str:
        return key.strip().lower()

    def from_alert(self, alert: Alert) -> Enrichment | None:
        record = thaw(alert.get_field(self._prefix))
        if not isinstance(record, dict) or not record:
            return None
        complete = _pick(record, "employment_status") is not None or "terminated" in record
        if self.has_hris and not complete:
            return None  # the HRIS knows more (status, manager) than a partial ingest copy
        if _pick(record, "email") is None:
            record["email"] = self.key_for(alert)
        return Enrichment.ok(self.name, employee(record, source="alert"))

    async def fetch(self, key: str) -> Mapping[str, Any]:
        if "@" not in key:
            raise InvalidKeyError(f"{key!r} (not an email address)")
        if self._http is None or not self._base:
            raise ProviderError("no enriched_employee fields on the alert and no HRIS configured")
        body = await get_json(
            self._http,
            join_url(self._base, f"employees/{quote(key, safe='@')}"),
            provider="HRIS",
            what=f"employee {key!r}",
            policy=self._policy,
            headers=self._headers,
        )
        if isinstance(body, Mapping) and isinstance(body.get("employee"), Mapping):
            body = body["employee"]  # some HRIS wrap the record
        if not isinstance(body, Mapping):
            raise ProviderError("HRIS: unexpected response shape")
        record = dict(body)
        if _pick(record, "email") is None:
            record["email"] = key
        return employee(record, source="hris")


__all__ = ["TERMINATED_STATUSES", "HrEnricher", "employee"]
