"""Stage: related alerts (contextual linking) for a new top-level message.

"Also open for this user/host in the last hour: 3 alerts (rules …)" with links, so a triager
sees at once that the sign-in alert belongs with the two others still open for the same person.

One bounded SIEM search per alert at most: open alerts of the last hour (``size`` ≤ 50) where
any of the rule's entity fields (:data:`ENTITY_FIELDS`, only those the rule lists in ``fields``)
has this alert's value. Answers are cached for about a minute, keyed by the entity values, and
concurrent alerts of one entity share one search in flight — a storm of one user costs one
search, not one per alert. The cache keeps a few words per alert, never documents.

Fails soft: a search that fails or is slow (``timeout``) just leaves the line out; it is never
a reason to delay or drop the alert.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from cachetools import TTLCache

from secbot.domain.alert import Alert
from secbot.domain.group import storm_key
from secbot.domain.secrets import redact
from secbot.pipeline.match import Match
from secbot.render.blocks import Related, RelatedLink
from secbot.rules.ruleset import CompiledRule
from secbot.siem.base import Siem
from secbot.store.base import Store

log = structlog.stdlib.get_logger(__name__)

#: Entity fields searched when the rule lists them, and how the line names each.
ENTITY_FIELDS: Mapping[str, str] = {"user.email": "user", "host.name": "host",
                                    "source.ip": "IP"}
MAX_SIZE = 50
SHOWN_LINKS = 5
SHOWN_RULES = 3

EntityKey = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Seen:
    """What the line needs of one related alert (the cache holds these, not documents)."""

    uuid: str
    alert_id: str
    index: str
    rule_name: str
    timestamp: str


def entity_values(rule_fields: Sequence[str], fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """The rule's entity fields that have a value on this alert (a list gives each item)."""
    out: dict[str, list[str]] = {}
    for name in ENTITY_FIELDS:
        if name not in rule_fields:
            continue
        value = fields.get(name)
        items = value if isinstance(value, (list, tuple)) else [value]
        texts = [str(v) for v in items if isinstance(v, (str, int)) and str(v).strip()]
        if texts:
            out[name] = sorted(set(texts))[:10]
    return out


def _key(entities: Mapping[str, list[str]]) -> EntityKey:
    return tuple((name, tuple(values)) for name, values in sorted(entities.items()))


def _seen(alert: Alert) -> Seen:
    stamp = alert.get_field("@timestamp")
    return Seen(alert.uuid, alert.id or alert.uuid, alert.index or "", alert.rule_name,
                stamp if isinstance(stamp, str) else "")


