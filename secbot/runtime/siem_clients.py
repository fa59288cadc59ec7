"""The SIEM clients the composition root builds from settings (nothing else builds them)."""

from __future__ import annotations

import httpx
from elasticsearch import AsyncElasticsearch

from secbot.resilience.retry import RetryPolicy
from secbot.runtime.settings import Settings
from secbot.siem.base import SiemError
from secbot.siem.elastic import ElasticSiem


def build_elastic_siem(settings: Settings, *, request_timeout: float = 10.0,
                       retry: RetryPolicy | None = None) -> ElasticSiem:
    """The composition root's factory: clients from settings, transport retries off."""
    if not settings.elasticsearch_url:
        raise SiemError("SECBOT_ELASTICSEARCH_URL is not set (needed with SECBOT_SIEM=elastic)")
    es_key = settings.elasticsearch_api_key
    es = AsyncElasticsearch(
        settings.elasticsearch_url,
        api_key=es_key.get_secret_value() if es_key else None,
        request_timeout=request_timeout, max_retries=0, retry_on_timeout=False,
    )
    kibana = None
    if settings.kibana_url:
        key = settings.kibana_api_key or es_key
        headers = {"Authorization": f"ApiKey {key.get_secret_value()}"} if key else {}
        kibana = httpx.AsyncClient(base_url=settings.kibana_url, headers=headers,
                                   timeout=request_timeout)
    return ElasticSiem(es, kibana, index=settings.alerts_index, space=settings.kibana_space,
                       retry=retry)


__all__ = ["build_elastic_siem"]
