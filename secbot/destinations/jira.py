"""Jira Cloud REST v3 (DESIGN.md §12): one issue per alert, found again before creating.

Open: search ``labels = "secbot-<uuid>"`` with the enhanced search (``GET
/rest/api/3/search/jql``; Atlassian removed ``/rest/api/3/search``), create the issue if there
is none (``POST /rest/api/3/issue``, description in Atlassian Document Format, labels
``secbot`` and ``secbot-<uuid>``), then add the comment with the Slack permalink unless one
already names the alert. Every step looks before it writes, so the outbox repeating an open
after a crash finds the issue and the comment instead of making a second one.

Close: the transition named ``close_transition`` (case-insensitive, by transition or target
status name); an issue already in a *done* status needs nothing; no such transition is a
permanent error naming the ones there are. Acknowledge and reopen add a comment.

Auth is basic ``email:api_token``. 401/403/404 are permanent, 429 and 5xx retried.
A uuid that is not label-safe (Jira labels take no spaces) is labelled by its SHA-256 instead.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx

from secbot.destinations.base import DestinationError, EscalationRequest, Receipt, StatusUpdate
from secbot.destinations.http import json_body, send

_SERVICE = "Jira"
_LABEL_SAFE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_SUMMARY_MAX = 255


def label_for(alert_uuid: str) -> str:
    """The label that finds this alert's issue again."""
    if _LABEL_SAFE.match(alert_uuid):
        return f"secbot-{alert_uuid}"
    return "secbot-" + hashlib.sha256(alert_uuid.encode()).hexdigest()[:40]


def marker(alert_uuid: str) -> str:
    """The text SecBot's comment on an issue always contains."""
    return f"SecBot alert {alert_uuid}"


def _text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def _link(text: str, href: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "marks": [{"type": "link", "attrs": {"href": href}}]}


def adf(*paragraphs: list[dict[str, Any]]) -> dict[str, Any]:
    """An Atlassian Document of paragraphs (lists of inline nodes)."""
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": p} for p in paragraphs if p]}


def description(request: EscalationRequest) -> dict[str, Any]:
    rows = [[_text(f"{k}: {v}")] for k, v in request.details.items()]
    return adf([_text(request.summary)],
               [_text(f"Severity {request.severity} · rule {request.rule_id}")],
               [_text(request.why)] if request.why else [], *rows,
               [_text(marker(request.alert_uuid))])


class JiraDestination:
    """Issues in one Jira Cloud project."""

    def __init__(self, client: httpx.AsyncClient, url: str, email: str, api_token: str,
                 project: str, *, issue_type: str = "Task", close_transition: str = "Done",
                 name: str = "jira") -> None:
        self._client = client
        self._base = url.rstrip("/")
        self._auth = httpx.BasicAuth(email, api_token)
        self._project = project
        self._issue_type = issue_type
        self._close = close_transition
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def _call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await send(self._client, _SERVICE, what, method, self._base + path,
                              auth=self._auth, headers={"Accept": "application/json"}, **kwargs)
        return json_body(response, _SERVICE, what) if response.content else None

    def receipt(self, key: str) -> Receipt:
        return Receipt(destination=self._name, reference=key, text=f"Jira {key}",
                       url=f"{self._base}/browse/{key}")

    async def find(self, alert_uuid: str) -> str | None:
        """The key of this alert's issue, if it has one."""
        jql = f'project = "{self._project}" AND labels = "{label_for(alert_uuid)}"'
        found = await self._call("search failed", "GET", "/rest/api/3/search/jql",
                                 params={"jql": jql, "fields": "status", "maxResults": 1})
        issues = found.get("issues") if isinstance(found, dict) else None
        return str(issues[0]["key"]) if issues else None

    async def _create(self, request: EscalationRequest) -> str:
        fields = {"project": {"key": self._project}, "issuetype": {"name": self._issue_type},
                  "summary": (request.summary or request.title)[:_SUMMARY_MAX],
                  "description": description(request),
                  "labels": ["secbot", label_for(request.alert_uuid)]}
        created = await self._call("refused the issue", "POST", "/rest/api/3/issue",
                                   json={"fields": fields})
        if not isinstance(created, dict) or "key" not in created:
            raise DestinationError("Jira created an issue but did not say its key",
                                   retryable=True)
        return str(created["key"])

    async def _comment(self, key: str, paragraphs: list[list[dict[str, Any]]]) -> None:
        await self._call("refused the comment", "POST", f"/rest/api/3/issue/{key}/comment",
                         json={"body": adf(*paragraphs)})

    async def _has_comment(self, key: str, alert_uuid: str) -> bool:
        listed = await self._call("comments unreadable", "GET",
                                  f"/rest/api/3/issue/{key}/comment")
        comments = listed.get("comments", []) if isinstance(listed, dict) else []
        return any(marker(alert_uuid) in str(c.get("body")) for c in comments)

    async def open(self, request: EscalationRequest) -> Receipt:
        key = await self.find(request.alert_uuid) or await self._create(request)
        if not await self._has_comment(key, request.alert_uuid):
            links = [[_link(link.text, link.href)] for link in request.links]
            await self._comment(key, [[_text(f"{marker(request.alert_uuid)} in Slack:")],
                                      *links])
        return self.receipt(key)

    async def update(self, update: StatusUpdate, receipt: Receipt) -> None:
        key = receipt.reference
        if update.status == "closed":
            await self._transition(key)
            return
        verb = "acknowledged" if update.status == "acknowledged" else "reopened"
        await self._comment(key, [[_text(f"{marker(update.alert_uuid)} {verb} by "
                                         f"{update.actor} in SecBot.")]])

    async def _transition(self, key: str) -> None:
        issue = await self._call("issue unreadable", "GET", f"/rest/api/3/issue/{key}",
                                 params={"fields": "status"})
        status = (issue or {}).get("fields", {}).get("status", {})
        if status.get("statusCategory", {}).get("key") == "done":
            return  # closed in Jira already (or a repeat after a crash)
        listed = await self._call("transitions unreadable", "GET",
                                  f"/rest/api/3/issue/{key}/transitions")
        transitions = listed.get("transitions", []) if isinstance(listed, dict) else []
        wanted = self._close.casefold()
        chosen = next((t for t in transitions if str(t.get("name", "")).casefold() == wanted
                       or str(t.get("to", {}).get("name", "")).casefold() == wanted), None)
        if chosen is None:
            names = ", ".join(repr(str(t.get("name"))) for t in transitions) or "none"
            raise DestinationError(
                f"Jira {key} has no transition named {self._close!r} (available: {names}); "
                "set SECBOT_JIRA_CLOSE_TRANSITION", retryable=False)
        await self._call("refused the transition", "POST",
                         f"/rest/api/3/issue/{key}/transitions",
                         json={"transition": {"id": str(chosen["id"])}})


__all__ = ["JiraDestination", "adf", "label_for", "marker"]
