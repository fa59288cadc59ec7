"""Elastic Security as the SIEM: Elasticsearch for reads, Kibana for status changes.

Reads (polling, ``get``, investigation ``search``) go straight to Elasticsearch with the
official ``AsyncElasticsearch`` client: Kibana's ``signals/search`` route drops
``search_after``, so it cannot page a backlog reliably. Status and tag changes go through
Kibana's detection-engine API (``signals/status``, ``signals/tags``) so Kibana validates the
closing reason, credits its user profile, audits and fires its workflow triggers.

Without a Kibana URL the same painless scripts run as Elasticsearch ``_update_by_query``
(exactly what Kibana itself sends). Trade-off of that fallback: it needs write privileges on
the alerts indices, skips Kibana's validation, audit log, telemetry and status-change
triggers, and cannot name a Kibana user profile (``kibana.alert.workflow_user`` gets the
constructor's ``workflow_user``, default null); use it only where Kibana is out of reach.

Transient failures (connection errors, timeouts, 429, 5xx) are retried here with capped
exponential backoff and jitter (:mod:`secbot.resilience.retry`, :data:`SIEM_RETRY` by default;
the transports' own retries are off, they would retry instantly). Anything else — and a
transient failure that outlasts the retry budget — raises :class:`~secbot.siem.base.SiemError`
naming the URL and the index. Error text is redacted where it is built (:func:`_siem_error`):
it reaches Slack and the audit stream, and a URL or a library's message may carry userinfo.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import structlog
from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import ConnectionTimeout as EsConnectionTimeout

from secbot.domain.alert import Alert
from secbot.domain.secrets import redact
from secbot.domain.status import STATUSES, Status
from secbot.resilience.retry import RetryableError, RetryPolicy, retry_async
from secbot.siem.base import Checkpoint, Page, SiemError, StatusChange
from secbot.siem.embedded import iso_millis, to_millis

T = TypeVar("T")
log = structlog.stdlib.get_logger(__name__)

#: Default for SIEM calls: six tries within 30 s. A poll that still fails is retried by the
#: poller's next cycle; a status change that fails is reported to the person who asked.
SIEM_RETRY = RetryPolicy(attempts=6, base=0.25, cap=5.0, budget=30.0, max_retry_after=10.0)

BUILDING_BLOCK = "kibana.alert.building_block_type"
WORKFLOW_STATUS = "kibana.alert.workflow_status"
POLL_SORT = [{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": {"order": "asc"}}]
KIBANA_HEADERS = {"kbn-xsrf": "secbot", "elastic-api-version": "2023-10-31"}

#: Kibana's status script (update_alerts_workflow_status.ts), used by the ES fallback.
STATUS_SCRIPT = """
if (ctx._source['kibana.alert.workflow_status'] != null && ctx._source['kibana.alert.workflow_status'] != params.status) {
  ctx._source['kibana.alert.workflow_status'] = params.status;
  ctx._source['kibana.alert.workflow_user'] = params.workflowUser;
  ctx._source['kibana.alert.workflow_status_updated_at'] = params.updatedAt;
  if (params.reason != null) {
    ctx._source['kibana.alert.workflow_reason'] = params.reason;
  } else {
    ctx._source.remove('kibana.alert.workflow_reason');
  }
}
if (ctx._source.signal != null && ctx._source.signal.status != null) {
  ctx._source.signal.status = params.status
}"""  # noqa: E501

#: Kibana's set-alert-tags script (set_alert_tags_route.ts), used by the ES fallback.
TAGS_SCRIPT = """
List newTagsArray = [];
if (ctx._source["kibana.alert.workflow_tags"] != null) {
  for (tag in ctx._source["kibana.alert.workflow_tags"]) {
    if (!params.tagsToRemove.contains(tag)) { newTagsArray.add(tag); }
  }
  for (tag in params.tagsToAdd) {
    if (!newTagsArray.contains(tag)) { newTagsArray.add(tag) }
  }
  ctx._source["kibana.alert.workflow_tags"] = newTagsArray;
} else {
  ctx._source["kibana.alert.workflow_tags"] = params.tagsToAdd;
}"""


def polling_query(since: Checkpoint | None, overlap_seconds: float, limit: int) -> dict[str, Any]:
    """The ``_search`` body of one poll page (protocols/polling_pattern.md).

    One extra hit is requested to learn whether another page follows. ``search_after`` is
    (since − overlap, since.uuid), the same boundary the range filter states, so ES can
    skip older segments while the tiebreaker keeps equal timestamps exact. ``lte: now`` keeps
    a future-stamped alert (clock skew) from dragging the checkpoint past alerts still to come.
    """
    window: dict[str, Any] = {"lte": "now", "format": "strict_date_optional_time"}
    body: dict[str, Any] = {
        "size": limit + 1,
        "query": {"bool": {
            "filter": [{"range": {"@timestamp": window}},
                       {"term": {"kibana.alert.workflow_status": "open"}}],
            "must_not": [{"exists": {"field": BUILDING_BLOCK}}],
        }},
        "sort": POLL_SORT,
        "track_total_hits": False,
    }
    if since is not None:
        start_ms = to_millis(since.timestamp) - round(overlap_seconds * 1000)
        window["gte"] = iso_millis(datetime.fromtimestamp(start_ms / 1000, tz=UTC))
        body["search_after"] = [start_ms, since.uuid]
    return body


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


class ClosingReasonRefused(SiemError, ValueError):
    """Kibana 9.2+ refused the closing reason: not documented, not a configured custom one.

    A ``ValueError`` too, like the embedded SIEM's refusal, so callers handle both alike.
    """


def _siem_error(text: str) -> SiemError:
    """A :class:`SiemError` whose text carries no credential (URL userinfo, keys, tokens)."""
    return SiemError(redact(text))


def _older_kibana(status_code: int, text: str) -> bool:
    """True when Kibana's body schema has no ``reason`` key at all (before 9.2).

    Only that answer may switch reasons off. A refused *value* (``… is an invalid closing
    reason``, or a custom reason outside 1–1024 characters) must not: the status change would
    then be retried without the reason and close the alert with no reason, silently.
    """
    return status_code == 400 and "Unrecognized key" in text and "'reason'" in text


def _kept_reason(status: str, reason: str | None) -> str | None:
    """The reason to send: only a close keeps one (as Kibana does).

    The reason itself is Kibana's to judge: besides its documented list it accepts custom
    reasons configured in its advanced settings, which SecBot cannot see from here.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown alert status {status!r}; expected one of {STATUSES}")
    return reason if status == "closed" else None


