"""``POST /v1/jira/webhook``: Jira tells SecBot an issue was resolved, and the alert closes.

Authentication (``SECBOT_JIRA_WEBHOOK_SECRET``), either of what Jira Cloud supports:

- an admin webhook registered **with a secret** (System → WebHooks → Secret): Jira signs the
  body, ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` — preferred, the secret
  never travels;
- a webhook without one (Automation's "Send web request", older registrations): the secret
  in the URL, ``/v1/jira/webhook?token=<secret>``.

Both are compared in constant time; anything else is ``401 {"error": "unauthorized"}``.
Only ``jira:issue_updated`` events whose issue is now in a *done* status category and whose
changelog moved the status (or set a resolution) count; everything else is ``200 {"ignored":
...}`` so Jira does not retry it. A resolution whose alert cannot be closed now (the SIEM down)
is ``503``: Jira retries it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web

from secbot.domain.errors import SecBotError

log = structlog.stdlib.get_logger("secbot.intake.jira")
PATH = "/v1/jira/webhook"


class CloseFailed(SecBotError):
    """The alert could not be closed now; Jira should deliver the event again."""


@dataclass(frozen=True)
class ResolvedIssue:
    """What SecBot reads from Jira's webhook: the issue, its labels, who resolved it."""

    key: str
    labels: tuple[str, ...]
    actor: str  # "jira:<email or display name or account id>"
    resolution: str | None


class IssueResolved(Protocol):
    """Closes the alert behind a resolved issue (wired in the runtime: the status change
    path of a reaction, with ``actor`` as the person)."""

    async def issue_resolved(self, issue: ResolvedIssue) -> str:
        """A short result ("closed <uuid>", "no alert for SEC-9"); raise
        :class:`CloseFailed` when a retry could succeed."""
        ...


@dataclass(frozen=True)
class JiraHook:
    secret: str
    handler: IssueResolved


def authentic(secret: str, body: bytes, signature: str | None, token: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    signed = hmac.compare_digest((signature or "").encode(), expected.encode())
    by_token = hmac.compare_digest((token or "\0").encode(), secret.encode())
    return signed or by_token


def _actor(user: Any) -> str:
    user = user if isinstance(user, dict) else {}
    name = user.get("emailAddress") or user.get("displayName") or user.get("accountId")
    return f"jira:{name or 'unknown'}"


def resolved_issue(event: Any) -> ResolvedIssue | str:
    """The resolved issue of ``event``, or why the event is ignored."""
    if not isinstance(event, dict) or event.get("webhookEvent") != "jira:issue_updated":
        return "not an issue update"
    issue = event.get("issue")
    if not isinstance(issue, dict):
        return "no issue"
    fields, key = issue.get("fields"), issue.get("key")
    if not isinstance(fields, dict) or not isinstance(key, str):
        return "no issue"
    category = ((fields.get("status") or {}).get("statusCategory") or {}).get("key")
    items = (event.get("changelog") or {}).get("items") or []
    moved = any(isinstance(i, dict) and i.get("field") in ("status", "resolution")
                for i in items)
    if category != "done" or not moved:
        return "the issue was not resolved"
    labels = fields.get("labels") or []
    resolution = next((i.get("toString") for i in items if isinstance(i, dict)
                       and i.get("field") == "resolution"), None)
    return ResolvedIssue(key, tuple(str(x) for x in labels if isinstance(x, str)),
                         _actor(event.get("user")), resolution)


async def handle(request: web.Request, hook: JiraHook, body: bytes) -> web.Response:
    """The answer to one delivery (``body`` already read within the size limit)."""
    if not authentic(hook.secret, body, request.headers.get("X-Hub-Signature"),
                     request.query.get("token")):
        log.info("jira_webhook_refused", status=401)
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        event = json.loads(body)
    except ValueError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    found = resolved_issue(event)
    if isinstance(found, str):
        return web.json_response({"ignored": found})
    try:
        result = await hook.handler.issue_resolved(found)
    except CloseFailed as exc:
        log.warning("jira_webhook_close_failed", issue=found.key, error=str(exc))
        return web.json_response({"error": "not closed yet, retry"}, status=503,
                                 headers={"Retry-After": "30"})
    log.info("jira_webhook", issue=found.key, result=result)
    return web.json_response({"result": result})


def labels_uuid(labels: Sequence[str]) -> str | None:
    """The alert uuid a ``secbot-<uuid>`` label names (the readable form)."""
    for label in labels:
        if label.startswith("secbot-") and len(label) > len("secbot-"):
            return label[len("secbot-"):]
    return None


__all__ = ["PATH", "CloseFailed", "IssueResolved", "JiraHook", "ResolvedIssue", "authentic",
           "handle", "labels_uuid", "resolved_issue"]
