"""Investigation commands' answers: enrichment lookups and authentication-log searches.

Every value shown comes from alert data or a provider, so every value is mrkdwn-escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from secbot.commands.context import CommandContext, Reply
from secbot.domain.alert import lookup
from secbot.domain.enrichment import Enrichment
from secbot.enrich.engine import EnrichmentEngine
from secbot.render import mrkdwn as md
from secbot.siem.base import Siem, SiemError


def _reply(text: str, ephemeral: bool = False) -> Reply:
    return Reply(md.truncate(text, md.MESSAGE_TEXT_MAX), ephemeral)


def _enrichment_text(title: str, result: Enrichment) -> str:
    if not result.available:
        return f"*{md.escape(title)}*: unavailable — {md.escape(result.error)}"
    lines = [f"*{md.escape(title)}*"]
    lines += [f"• {md.escape(k)}: {md.escape(v)}" for k, v in result.data.items()]
    return "\n".join(lines)


class Investigator:
    """Answers ``locate user``, ``whois``, ``ti``, ``gcp project``, ``oncall``, ``alert``."""

    def __init__(
        self,
        engine: EnrichmentEngine,
        siem: Siem,
        *,
        auth_indices: Sequence[str] = ("logs-*",),
        lookback: timedelta = timedelta(days=7),
        size: int = 200,
    ) -> None:
        self.engine = engine
        self.siem = siem
        self.auth_indices = tuple(auth_indices)
        self.lookback = lookback
        self.size = size

    async def _enricher(self, name: str, key: str | None, what: str, title: str) -> Reply:
        if not key:
            return _reply(f"Which {what}? Give one, or ask in an alert's thread.", True)
        if not self.engine.configured(name):
            return _reply(f"`{name}` is not configured on this SecBot.")
        return _reply(_enrichment_text(f"{title} {key}", await self.engine.lookup(name, key)))

    async def whois(self, key: str | None) -> Reply:
        return await self._enricher("whois", key, "domain or IP", "WHOIS")

    async def threat_intel(self, key: str | None) -> Reply:
        return await self._enricher("threat_intel", key, "IP, domain or hash", "Threat intel for")

    async def gcp_project(self, key: str | None) -> Reply:
        return await self._enricher("gcp_project", key, "project id", "GCP project")

    async def oncall(self, key: str | None) -> Reply:
        return await self._enricher("oncall", key, "email", "On-call status of")

    async def alert_summary(self, ctx: CommandContext) -> Reply:
        if not ctx.alert_uuid:
            return _reply("Ask `alert` inside an alert's thread.", True)
        record = ctx.alert
        lines = [
            f"*Alert* `{md.escape(ctx.alert_uuid)}` · rule "
            f"{md.escape((record.rule_id if record else None) or 'none')} · severity "
            f"{md.escape((record.severity if record else None) or 'unknown')}"
        ]
        alert = await self.siem.get((record.id if record else "") or ctx.alert_uuid)
        lines.append(
            f"Status in the SIEM: *{md.escape(alert.workflow_status if alert else 'gone')}*"
        )
        for name, value in (record.fields if record else {}).items():
            lines.append(f"• {md.escape(name)}: {md.escape(value)}")
        return _reply("\n".join(lines))

    async def locate_user(self, email: str | None) -> Reply:
        if not email:
            return _reply("Which user? `locate user alice@example.com`, or ask in a thread.", True)
        since = datetime.now(UTC) - self.lookback
        hits: list[dict[str, Any]] = []
        try:
            for index in self.auth_indices:
                hits += await self.siem.search(
                    {"user.email": email}, index=index, since=since, size=self.size
                )
        except SiemError as exc:
            return _reply(f"Authentication logs unavailable: {md.escape(exc)}")
        return _reply(locate_summary(email, hits, self.lookback))


def locate_summary(email: str, hits: Sequence[Mapping[str, Any]], lookback: timedelta) -> str:
    """Recent IPs (with place), apps and last-seen time from authentication events."""
    days = lookback.days or 1
    if not hits:
        return f"No authentication events for {md.escape(email)} in the last {days} days."
    places: Counter[str] = Counter()
    apps: Counter[str] = Counter()
    for hit in hits:
        ip = lookup(hit, "source.ip") or "?"
        where = ", ".join(
            str(p)
            for p in (lookup(hit, "source.geo.city_name"), lookup(hit, "source.geo.country_name"))
            if p
        )
        places[f"{ip} ({where})" if where else str(ip)] += 1
        apps[str(lookup(hit, "event.dataset") or "unknown")] += 1
    last = max(str(lookup(h, "@timestamp") or "") for h in hits)
    lines = [
        f"*{md.escape(email)}*: {len(hits)} authentication events in the last {days} days; "
        f"last at {md.escape(last)}",
        "*IPs and places*",
    ]
    lines += [f"• {md.escape(p)} ×{n}" for p, n in places.most_common(10)]
    lines.append("*Apps*: " + ", ".join(f"{md.escape(a)} ×{n}" for a, n in apps.most_common(8)))
    return "\n".join(lines)
