"""Composition root for enrichers: settings → the configured enrichers, ready for the engine.

Only providers whose settings are present are built; a rule naming any other enricher gets
``unavailable("not configured")`` from the engine. Each enricher is wrapped, outermost first:

    CachedEnricher (TTL cache, shared by replicas through Redis; single flight per key)
      → GuardedEnricher (circuit breaker, per-call timeout, concurrency cap per provider)
        → the enricher (retries on 429/5xx inside each HTTP call)

so a cache hit costs neither a slot nor a breaker check, and a dead provider fails fast.

Nothing here runs at import; no environment is read. The caller owns ``redis`` and ``http``;
when ``http`` is not given one client is created and :meth:`EnricherSet.aclose` closes it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from redis.asyncio import Redis

from secbot.enrich.base import Enricher
from secbot.enrich.breaker import GuardedEnricher
from secbot.enrich.cache import CacheBackend, CachedEnricher, RedisCache
from secbot.enrich.common import Source, parse_fields
from secbot.enrich.gcp_project import GcpProjectEnricher, ProjectsApi, default_projects_client
from secbot.enrich.gcp_service_account import GcpServiceAccountEnricher, adc_auth, no_auth
from secbot.enrich.hr import HrEnricher
from secbot.enrich.jit_permissions import (
    EntitleAdapter,
    GenericJitAdapter,
    JitAdapter,
    JitPermissionsEnricher,
)
from secbot.enrich.oncall import OnCallAdapter, OnCallEnricher, OpsgenieAdapter, PagerDutyAdapter
from secbot.enrich.threat_intel import (
    AbuseIpDb,
    GreyNoiseCommunity,
    Provider,
    ThreatIntelEnricher,
    VirusTotal,
)
from secbot.enrich.whois import WhoisEnricher
from secbot.resilience.breaker import CircuitBreaker
from secbot.resilience.retry import RetryPolicy
from secbot.runtime.settings import Settings

#: requests' connection pool (used by the GCP client) holds 10 connections; more concurrent
#: calls would open and drop extra connections.
GCP_MAX_CONCURRENCY = 10


class EnricherSet(dict[str, Enricher]):
    """The enrichers by name; :meth:`aclose` releases the HTTP client if this set created it."""

    def __init__(self, owned_http: httpx.AsyncClient | None = None) -> None:
        super().__init__()
        self._owned_http = owned_http

    async def aclose(self) -> None:
        if self._owned_http is not None:
            await self._owned_http.aclose()
            self._owned_http = None


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if callable(getter) else None


class _Builder:
    """Shared wrapping policy for every enricher built from one :class:`Settings`."""

    def __init__(self, settings: Settings, cache: CacheBackend | None) -> None:
        self.s = settings
        self.cache = cache
        # A Retry-After longer than half the call's budget would only end in a timeout.
        self.policy = RetryPolicy(
            attempts=settings.enrich_retries + 1,
            budget=settings.enrich_provider_timeout,
            max_retry_after=min(10.0, settings.enrich_provider_timeout / 2),
        )

    def wrap(self, source: Source, *, ttl: float, concurrency: int | None = None) -> Enricher:
        s = self.s
        guarded = GuardedEnricher(
            source,
            breaker=CircuitBreaker(s.enrich_breaker_threshold, s.enrich_breaker_window),
            timeout=s.enrich_provider_timeout,
            concurrency=concurrency or s.enrich_concurrency,
        )
        return CachedEnricher(
            guarded,
            self.cache,
            ttl=ttl,
            negative_ttl=s.enrich_negative_ttl,
            local_ttl=s.enrich_local_cache_ttl,
        )


def _gcp(
    b: _Builder,
    out: EnricherSet,
    http: httpx.AsyncClient,
    projects_client: Callable[[], ProjectsApi] | None,
) -> None:
    s = b.s
    if not (s.gcp_enabled or s.gcp_endpoint):
        return
    endpoint = s.gcp_endpoint
    project = GcpProjectEnricher(
        projects_client or (lambda: default_projects_client(endpoint)),
        fields=parse_fields(s.gcp_project_fields),
        policy=b.policy,
        request_timeout=s.enrich_provider_timeout,
    )
    concurrency = min(s.enrich_concurrency, GCP_MAX_CONCURRENCY)
    out["gcp_project"] = b.wrap(project, ttl=s.enrich_cache_ttl, concurrency=concurrency)
    local = s.gcp_iam_url.startswith("http://")
    account = GcpServiceAccountEnricher(
        http,
        base_url=s.gcp_iam_url,
        auth=no_auth if local else adc_auth(),
        fields=parse_fields(s.gcp_service_account_fields),
        policy=b.policy,
    )
    out["gcp_service_account"] = b.wrap(account, ttl=s.enrich_cache_ttl)


def _jit(b: _Builder, out: EnricherSet, http: httpx.AsyncClient) -> None:
    s = b.s
    token = _secret(s.entitle_token)
    if not s.entitle_url:
        return
    adapter: JitAdapter
    if s.jit_provider == "generic":
        adapter = GenericJitAdapter(s.entitle_url, token, policy=b.policy)
    elif token:
        adapter = EntitleAdapter(s.entitle_url, token, policy=b.policy)
    else:
        return
    source = JitPermissionsEnricher(http, adapter, fields=parse_fields(s.jit_fields))
    out["jit_permissions"] = b.wrap(source, ttl=s.jit_cache_ttl)


def _oncall(b: _Builder, out: EnricherSet, http: httpx.AsyncClient) -> None:
    s = b.s
    adapter: OnCallAdapter
    if s.oncall_provider == "opsgenie":
        key = _secret(s.opsgenie_key)
        if not key:
            return
        adapter = OpsgenieAdapter(s.opsgenie_url, key, policy=b.policy)
    else:
        token = _secret(s.pagerduty_token)
        if not token:
            return
        adapter = PagerDutyAdapter(s.pagerduty_url, token, policy=b.policy)
    source = OnCallEnricher(http, adapter, fields=parse_fields(s.oncall_fields))
    out["oncall"] = b.wrap(source, ttl=s.oncall_cache_ttl)


def _hr(b: _Builder, out: EnricherSet, http: httpx.AsyncClient) -> None:
    s = b.s
    source = HrEnricher(
        http if s.hris_url else None,
        base_url=s.hris_url,
        token=_secret(s.hris_token),
        fields=parse_fields(s.hr_fields),
        alert_prefix=s.hr_alert_prefix,
        policy=b.policy,
    )
    # Without an HRIS, hr only reads the alert: no I/O to cache or guard.
    out["hr"] = b.wrap(source, ttl=s.enrich_cache_ttl) if source.has_hris else source


def _threat_intel(b: _Builder, out: EnricherSet, http: httpx.AsyncClient) -> None:
    s = b.s
    providers: list[Provider] = []
    if key := _secret(s.abuseipdb_key):
        providers.append(AbuseIpDb(s.abuseipdb_url, key, policy=b.policy))
    if key := _secret(s.greynoise_key):
        providers.append(GreyNoiseCommunity(s.greynoise_url, key, policy=b.policy))
    if key := _secret(s.virustotal_key):
        providers.append(VirusTotal(s.virustotal_url, key, policy=b.policy))
    if not providers:
        return
    source = ThreatIntelEnricher(
        http,
        providers,
        fields=parse_fields(s.threat_intel_fields),
        # Leave the whole-enricher timeout room to merge what did answer.
        provider_timeout=s.enrich_provider_timeout * 0.8,
        breaker_threshold=s.enrich_breaker_threshold,
        breaker_window=s.enrich_breaker_window,
    )
    out["threat_intel"] = b.wrap(source, ttl=s.enrich_cache_ttl)


def _whois(b: _Builder, out: EnricherSet, http: httpx.AsyncClient) -> None:
    s = b.s
    if not s.whois_enabled:
        return
    source = WhoisEnricher(
        http,
        base_url=s.rdap_url,
        fields=parse_fields(s.whois_fields),
        young_days=s.whois_young_days,
        policy=b.policy,
    )
    # Registrations change rarely: a day is fresh enough.
    out["whois"] = b.wrap(source, ttl=max(s.enrich_cache_ttl, 86400))


def build_enrichers(
    settings: Settings,
    *,
    redis: Redis | None = None,
    http: httpx.AsyncClient | None = None,
    projects_client: Callable[[], ProjectsApi] | None = None,
) -> EnricherSet:
    """The configured enrichers, each behind cache + breaker + concurrency cap.

    ``redis`` shares the cache between replicas (in-process cache without it); ``http`` is the
    client every HTTP enricher uses (one is created, and closed by ``aclose``, if omitted);
    ``projects_client`` overrides how the GCP Resource Manager client is built.
    """
    owned = None
    if http is None:
        owned = http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.enrich_provider_timeout),
            follow_redirects=True,
            headers={"User-Agent": "secbot-enricher"},
        )
    out = EnricherSet(owned)
    builder = _Builder(settings, RedisCache(redis, settings.redis_prefix) if redis else None)
    _gcp(builder, out, http, projects_client)
    _jit(builder, out, http)
    _oncall(builder, out, http)
    _hr(builder, out, http)
    _threat_intel(builder, out, http)
    _whois(builder, out, http)
    return out


__all__ = ["EnricherSet", "build_enrichers"]
