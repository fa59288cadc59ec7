"""SecBot's own alerts store in Elasticsearch: mapped-source alerts (DESIGN.md §11).

Threat Stack, ElastAlert and other mapped sources have no Kibana detection alerts behind
them, so SecBot keeps their alerts in an index of its own (``secbot-alerts`` by default, one
index for every source, told apart by ``secbot.source``) with the workflow fields Kibana
uses. They are then archived, searchable in Discover, counted and closable from Slack like
SIEM alerts.

Reads and tags reuse :class:`~secbot.siem.elastic.ElasticSiem` by composition (its
Elasticsearch fallback: no Kibana). Status changes are this module's own
``_update_by_query`` with Kibana's status script, because here SecBot is the authority: it
validates the closing reason as the embedded store does and credits the person in
``kibana.alert.workflow_user`` (Kibana's detection API is not involved at all).

Writes use ``refresh=true``: an auto-close follows the post within milliseconds and finds
its alert by query, and a person may react seconds later. Alert rates are far below those
where a refresh per write costs anything that matters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, ConflictError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import ConnectionTimeout as EsConnectionTimeout

from secbot.domain.alert import Alert
from secbot.domain.secrets import redact
from secbot.domain.stats import AlertStats
from secbot.domain.status import Status
from secbot.resilience.retry import RetryableError, RetryPolicy, retry_async
from secbot.siem.base import OWN_ALERTS_INDEX, Checkpoint, Page, SiemError, StatusChange
from secbot.siem.elastic import SIEM_RETRY, ElasticSiem
from secbot.siem.elastic_queries import STATUS_SCRIPT
from secbot.siem.embedded import iso_millis, validate_status

T = TypeVar("T")
WORKFLOW_STATUS = "kibana.alert.workflow_status"

#: Keyword strings (exact ``term`` matches and the poll sort on ``kibana.alert.uuid``, as in
#: Kibana's alerts indices), real dates for the time fields.
MAPPINGS: dict[str, Any] = {
    "dynamic_templates": [{"strings_as_keywords": {
        "match_mapping_type": "string",
        "mapping": {"type": "keyword", "ignore_above": 8191}}}],
    "properties": {
        "@timestamp": {"type": "date"},
        "kibana.alert.workflow_status_updated_at": {"type": "date"},
        "kibana.alert.uuid": {"type": "keyword"},
        "kibana.alert.workflow_status": {"type": "keyword"},
        "kibana.alert.workflow_tags": {"type": "keyword"},
        "secbot.source": {"type": "keyword"},
    },
}


class ElasticAlertStore:
    """The :class:`~secbot.siem.base.AlertArchive` contract on an Elasticsearch index."""

    def __init__(self, es: AsyncElasticsearch, *, index: str = OWN_ALERTS_INDEX,
                 retry: RetryPolicy | None = None) -> None:
        self._es = es
        self.index = index
        self._retry = retry or SIEM_RETRY
        self._reads = ElasticSiem(es, None, index=index, retry=self._retry)
        self._index_ready = False
        nodes = es.transport.node_pool.all()
        self.es_url = redact(str(nodes[0].base_url)) if nodes else "<elasticsearch>"

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` with transient failures retried; anything else a :class:`SiemError`."""
        async def attempt() -> T:
            try:
                return await call()
            except ApiError as exc:
                if exc.meta.status == 429 or exc.meta.status >= 500:
                    raise RetryableError(f"HTTP {exc.meta.status} {exc.message}") from exc
                raise SiemError(redact(
                    f"Elasticsearch at {self.es_url} refused {what} on SecBot's alerts index "
                    f"{self.index!r}: HTTP {exc.meta.status} {exc.message}: {exc.body}"[:600]
                )) from exc
            except (EsConnectionError, EsConnectionTimeout) as exc:
                raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

        try:
            return await retry_async(attempt, self._retry, what=f"Elasticsearch {what}")
        except RetryableError as exc:
            raise SiemError(redact(f"Elasticsearch at {self.es_url} unavailable for {what} on "
                                   f"SecBot's alerts index {self.index!r}: {exc}")) from exc

    async def ensure_index(self) -> None:
        """Create the index with :data:`MAPPINGS` unless it exists (idempotent)."""
        if self._index_ready:
            return

        async def create() -> None:
            try:
                await self._es.indices.create(index=self.index, mappings=MAPPINGS)
            except ApiError as exc:
                if "resource_already_exists_exception" not in str(exc.body):
                    raise

        await self._call("create index", create)
        self._index_ready = True

    # --- writes ------------------------------------------------------------------------------
    async def keep(self, alerts: Sequence[Alert]) -> list[Alert]:
        """``_create`` each alert by uuid; one that exists already comes back as stored."""
        await self.ensure_index()
        return [await self._keep_one(alert) for alert in alerts]

    async def _keep_one(self, alert: Alert) -> Alert:
        doc_id, source = alert.uuid, dict(alert.source)

        async def create() -> bool:
            try:
                await self._es.create(index=self.index, id=doc_id, document=source,
                                      refresh=True)
            except ConflictError:
                return False  # stored before: keep what is there (it may be closed)
            return True

        if await self._call("store alert", create):
            return Alert(source=source, id=doc_id, index=self.index)
        found = await self._reads.get(doc_id)
        if found is None:  # deleted between the conflict and the read: store it again
            return await self._keep_one(alert)
        return found

    async def set_status(self, ids: Sequence[str], status: Status, *, reason: str | None,
                         user: str) -> StatusChange:
        """Kibana's status script on this index, crediting ``user``; same status is a no-op."""
        kept_reason = validate_status(status, reason)
        wanted = list(dict.fromkeys(ids))
        current = await self._statuses(wanted) if wanted else {}
        changing = [doc_id for doc_id, state in current.items()
                    if state is not None and state != status]
        if changing:
            params = {"status": status, "workflowUser": user, "reason": kept_reason,
                      "updatedAt": iso_millis(datetime.now(UTC))}
            await self._update_by_query(changing, params)
        return StatusChange(changed=tuple(changing),
                            already=tuple(i for i in current if i not in changing),
                            missing=tuple(i for i in wanted if i not in current))

    async def _statuses(self, ids: list[str]) -> dict[str, Any]:
        """``_id`` → current workflow status of those of ``ids`` that exist."""
        response = await self._call("lookup", lambda: self._es.search(
            index=self.index, query={"ids": {"values": ids}}, size=len(ids),
            source_includes=[WORKFLOW_STATUS], track_total_hits=False,
            ignore_unavailable=True))
        return {hit["_id"]: Alert.from_hit(hit).get_field(WORKFLOW_STATUS)
                for hit in response["hits"]["hits"]}

    async def _update_by_query(self, ids: list[str], params: dict[str, Any]) -> None:
        async def run() -> Any:
            response = await self._es.update_by_query(
                index=self.index, query={"bool": {"filter": {"ids": {"values": ids}}}},
                script={"source": STATUS_SCRIPT, "lang": "painless", "params": params},
                refresh=True, conflicts="proceed")
            if response.get("version_conflicts"):
                # Written meanwhile (tags, another replica); the script is idempotent.
                raise RetryableError(f"{response['version_conflicts']} version conflicts")
            return response

        await self._call("update status", run)

    async def add_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        await self._reads.add_tags(ids, tags)

    # --- reads -------------------------------------------------------------------------------
    async def fetch_new(self, since: Checkpoint | None, *, overlap_seconds: float = 0.0,
                        limit: int = 500) -> Page:
        return await self._reads.fetch_new(since, overlap_seconds=overlap_seconds, limit=limit)

    async def get(self, alert_id: str) -> Alert | None:
        return await self._reads.get(alert_id)

    async def get_many(self, ids: Sequence[str]) -> dict[str, Alert]:
        return await self._reads.get_many(ids)

    async def open_related(self, any_of: Mapping[str, Sequence[str]], *, since: datetime,
                           size: int = 50) -> list[Alert]:
        return await self._reads.open_related(any_of, since=since, size=size)

    async def search(self, filters: Mapping[str, Any], *, index: str | None = None,
                     since: datetime | None = None, size: int = 50) -> list[dict[str, Any]]:
        return await self._reads.search(filters, index=index, since=since, size=size)

    async def stats(self, since: datetime, until: datetime, *,
                    previous_since: datetime | None = None) -> AlertStats:
        """Per (rule, ``secbot.source``): one aggregation request on this index."""
        return await self._reads.stats(since, until, previous_since=previous_since,
                                       by_source=True)

    async def ping(self) -> bool:
        return await self._reads.ping()

    async def close(self) -> None:
        await self._reads.close()


__all__ = ["MAPPINGS", "ElasticAlertStore"]
