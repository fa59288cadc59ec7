"""Request bodies ElasticSiem sends: the poll page, bulk lookups, related-alert searches,
and Kibana's own painless scripts for the ``_update_by_query`` fallback.

Pure functions of their arguments, so their shapes can be checked without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from secbot.siem.base import Checkpoint
from secbot.siem.documents import iso_millis, to_millis

BUILDING_BLOCK = "kibana.alert.building_block_type"
WORKFLOW_STATUS = "kibana.alert.workflow_status"
POLL_SORT = [{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": {"order": "asc"}}]

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


def lookup_query(ids: Sequence[str]) -> dict[str, Any]:
    """Hits whose ``_id`` or ``kibana.alert.uuid`` is one of ``ids`` (one chunk of them)."""
    return {"bool": {"should": [{"ids": {"values": list(ids)}},
                                {"terms": {"kibana.alert.uuid": list(ids)}}],
                     "minimum_should_match": 1}}


def related_query(any_of: Mapping[str, Sequence[str]], since: datetime) -> dict[str, Any]:
    """Open, non-building-block alerts since ``since`` matching any of the entity values."""
    return {"bool": {
        "filter": [{"term": {WORKFLOW_STATUS: "open"}},
                   {"range": {"@timestamp": {"gte": iso_millis(since),
                                             "format": "strict_date_optional_time"}}}],
        "should": [{"terms": {name: list(values)}} for name, values in any_of.items()],
        "minimum_should_match": 1,
        "must_not": [{"exists": {"field": BUILDING_BLOCK}}],
    }}


__all__ = ["BUILDING_BLOCK", "POLL_SORT", "STATUS_SCRIPT", "TAGS_SCRIPT", "WORKFLOW_STATUS",
           "lookup_query", "polling_query", "related_query"]