def _es_reason(exc: ApiError) -> str:
    body = exc.body
    try:
        return str(body["error"]["root_cause"][0]["reason"])
    except (KeyError, IndexError, TypeError):
        return str(body)[:300]


class ElasticSiem:
    """The :class:`~secbot.siem.base.Siem` contract on Elasticsearch + Kibana.

    ``es`` and ``kibana`` are built by the composition root (:func:`build_elastic_siem`);
    ``kibana=None`` selects the ``_update_by_query`` fallback. ``close()`` closes both.
    """

    def __init__(self, es: AsyncElasticsearch, kibana: httpx.AsyncClient | None, *,
                 index: str, space: str = "default", retry: RetryPolicy | None = None,
                 workflow_user: str | None = None) -> None:
        self._es = es
        self._kibana = kibana
        self.index = index
        self.space = space
        self._retry = retry or SIEM_RETRY
        self._workflow_user = workflow_user
        self._kibana_takes_reason = True
        nodes = es.transport.node_pool.all()
        # Redacted once: these names go into every error message.
        self.es_url = redact(str(nodes[0].base_url)) if nodes else "<elasticsearch>"
        self.kibana_url = redact(str(kibana.base_url).rstrip("/")) if kibana is not None else None

    # --- Elasticsearch plumbing --------------------------------------------------------------
    async def _es_call(self, what: str, index: str, call: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                return await call()
            except ApiError as exc:
                status = exc.meta.status
                if status == 429 or status >= 500:
                    raise RetryableError(f"HTTP {status} {exc.message}: {_es_reason(exc)}",
                                         retry_after=_retry_after(exc.meta.headers)) from exc
                raise _siem_error(f"Elasticsearch at {self.es_url} refused {what} on index "
                                  f"{index!r}: HTTP {status} {exc.message}: {_es_reason(exc)}"
                                  ) from exc
            except (EsConnectionError, EsConnectionTimeout) as exc:
                raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

        try:
            return await retry_async(attempt, self._retry, what=f"Elasticsearch {what}")
        except RetryableError as exc:
            raise _siem_error(f"Elasticsearch at {self.es_url} unavailable for {what} on index "
                              f"{index!r} after retries: {exc}") from exc

    # --- reads -------------------------------------------------------------------------------
    async def fetch_new(self, since: Checkpoint | None, *, overlap_seconds: float = 0.0,
                        limit: int = 500) -> Page:
        """One page of open, non-building-block alerts after ``since`` − overlap.

        No ``ignore_unavailable``: a misspelt alerts index must surface as a 404 SiemError,
        not as an endlessly quiet poller.
        """
        body = polling_query(since, overlap_seconds, max(1, limit))
        response = await self._es_call(
            "poll", self.index, lambda: self._es.search(index=self.index, **body))
        hits = response["hits"]["hits"]
        return Page(alerts=[Alert.from_hit(hit) for hit in hits[:limit]],
                    more=len(hits) > limit)

    async def _lookup(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Hits whose ``_id`` or ``kibana.alert.uuid`` is one of ``ids``."""
        query = {"bool": {"should": [{"ids": {"values": list(ids)}},
                                     {"terms": {"kibana.alert.uuid": list(ids)}}],
                          "minimum_should_match": 1}}
        response = await self._es_call("lookup", self.index, lambda: self._es.search(
            index=self.index, query=query, size=2 * len(ids), track_total_hits=False))
        return list(response["hits"]["hits"])

    async def get(self, alert_id: str) -> Alert | None:
        """The alert with this ``_id`` (preferred) or ``kibana.alert.uuid``."""
        hits = await self._lookup([alert_id])
        hits.sort(key=lambda hit: hit["_id"] != alert_id)
        return Alert.from_hit(hits[0]) if hits else None

    async def search(self, filters: Mapping[str, Any], *, index: str | None = None,
                     since: datetime | None = None, size: int = 50) -> list[dict[str, Any]]:
        """``_source``s whose fields equal ``filters`` (``term``), newest first.

        A missing investigation index is an empty answer, not an error.
        """
        target = index or self.index
        clauses: list[dict[str, Any]] = [
            {"terms": {name: list(value)}} if isinstance(value, (list, tuple))
            else {"term": {name: value}} for name, value in filters.items()]
        if since is not None:
            clauses.append({"range": {"@timestamp": {
                "gte": iso_millis(since), "format": "strict_date_optional_time"}}})
        response = await self._es_call("search", target, lambda: self._es.search(
            index=target, query={"bool": {"filter": clauses}}, size=size,
            sort=[{"@timestamp": {"order": "desc", "unmapped_type": "date"}}],
            track_total_hits=False, ignore_unavailable=True))
        return [dict(hit["_source"]) for hit in response["hits"]["hits"]]

    # --- writes ------------------------------------------------------------------------------
    async def set_status(self, ids: Sequence[str], status: Status, *, reason: str | None,
                         user: str) -> StatusChange:
        """Change status through Kibana (or the fallback); same status counts as a no-op.

        Current statuses are read first: Elasticsearch counts a document the script left
        unchanged as "updated", so the response alone cannot tell no-ops apart.
        """
        kept_reason = _kept_reason(status, reason)
        wanted = list(dict.fromkeys(ids))
        hits = await self._lookup(wanted) if wanted else []
        current: dict[str, tuple[str, Any]] = {}  # requested id -> (_id, current status)
        for hit in sorted(hits, key=lambda hit: hit["_id"] not in wanted):  # _id wins
            alert = Alert.from_hit(hit)
            for key in (hit["_id"], alert.uuid):
                if key in wanted:
                    current.setdefault(key, (hit["_id"], alert.get_field(WORKFLOW_STATUS)))
        changing = list(dict.fromkeys(
            doc_id for doc_id, state in current.values() if state not in (None, status)))
        if changing and self._kibana is not None:
            await self._kibana_status(changing, status, kept_reason)
        elif changing:
            await self._update_by_query("update status", changing, STATUS_SCRIPT, {
                "status": status, "workflowUser": self._workflow_user,
                "updatedAt": iso_millis(datetime.now(UTC)), "reason": kept_reason})
        unchanged = sum(1 for _, state in current.values() if state in (None, status))
        return StatusChange(updated=len(changing), noops=unchanged,
                            missing=tuple(i for i in wanted if i not in current))

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        """Add ``tags`` to ``kibana.alert.workflow_tags`` (Kibana ``signals/tags``)."""
        if not ids or not tags:
            return
        if self._kibana is None:
            await self._update_by_query("add tags", list(ids), TAGS_SCRIPT,
                                        {"tagsToAdd": list(dict.fromkeys(tags)),
                                         "tagsToRemove": []})
            return
        body = {"ids": list(ids), "tags": {"tags_to_add": list(tags), "tags_to_remove": []}}
        response = await self._kibana_send("signals/tags", body)
        self._check_kibana(response, "signals/tags")

    async def _update_by_query(self, what: str, ids: list[str], source: str,
                               params: dict[str, Any]) -> None:
        async def run() -> Any:
            response = await self._es.update_by_query(
                index=self.index, query={"bool": {"filter": {"terms": {"_id": ids}}}},
                script={"source": source, "lang": "painless", "params": params},
                refresh=True, ignore_unavailable=True, conflicts="proceed")
            if response.get("version_conflicts"):
                # Someone wrote the same alerts meanwhile; the scripts are idempotent.
                raise RetryableError(f"{response['version_conflicts']} version conflicts")
            return response

        await self._es_call(what, self.index, run)

    # --- Kibana ------------------------------------------------------------------------------
    def _kibana_path(self, route: str) -> str:
        prefix = "" if self.space == "default" else f"/s/{self.space}"
        return f"{prefix}/api/detection_engine/{route}"

    async def _kibana_send(self, route: str, body: dict[str, Any]) -> httpx.Response:
        assert self._kibana is not None
        client, path = self._kibana, self._kibana_path(route)

        async def attempt() -> httpx.Response:
            try:
                response = await client.post(path, json=body, headers=KIBANA_HEADERS)
            except httpx.TransportError as exc:  # connect errors and timeouts
                raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryableError(f"HTTP {response.status_code}: {response.text[:200]}",
                                     retry_after=_retry_after(response.headers))
            return response

        try:
            return await retry_async(attempt, self._retry, what=f"Kibana {route}")
        except RetryableError as exc:
            raise _siem_error(f"Kibana at {self.kibana_url}{path} unavailable (alerts index "
                              f"{self.index!r}, space {self.space!r}) after retries: {exc}"
                              ) from exc

    def _check_kibana(self, response: httpx.Response, route: str) -> Any:
        if response.is_success:
            return response.json()
        raise _siem_error(f"Kibana at {self.kibana_url}{self._kibana_path(route)} refused the "
                          f"request for alerts index {self.index!r} (space {self.space!r}): "
                          f"HTTP {response.status_code}: {response.text[:300]}")

    async def _kibana_status(self, ids: list[str], status: str, reason: str | None) -> Any:
        body: dict[str, Any] = {"signal_ids": ids, "status": status}
        if reason is not None and self._kibana_takes_reason:
            body["reason"] = reason
        response = await self._kibana_send("signals/status", body)
        if "reason" in body and _older_kibana(response.status_code, response.text):
            # An older Kibana whose schema has no closing reason: remember and carry on;
            # the reason survives in the caller's audit entry and tags.
            log.warning("Kibana at %s rejects the closing reason key (%s); sending status "
                        "changes without it from now on", self.kibana_url,
                        redact(response.text[:200]))
            self._kibana_takes_reason = False
            del body["reason"]
            response = await self._kibana_send("signals/status", body)
        elif response.status_code == 400 and "invalid closing reason" in response.text:
            # 9.2+: a custom reason not listed in the advanced settings. Nothing was changed;
            # say which setting would make it valid rather than closing without the reason.
            shown = (reason or "")[:80]
            raise ClosingReasonRefused(redact(
                f"Kibana at {self.kibana_url} refused the close: {shown!r} is an invalid closing "
                "reason there (neither one of Kibana's closing reasons nor listed in its "
                "advanced setting securitySolution:detectionsCloseReasons); the alert was not "
                "changed"))
        return self._check_kibana(response, "signals/status")

    # --- lifecycle ---------------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            await self._es.info()
        except Exception:  # a health probe reports, it does not raise
            return False
        return True

    async def close(self) -> None:
        await self._es.close()
        if self._kibana is not None:
            await self._kibana.aclose()


__all__ = ["SIEM_RETRY", "ClosingReasonRefused", "ElasticSiem", "polling_query"]
