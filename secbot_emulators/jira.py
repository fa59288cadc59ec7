"""A stand-in for the parts of Jira Cloud REST v3 SecBot uses, with Jira's own answers.

- Basic auth ``email:api_token`` on every request, else ``401`` (Jira's ``errorMessages`` body).
- ``POST /rest/api/3/issue`` — ``fields.project.key`` (known projects only), ``summary`` (1–255
  characters), ``issuetype.name``, ``description`` as an Atlassian Document (``type: doc``,
  ``version: 1``), ``labels`` without spaces; ``201 {id, key, self}``, ``400 {errorMessages,
  errors: {field: message}}`` otherwise.
- ``GET`` / ``POST /rest/api/3/search/jql`` (the enhanced search that replaced
  ``/rest/api/3/search``, which answers 410 here as on Jira Cloud now) — JQL of the forms
  ``labels = "x"`` and ``project = KEY AND labels = "x"``; ``{issues, isLast}``.
- ``GET /rest/api/3/issue/{key}``, ``GET`` / ``POST /rest/api/3/issue/{key}/comment``,
  ``GET`` / ``POST /rest/api/3/issue/{key}/transitions``; an unknown issue is ``404``.
- ``GET /browse/{key}`` and ``GET /issues/``: plain HTML pages for people watching a demo.
- The workflow: To Do → In Progress → Done; ``transitions`` (names) can be replaced to act as
  a project whose workflow has no "Done".

:meth:`JiraStandIn.resolve` moves an issue to Done as a person would, and
:meth:`JiraStandIn.deliver_webhook` posts the ``jira:issue_updated`` webhook Jira sends then,
signed like an admin webhook with a secret (``X-Hub-Signature: sha256=<hex HMAC-SHA256>``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from secbot_emulators.standin_http import StandIn, html_page, json_response, table_page

STATUSES = {"To Do": ("10000", "new"), "In Progress": ("3", "indeterminate"),
            "Done": ("10001", "done")}
_JQL = re.compile(r'^\s*(?:project\s*=\s*"?(?P<project>[A-Z][A-Z0-9_]*)"?\s+AND\s+)?'
                  r'labels\s*=\s*"(?P<label>[^"\\]*)"\s*$', re.IGNORECASE)


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    comments: list[dict[str, Any]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # transition names applied


def _errors(messages: list[str], errors: dict[str, str] | None = None, status: int = 400
            ) -> web.Response:
    return json_response({"errorMessages": messages, "errors": errors or {}}, status)


def _plain(node: Any) -> str:
    """The text of an Atlassian Document (paragraphs on their own lines)."""
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text", ""))
        inner = "".join(_plain(c) for c in node.get("content", []))
        return inner + ("\n" if node.get("type") == "paragraph" else "")
    return ""


def _is_adf(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and value.get("version") == 1


class JiraStandIn(StandIn):
    """Issues by key; ``issues`` in creation order."""

    def __init__(self, email: str = "secbot@example.com", token: str = "jira-token-123",
                 projects: tuple[str, ...] = ("SEC",),
                 issue_types: tuple[str, ...] = ("Task", "Bug")) -> None:
        super().__init__()
        self.credentials = (email, token)
        self.projects = projects
        self.issue_types = issue_types
        self.transitions: dict[str, str] = {"11": "To Do", "21": "In Progress", "31": "Done"}
        self.issues: dict[str, Issue] = {}
        self._next = 10000

    def routes(self, app: web.Application) -> None:
        api = "/rest/api/3"
        app.router.add_post(f"{api}/issue", self._create)
        app.router.add_get(f"{api}/search", self._removed)
        app.router.add_route("*", f"{api}/search/jql", self._search)
        app.router.add_get(f"{api}/issue/{{key}}", self._get)
        app.router.add_route("*", f"{api}/issue/{{key}}/comment", self._comment)
        app.router.add_route("*", f"{api}/issue/{{key}}/transitions", self._transition)
        app.router.add_get("/browse/{key}", self._browse)
        app.router.add_get("/issues/", self._issues_page)

    async def _browse(self, request: web.Request) -> web.Response:
        """The issue page a link from Slack opens (a demo page: no login, plain HTML)."""
        issue = self._issue(request)
        if issue is None:
            return web.Response(text="Issue does not exist", status=404)
        comments = "".join(f"<li><pre>{html.escape(_plain(c['body']))}</pre></li>"
                           for c in issue.comments)
        return html_page(issue.key,
                         f"<h1>{html.escape(issue.key)}: "
                         f"{html.escape(issue.fields['summary'])}</h1>"
                         f"<p>Status: <b>{html.escape(issue.status)}</b> · labels "
                         f"{html.escape(', '.join(issue.fields['labels']))}</p>"
                         f"<pre>{html.escape(_plain(issue.fields.get('description')))}</pre>"
                         f"<h2>Comments</h2><ul>{comments}</ul>")

    async def _issues_page(self, request: web.Request) -> web.Response:
        """Every issue, newest first, each linking its ``/browse/<key>`` page (a demo page,
        where Jira Cloud's issue navigator would be)."""
        return table_page("Jira stand-in", "Issues", ("key", "status", "summary", "comments"),
                          ((f"<a href=\"/browse/{html.escape(i.key)}\">{html.escape(i.key)}</a>",
                            html.escape(i.status), html.escape(i.fields["summary"]),
                            str(len(i.comments))) for i in reversed(list(self.issues.values()))))

    def fault_body(self, status: int) -> Any:
        return {"errorMessages": [f"injected {status}"], "errors": {}}

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            email, _, token = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (email, token) == self.credentials

    def _guard(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request):
            return _errors(["Client must be authenticated to access this resource."],
                           status=401)
        return None

    def _issue(self, request: web.Request) -> Issue | None:
        return self.issues.get(request.match_info["key"])

    def _guarded_issue(self, request: web.Request) -> Issue | web.Response:
        """The path's issue for an authenticated caller, else Jira's 401 / 404 answer."""
        if (refusal := self._guard(request)) is not None:
            return refusal
        issue = self._issue(request)
        if issue is None:
            return _errors(["Issue does not exist or you do not have permission to see it."],
                           status=404)
        return issue

    def _view(self, issue: Issue, wanted: list[str] | None = None) -> dict[str, Any]:
        status_id, category = STATUSES[issue.status]
        fields = {**issue.fields, "status": {"name": issue.status, "id": status_id,
                                             "statusCategory": {"key": category}}}
        if wanted is not None and "*all" not in wanted:
            fields = {k: v for k, v in fields.items() if k in wanted}
        return {"id": issue.id, "key": issue.key, "self": f"{self.url}/rest/api/3/issue/"
                f"{issue.id}", "fields": fields}

    async def _body(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.read() or b"null")
        except ValueError:
            return None

    async def _create(self, request: web.Request) -> web.Response:
        if (refusal := self._guard(request)) is not None:
            return refusal
        body = await self._body(request)
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return _errors(["Unexpected body: 'fields' is required."])
        problems = self._field_errors(fields)
        if problems:
            return _errors([], problems)
        self._next += 1
        project = fields["project"]["key"]
        key = f"{project}-{sum(i.key.startswith(project + '-') for i in self.issues.values()) + 1}"
        issue = Issue(str(self._next), key, {
            "summary": fields["summary"], "labels": list(fields.get("labels", [])),
            "issuetype": {"name": fields["issuetype"]["name"]}, "project": {"key": project},
            "description": fields.get("description")})
        self.issues[key] = issue
        return json_response({"id": issue.id, "key": key,
                              "self": f"{self.url}/rest/api/3/issue/{issue.id}"}, 201)

    def _field_errors(self, fields: dict[str, Any]) -> dict[str, str]:
        problems = {}
        project = fields.get("project")
        if not isinstance(project, dict) or project.get("key") not in self.projects:
            problems["project"] = "valid project is required"
        issuetype = fields.get("issuetype")
        if not isinstance(issuetype, dict) or issuetype.get("name") not in self.issue_types:
            problems["issuetype"] = "Specify a valid issue type"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            problems["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            problems["summary"] = "Summary must be less than 255 characters."
        if "description" in fields and not _is_adf(fields["description"]):
            problems["description"] = ("Operation value must be an Atlassian Document "
                                      "(see the Atlassian Document Format)")
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(
                not isinstance(x, str) or not x or " " in x or len(x) > 255 for x in labels):
            problems["labels"] = "A label must be a non-empty string without spaces."
        return problems

    async def _removed(self, request: web.Request) -> web.Response:
        return _errors(["The requested API has been removed. Please migrate to the "
                        "/rest/api/3/search/jql API."], status=410)

    async def _search(self, request: web.Request) -> web.Response:
        if (refusal := self._guard(request)) is not None:
            return refusal
        if request.method == "POST":
            body = await self._body(request)
            body = body if isinstance(body, dict) else {}
            jql, wanted = str(body.get("jql", "")), body.get("fields")
        else:
            jql = request.query.get("jql", "")
            raw = request.query.get("fields")
            wanted = raw.split(",") if raw else None
        match = _JQL.match(jql)
        if match is None:
            return _errors([f"Error in the JQL Query: the stand-in does not support '{jql}'."])
        found = [i for i in self.issues.values()
                 if match["label"] in i.fields["labels"]
                 and (match["project"] is None or i.fields["project"]["key"] == match["project"])]
        fields = wanted if isinstance(wanted, list) else ["id"]
        return json_response({"issues": [self._view(i, fields) for i in found], "isLast": True})

    async def _get(self, request: web.Request) -> web.Response:
        issue = self._guarded_issue(request)
        if isinstance(issue, web.Response):
            return issue
        return json_response(self._view(issue))

    async def _comment(self, request: web.Request) -> web.Response:
        issue = self._guarded_issue(request)
        if isinstance(issue, web.Response):
            return issue
        if request.method == "GET":
            return json_response({"startAt": 0, "maxResults": 5000, "total": len(issue.comments),
                                  "comments": issue.comments})
        body = await self._body(request)
        if not isinstance(body, dict) or not _is_adf(body.get("body")):
            return _errors([], {"comment": "Comment body can not be empty!"})
        comment = {"id": str(10000 + len(issue.comments)), "body": body["body"],
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())}
        issue.comments.append(comment)
        return json_response(comment, 201)

    def _available(self, issue: Issue) -> list[dict[str, Any]]:
        return [{"id": tid, "name": name, "hasScreen": False,
                 "to": {"name": target, "id": STATUSES[target][0],
                        "statusCategory": {"key": STATUSES[target][1]}}}
                for tid, name in self.transitions.items()
                if (target := name if name in STATUSES else "Done") != issue.status]

    async def _transition(self, request: web.Request) -> web.Response:
        issue = self._guarded_issue(request)
        if isinstance(issue, web.Response):
            return issue
        available = self._available(issue)
        if request.method == "GET":
            return json_response({"expand": "transitions", "transitions": available})
        body = await self._body(request)
        wanted = body.get("transition", {}).get("id") if isinstance(body, dict) else None
        chosen = next((t for t in available if t["id"] == str(wanted)), None)
        if chosen is None:
            return _errors([f"Transition id '{wanted}' is not valid for this issue."])
        issue.status = chosen["to"]["name"]
        issue.history.append(chosen["name"])
        return web.Response(status=204)

    def by_label(self, label: str) -> list[Issue]:
        return [i for i in self.issues.values() if label in i.fields["labels"]]

    def resolve(self, key: str) -> dict[str, Any]:
        """A person moves the issue to Done in Jira; returns the webhook body Jira sends."""
        issue = self.issues[key]
        before = issue.status
        issue.status = "Done"
        return {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Jo Analyst",
                     "emailAddress": "jo@example.com"},
            "issue": self._view(issue),
            "changelog": {"id": str(int(time.time())), "items": [
                {"field": "status", "fieldtype": "jira", "from": STATUSES[before][0],
                 "fromString": before, "to": STATUSES["Done"][0], "toString": "Done"},
                {"field": "resolution", "fieldtype": "jira", "from": None, "fromString": None,
                 "to": "10000", "toString": "Done"}]},
        }

    @staticmethod
    async def deliver_webhook(url: str, body: dict[str, Any], secret: str | None) -> int:
        """POST ``body`` as Jira Cloud does; signed when the webhook has a secret."""
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json",
                   "X-Atlassian-Webhook-Identifier": str(time.time_ns())}
        if secret is not None:
            digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={digest}"
        async with aiohttp.ClientSession() as session, session.post(
                url, data=raw, headers=headers) as response:
            return response.status
