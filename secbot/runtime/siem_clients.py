"""The SIEM-side stores the composition root builds from settings (nothing else builds them):
the SIEM itself and SecBot's own alerts store for mapped sources.

The Elasticsearch client and the Elastic backends are imported only when an Elastic store is
built: they take about half a second to import, which ``secbot stats`` on the embedded SQLite
store would otherwise pay on every run (``bench/bench_stats.py`` times the command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from secbot.resilience.retry import RetryPolicy
from secbot.runtime.errors import ConfigError
from secbot.runtime.settings import Settings
from secbot.siem.base import AlertArchive, Siem, SiemError
from secbot.siem.embedded import EmbeddedSiem
from secbot.siem.own_embedded import EmbeddedAlertStore

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from secbot.siem.elastic import ElasticSiem


def build_siem(settings: Settings) -> Siem:
    """The SIEM ``SECBOT_SIEM`` names."""
    if settings.siem == "embedded":
        return EmbeddedSiem(settings.embedded_db)
    return build_elastic_siem(settings)


def _elasticsearch(settings: Settings, request_timeout: float) -> AsyncElasticsearch:
    from elasticsearch import AsyncElasticsearch

    key = settings.elasticsearch_api_key
    return AsyncElasticsearch(settings.elasticsearch_url,
                              api_key=key.get_secret_value() if key else None,
                              request_timeout=request_timeout, max_retries=0,
                              retry_on_timeout=False)


def build_elastic_siem(settings: Settings, *, request_timeout: float = 10.0,
                       retry: RetryPolicy | None = None) -> ElasticSiem:
    """The composition root's factory: clients from settings, transport retries off."""
    import httpx

    from secbot.siem.elastic import ElasticSiem

    if not settings.elasticsearch_url:
        raise SiemError("SECBOT_ELASTICSEARCH_URL is not set (needed with SECBOT_SIEM=elastic)")
    es = _elasticsearch(settings, request_timeout)
    kibana = None
    if settings.kibana_url:
        key = settings.kibana_api_key or settings.elasticsearch_api_key
        headers = {"Authorization": f"ApiKey {key.get_secret_value()}"} if key else {}
        kibana = httpx.AsyncClient(base_url=settings.kibana_url, headers=headers,
                                   timeout=request_timeout)
    return ElasticSiem(es, kibana, index=settings.alerts_index, space=settings.kibana_space,
                       retry=retry)


def build_own_store(settings: Settings) -> AlertArchive:
    """SecBot's own alerts store for mapped sources: beside the SIEM it is configured for
    (a table of the embedded SQLite file, or an index of the same Elasticsearch)."""
    if settings.siem == "embedded":
        return EmbeddedAlertStore(settings.embedded_db)
    if not settings.elasticsearch_url:
        raise ConfigError("SECBOT_ELASTICSEARCH_URL: required for the alerts store of mapped "
                          "sources with SECBOT_SIEM=elastic")
    from secbot.siem.own_elastic import ElasticAlertStore

    return ElasticAlertStore(_elasticsearch(settings, 10.0))


__all__ = ["build_elastic_siem", "build_own_store", "build_siem"]