class RelatedAlerts:
    """Computes the related-alerts line; one instance per service (it holds the cache)."""

    def __init__(
        self,
        siem: Siem,
        *,
        kibana_url: str | None = None,
        space: str = "default",
        window: float = 3600.0,
        size: int = MAX_SIZE,
        ttl: float = 60.0,
        timeout: float = 2.0,
        maxsize: int = 512,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.siem = siem
        self.kibana_url = kibana_url.rstrip("/") if kibana_url else None
        self.space = space
        self.window = window
        self.size = max(1, min(size, MAX_SIZE))
        self.timeout = timeout
        self.clock = clock
        self._cache: TTLCache[EntityKey, list[Seen]] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._inflight: dict[EntityKey, asyncio.Task[tuple[Seen, ...]]] = {}

    async def line(self, rule: CompiledRule, alert: Alert, fields: Mapping[str, Any]
                   ) -> Related | None:
        """The line for ``alert`` (None: no entity fields, nothing else open, or no answer)."""
        entities = entity_values(rule.rule.fields, fields)
        if not entities:
            return None
        try:
            found = await self._found(entities)
        except Exception as exc:  # fail soft: the alert goes out without the line
            log.info("related alerts search failed, line left out: %s",
                     redact(f"{type(exc).__name__}: {exc}"))
            return None
        others = [s for s in found if s.uuid != alert.uuid and s.alert_id != alert.id]
        self._remember(entities, alert, found)
        return self._render(entities, others, capped=len(found) >= self.size) if others else None

    def _remember(self, entities: Mapping[str, list[str]], alert: Alert,
                  found: tuple[Seen, ...]) -> None:
        """This alert is open too: the next alerts of the same entities within the cache's
        lifetime count it, although the cached answer was searched before it arrived."""
        if any(s.uuid == alert.uuid for s in found):
            return
        cached = self._cache.get(_key(entities))
        # Changed in place: re-assigning would restart the entry's TTL, and a steady storm of
        # one user would then never be searched again (closed alerts shown as open).
        if cached is not None and len(cached) < self.size:
            cached.insert(0, _seen(alert))

    async def _found(self, entities: Mapping[str, list[str]]) -> tuple[Seen, ...]:
        key = _key(entities)
        cached = self._cache.get(key)
        if cached is not None:
            return tuple(cached)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._search(entities))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        found = await asyncio.shield(task)
        if key not in self._cache:  # the first of several waiters stores it
            self._cache[key] = list(found)
        return found

    async def _search(self, entities: Mapping[str, list[str]]) -> tuple[Seen, ...]:
        since = self.clock() - timedelta(seconds=self.window)
        alerts = await asyncio.wait_for(
            self.siem.open_related(entities, since=since, size=self.size), self.timeout)
        return tuple(_seen(a) for a in alerts)

    def _render(self, entities: Mapping[str, list[str]], others: Sequence[Seen], *,
                capped: bool) -> Related:
        who = "/".join(ENTITY_FIELDS[name] for name in ENTITY_FIELDS if name in entities)
        rules = list(dict.fromkeys(s.rule_name or "unknown rule" for s in others))
        named = ", ".join(rules[:SHOWN_RULES]) + (", …" if len(rules) > SHOWN_RULES else "")
        count = f"{len(others)}+" if capped else str(len(others))
        plural = "" if len(others) == 1 and not capped else "s"
        hours = self.window / 3600
        span = "the last hour" if hours == 1 else f"the last {hours:g} hours"
        text = (f"Also open for this {who} in {span}: {count} alert{plural} "
                f"(rule{'s' if len(rules) > 1 else ''} {named})")
        return Related(text, tuple(self._link(s) for s in others[:SHOWN_LINKS]))

    def _link(self, seen: Seen) -> RelatedLink:
        label = seen.uuid[:8]
        if self.kibana_url is None:
            return RelatedLink("", label)
        prefix = "" if self.space == "default" else f"/s/{quote(self.space, safe='')}"
        query = urlencode({"index": seen.index, "timestamp": seen.timestamp})
        return RelatedLink(
            f"{self.kibana_url}{prefix}/app/security/alerts/redirect/"
            f"{quote(seen.alert_id, safe='')}?{query}", label)


async def related_line(related: RelatedAlerts | None, rule: CompiledRule, alert: Alert,
                       found: Match, duplicate_of: str | None, *, grouped: bool = False,
                       store: Store | None = None, channel: str | None = None
                       ) -> Related | None:
    """The stage as the pipeline calls it: only for an alert that gets a top-level message
    of its own. Not for a duplicate (threaded under its first alert, which has the line), a
    ``group.by`` member (``grouped``: a line of its group) or an alert arriving while its
    rule's storm is on in ``channel`` (a line of the storm group, whose header already
    aggregates it): a 10,000-alert storm then costs no search per alert. The storm check
    reads the store (the storm is shared by every replica); if the storm ends just as this
    alert arrives, it is posted without the line, which is optional by design."""
    if related is None or duplicate_of is not None or grouped:
        return None
    if store is not None and channel is not None:
        try:
            storm = await store.group_for_key(storm_key(rule.id, channel))
        except Exception:  # the store's trouble is the publisher's to handle, not this line's
            storm = None
        if storm is not None:
            return None
    return await related.line(rule, alert, found.fields)


__all__ = ["ENTITY_FIELDS", "RelatedAlerts", "entity_values", "related_line"]
