"""Alert statistics on Elasticsearch: one aggregation request, no hit downloaded.

``terms`` on the SIEM rule name (``kibana.alert.rule.name``; SecBot's own rule ids live in
its rule files and Redis, not in alert documents), optionally under ``terms`` on
``secbot.source`` (SecBot's own alerts index), then per rule: ``terms`` on the workflow
status, a ``filter`` for closed by SecBot, a ``filter`` for acted on by a person with the
median delay (``percentiles`` at 50 of a runtime ``long`` field, ``workflow_status_updated_at``
− ``@timestamp`` in ms: Elasticsearch has no aggregation over a difference of two fields), and
under it a ``filter`` for closed with its own median and a ``terms`` on the closing reason.
Counting rules: :mod:`secbot.domain.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from secbot.domain.source import SIEM_SOURCE, SOURCE_FIELD
from secbot.domain.stats import (
    AUTO_CLOSE_TAG,
    BOT_USER,
    NO_REASON,
    NO_RULE,
    REOPEN_TAG_PREFIX,
    AlertStats,
    RuleCounts,
)
from secbot.siem.documents import (
    WORKFLOW_REASON,
    WORKFLOW_STATUS,
    WORKFLOW_TAGS,
    WORKFLOW_UPDATED_AT,
    WORKFLOW_USER,
    iso_millis,
)

RULE_NAME = "kibana.alert.rule.name"
BUILDING_BLOCK = "kibana.alert.building_block_type"
DELAY_FIELD = "secbot_stats_delay_ms"
#: Terms buckets asked for: far above the rules a deployment has; the rest is summed as
#: ``sum_other_doc_count`` by Elasticsearch and reported as one row (nothing is lost).
MAX_RULES = 1000
MAX_SOURCES = 100

#: ``doc.containsKey`` first: a field missing from the mapping would otherwise fail the
#: whole search on an index that never saw a status change.
DELAY_SCRIPT = (
    f"if (doc.containsKey('{WORKFLOW_UPDATED_AT}') && doc['{WORKFLOW_UPDATED_AT}'].size() > 0"
    " && doc['@timestamp'].size() > 0) {"
    f" emit(doc['{WORKFLOW_UPDATED_AT}'].value.toInstant().toEpochMilli()"
    " - doc['@timestamp'].value.toInstant().toEpochMilli()); }")

AUTO_CLOSED: dict[str, Any] = {"bool": {
    "filter": [{"term": {WORKFLOW_STATUS: "closed"}}],
    "should": [{"term": {WORKFLOW_USER: BOT_USER}}, {"term": {WORKFLOW_TAGS: AUTO_CLOSE_TAG}}],
    "minimum_should_match": 1,
    "must_not": [{"prefix": {WORKFLOW_TAGS: REOPEN_TAG_PREFIX}}],
}}
BY_PERSON: dict[str, Any] = {"bool": {"must_not": [{"term": {WORKFLOW_STATUS: "open"}},
                                                   AUTO_CLOSED]}}
_MEDIAN = {"percentiles": {"field": DELAY_FIELD, "percents": [50]}}


def _window(since: datetime, until: datetime) -> dict[str, Any]:
    return {"range": {"@timestamp": {"gte": iso_millis(since), "lt": iso_millis(until),
                                     "format": "strict_date_optional_time"}}}


def stats_body(since: datetime, until: datetime, *, previous_since: datetime | None = None,
               by_source: bool) -> dict[str, Any]:
    """The ``_search`` body: ``size: 0``, one window filter over both periods, and per
    period a ``filter`` aggregation (``current``, ``previous``) with the aggregations above."""
    per_rule = {
        "status": {"terms": {"field": WORKFLOW_STATUS, "size": 10}},
        "auto_closed": {"filter": AUTO_CLOSED},
        "by_person": {"filter": BY_PERSON, "aggs": {
            "delay": _MEDIAN,
            "closed": {"filter": {"term": {WORKFLOW_STATUS: "closed"}}, "aggs": {
                "delay": _MEDIAN,
                "reasons": {"terms": {"field": WORKFLOW_REASON, "size": 50,
                                      "missing": NO_REASON}}}}}},
    }
    rules = {"terms": {"field": RULE_NAME, "size": MAX_RULES, "missing": NO_RULE},
             "aggs": per_rule}
    inner: dict[str, Any] = {"rules": rules}
    if by_source:
        inner = {"sources": {"terms": {"field": SOURCE_FIELD, "size": MAX_SOURCES,
                                       "missing": SIEM_SOURCE}, "aggs": inner}}
    aggs: dict[str, Any] = {"current": {"filter": _window(since, until), "aggs": inner}}
    if previous_since is not None:
        aggs["previous"] = {"filter": _window(previous_since, since), "aggs": inner}
    return {
        "size": 0, "track_total_hits": False,
        "query": {"bool": {"filter": [_window(previous_since or since, until)],
                           "must_not": [{"exists": {"field": BUILDING_BLOCK}}]}},
        "runtime_mappings": {DELAY_FIELD: {"type": "long", "script": {"source": DELAY_SCRIPT}}},
        "aggs": aggs,
    }


def parse_stats(response: Mapping[str, Any], since: datetime, until: datetime, *,
                previous_since: datetime | None = None, by_source: bool) -> AlertStats:
    """The :class:`AlertStats` of a :func:`stats_body` response (no aggregations: none)."""
    aggs = response.get("aggregations") or {}
    return AlertStats(since=since, until=until,
                      rows=_period(aggs.get("current") or {}, by_source),
                      previous=_period(aggs.get("previous") or {}, by_source),
                      previous_since=previous_since)


def _period(aggs: Mapping[str, Any], by_source: bool) -> tuple[RuleCounts, ...]:
    if by_source:
        groups = [(str(b["key"]), b["rules"]) for b in aggs.get("sources", {}).get("buckets", [])]
    else:
        groups = [(SIEM_SOURCE, aggs["rules"])] if "rules" in aggs else []
    return tuple(_row(str(bucket["key"]), source, bucket)
                 for source, rules in groups for bucket in rules.get("buckets", []))


def _median_s(agg: Mapping[str, Any]) -> float | None:
    value = (agg.get("values") or {}).get("50.0")
    return None if value is None else float(value) / 1000.0


def _row(rule: str, source: str, bucket: Mapping[str, Any]) -> RuleCounts:
    statuses = {str(b["key"]): int(b["doc_count"]) for b in bucket["status"]["buckets"]}
    person = bucket["by_person"]
    closed = person["closed"]
    return RuleCounts(
        rule=rule, source=source, alerts=int(bucket["doc_count"]),
        auto_closed=int(bucket["auto_closed"]["doc_count"]),
        closed=int(closed["doc_count"]),
        acknowledged=statuses.get("acknowledged", 0) + statuses.get("in-progress", 0),
        open=statuses.get("open", 0),
        closed_by_reason=tuple((str(b["key"]), int(b["doc_count"]))
                               for b in closed["reasons"]["buckets"]),
        mtta_s=_median_s(person["delay"]), mttr_s=_median_s(closed["delay"]))


__all__ = ["DELAY_SCRIPT", "parse_stats", "stats_body"]
