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
from secbot.domain.stats import AlertStats
from secbot.domain.status import STATUSES, Status
from secbot.resilience.retry import RetryableError, RetryPolicy, retry_async
from secbot.siem.base import BULK_CHUNK, Checkpoint, Page, SiemError, StatusChange, chunks
from secbot.siem.documents import iso_millis
from secbot.siem.elastic_queries import (
    STATUS_SCRIPT,
    TAGS_SCRIPT,
    WORKFLOW_STATUS,
    lookup_query,
    polling_query,
    related_query,
)
from secbot.siem.elastic_stats import parse_stats, stats_body

T = TypeVar("T")
log = structlog.stdlib.get_logger(__name__)

#: Default for SIEM calls: six tries within 30 s. A poll that still fails is retried by the
#: poller's next cycle; a status change that fails is reported to the person who asked.
SIEM_RETRY = RetryPolicy(attempts=6, base=0.25, cap=5.0, budget=30.0, max_retry_after=10.0)

KIBANA_HEADERS = {"kbn-xsrf": "secbot", "elastic-api-version": "2023-10-31"}


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


def _missing(wanted: Sequence[str], found: Mapping[str, Alert]) -> tuple[str, ...]:
    return tuple(i for i in wanted if i not in found)


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
                 workflow_user: str | None = None, chunk: int = BULK_CHUNK) -> None:
        self._es = es
        self.chunk = chunk
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
        """Hits whose ``_id`` or ``kibana.alert.uuid`` is one of ``ids``: one search per
        :data:`BULK_CHUNK` ids, so a 1,000-alert group costs two reads, not a thousand."""
        hits: list[dict[str, Any]] = []
        for part in chunks(list(dict.fromkeys(ids)), self.chunk):
            hits.extend(await self._lookup_chunk(part))
        return hits

    async def _lookup_chunk(self, ids: list[str]) -> list[dict[str, Any]]:
        response = await self._es_call("lookup", self.index, lambda: self._es.search(
            index=self.index, query=lookup_query(ids), size=2 * len(ids),
            track_total_hits=False))
        return list(response["hits"]["hits"])

    async def get(self, alert_id: str) -> Alert | None:
        """The alert with this ``_id`` (preferred) or ``kibana.alert.uuid``."""
        return (await self.get_many([alert_id])).get(alert_id)

    async def get_many(self, ids: Sequence[str]) -> dict[str, Alert]:
        """The alerts among ``ids`` keyed by the id asked for; a hit's ``_id`` wins over
        another hit whose uuid is that id."""
        wanted = set(ids)
        found: dict[str, Alert] = {}
        for hit in sorted(await self._lookup(ids), key=lambda hit: hit["_id"] not in wanted):
            alert = Alert.from_hit(hit)
            for key in (hit["_id"], alert.uuid):
                if key in wanted:
                    found.setdefault(key, alert)
        return found

    async def open_related(self, any_of: Mapping[str, Sequence[str]], *, since: datetime,
                           size: int = 50) -> list[Alert]:
        """One bounded search: open alerts since ``since`` sharing any entity value."""
        wanted = {name: list(values) for name, values in any_of.items() if values}
        if not wanted or size <= 0:
            return []
        response = await self._es_call("related alerts", self.index, lambda: self._es.search(
            index=self.index, query=related_query(wanted, since), size=size,
            sort=[{"@timestamp": {"order": "desc", "unmapped_type": "date"}}],
            track_total_hits=False, ignore_unavailable=True))  # no index yet: nothing related
        return [Alert.from_hit(hit) for hit in response["hits"]["hits"]]

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

    async def stats(self, since: datetime, until: datetime, *,
                    previous_since: datetime | None = None, by_source: bool = False
                    ) -> AlertStats:
        """Counts per rule (and ``secbot.source`` when ``by_source``), both periods in ONE
        aggregation request; no hit comes back (:mod:`secbot.siem.elastic_stats`)."""
        body = stats_body(since, until, previous_since=previous_since, by_source=by_source)
        response = await self._es_call("stats", self.index, lambda: self._es.search(
            index=self.index, ignore_unavailable=True, **body))
        return parse_stats(response.body, since, until, previous_since=previous_since,
                           by_source=by_source)

    # --- writes ------------------------------------------------------------------------------
    async def set_status(self, ids: Sequence[str], status: Status, *, reason: str | None,
                         user: str) -> StatusChange:
        """Change status through Kibana (or the fallback), :data:`BULK_CHUNK` ids a call.

        Current statuses are read first (chunked too): Elasticsearch counts a document the
        script left unchanged as "updated", so the response alone cannot tell no-ops apart.
        A failing chunk ends the change: its ids and the later ones come back ``failed`` with
        the error, beside those already ``changed`` (see :class:`StatusChange`). Raised only
        when not one chunk was confirmed: a refused reason, a bad status, nothing reachable.
        """
        kept_reason = _kept_reason(status, reason)
        wanted = list(dict.fromkeys(ids))
        found = await self.get_many(wanted) if wanted else {}
        already = tuple(i for i in wanted if i in found
                        and found[i].get_field(WORKFLOW_STATUS) in (None, status))
        to_change = [i for i in wanted if i in found and i not in already]
        changed: list[str] = []
        for part in chunks(to_change, self.chunk):
            doc_ids = list(dict.fromkeys(found[i].id for i in part))
            try:
                await self._write_status(doc_ids, status, kept_reason)
            except Exception as exc:
                if not changed:
                    raise  # nothing confirmed: the caller learns it as before
                error = redact(f"{type(exc).__name__}: {exc}")
                log.warning("bulk status change stopped after %d of %d alerts: %s",
                            len(changed), len(to_change), error)
                return StatusChange(changed=tuple(changed), already=already,
                                    missing=_missing(wanted, found),
                                    failed=tuple(to_change[len(changed):]), error=error)
            changed.extend(part)
        return StatusChange(changed=tuple(changed), already=already,
                            missing=_missing(wanted, found))

    async def _write_status(self, doc_ids: list[str], status: Status, reason: str | None
                            ) -> None:
        if self._kibana is not None:
            await self._kibana_status(doc_ids, status, reason)
            return
        await self._update_by_query("update status", doc_ids, STATUS_SCRIPT, {
            "status": status, "workflowUser": self._workflow_user,
            "updatedAt": iso_millis(datetime.now(UTC)), "reason": reason})

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        """Add ``tags`` to ``kibana.alert.workflow_tags`` (Kibana ``signals/tags``), chunked."""
        if not ids or not tags:
            return
        for part in chunks(list(dict.fromkeys(ids)), self.chunk):
            if self._kibana is None:
                await self._update_by_query("add tags", part, TAGS_SCRIPT,
                                            {"tagsToAdd": list(dict.fromkeys(tags)),
                                             "tagsToRemove": []})
                continue
            body = {"ids": part, "tags": {"tags_to_add": list(tags), "tags_to_remove": []}}
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


__all__ = ["SIEM_RETRY", "STATUS_SCRIPT", "TAGS_SCRIPT", "ClosingReasonRefused", "ElasticSiem",
           "polling_query"]
