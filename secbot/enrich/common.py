"""What every built-in enricher shares: a lookup key derived from the alert, and no raising.

A built-in enricher is a :class:`Source`: besides ``enrich(alert)`` and ``lookup(key)`` it says
which key an alert maps to (:meth:`Source.key_for`) and how keys are normalised, so the cache
and circuit-breaker wrappers (:mod:`secbot.enrich.cache`, :mod:`secbot.enrich.breaker`) can sit
in front of ``lookup`` and still serve ``enrich``.

Outcomes are three kinds of :class:`~secbot.enrich.base.Enrichment`:

* available data;
* *not found*: the provider answered, the thing does not exist. The reason ends in
  ``"not found"``; it is cached briefly and does not count against the provider's breaker;
* *failed*: timeout, 401, 429 after retries, 5xx, garbage. Never cached; counts as a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import httpx
import structlog

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment, EnrichmentFailure
from secbot.domain.errors import SecBotError

A = TypeVar("A")

log = structlog.stdlib.get_logger(__name__)

NOT_FOUND = "not found"


class ProviderError(SecBotError):
    """The provider failed (HTTP error, bad payload…); the message becomes the reason."""


class NotFoundError(ProviderError):
    """The provider answered that the looked-up thing does not exist."""


class InvalidKeyError(NotFoundError):
    """The key cannot name such a thing (not an email…): nothing to ask the provider.

    Treated like "not found" so a stream of odd alerts never trips the provider's breaker.
    """


def not_found(name: str, what: str) -> Enrichment:
    """The "not found" outcome: ``unavailable`` with a reason ending in ``not found``."""
    return Enrichment.unavailable(name, f"{what} {NOT_FOUND}", EnrichmentFailure.NOT_FOUND)


def is_not_found(result: Enrichment) -> bool:
    return result.failure is EnrichmentFailure.NOT_FOUND


def is_failure(result: Enrichment) -> bool:
    """A provider failure (as opposed to data or a definite "not found")."""
    return not result.available and not is_not_found(result)


def parse_fields(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"a.b, c"`` or ``["a.b", "c"]`` → ``("a.b", "c")``."""
    items = spec.split(",") if isinstance(spec, str) else spec
    return tuple(item.strip() for item in items if item and item.strip())


def scalar_values(value: Any) -> list[str]:
    """The non-empty string forms of a field value (arrays give each element)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [
        str(v).strip()
        for v in values
        if v is not None and not isinstance(v, Mapping) and str(v).strip()
    ]


def first_value(alert: Alert, fields: Sequence[str]) -> str | None:
    """The first non-empty value among ``fields`` (in order) on the alert."""
    for name in fields:
        values = scalar_values(alert.get_field(name))
        if values:
            return values[0]
    return None


@runtime_checkable
class Source(Protocol):
    """A keyed enricher the wrappers can stand in front of."""

    name: str

    def key_for(self, alert: Alert) -> str | None:
        """The lookup key this alert maps to, or None when the alert lacks the fields."""

    def from_alert(self, alert: Alert) -> Enrichment | None:
        """A result built from data already on the alert (no I/O), or None."""

    def normalize_key(self, key: str) -> str:
        """The canonical form of ``key`` (lower-case email…), used for cache keys too."""

    async def enrich(self, alert: Alert) -> Enrichment: ...

    async def lookup(self, key: str) -> Enrichment: ...


async def enrich_via(
    source: Source, alert: Alert, lookup: Callable[[str], Awaitable[Enrichment]]
) -> Enrichment:
    """``enrich(alert)`` for any :class:`Source`: alert-local data first, else ``lookup(key)``."""
    try:
        local = source.from_alert(alert)
        if local is not None:
            return local
        key = source.key_for(alert)
    except Exception as exc:  # a malformed alert must not break the pipeline
        return Enrichment.unavailable(source.name, f"cannot read alert: {exc}")
    if key is None:
        fields = getattr(source, "fields", ())
        return Enrichment.unavailable(
            source.name, f"alert has no value to look up ({', '.join(fields) or 'no fields'})"
        )
    return await lookup(key)


class SourceBase:
    """Base class of the built-in enrichers: subclasses implement :meth:`fetch` only.

    :meth:`lookup` turns every exception into ``unavailable`` so the contract "never raises"
    holds in one place instead of seven.
    """

    name: str = ""
    fields: tuple[str, ...] = ()

    def key_for(self, alert: Alert) -> str | None:
        value = first_value(alert, self.fields)
        return self.normalize_key(value) if value else None

    def from_alert(self, alert: Alert) -> Enrichment | None:
        return None

    def normalize_key(self, key: str) -> str:
        return key.strip()

    async def enrich(self, alert: Alert) -> Enrichment:
        return await enrich_via(self, alert, self.lookup)

    async def lookup(self, key: str) -> Enrichment:
        key = self.normalize_key(str(key))
        if not key:
            return Enrichment.unavailable(self.name, "empty lookup key")
        try:
            data = await self.fetch(key)
        except NotFoundError as exc:
            return not_found(self.name, str(exc) or repr(key))
        except ProviderError as exc:
            return Enrichment.unavailable(self.name, str(exc))
        except httpx.TimeoutException:
            return Enrichment.unavailable(self.name, "provider timed out")
        except httpx.HTTPError as exc:
            return Enrichment.unavailable(self.name, f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the contract: an enricher bug becomes "unavailable"
            log.exception("enricher %s failed on lookup", self.name)
            return Enrichment.unavailable(self.name, f"{type(exc).__name__}: {exc}")
        return Enrichment.ok(self.name, data)

    async def fetch(self, key: str) -> Mapping[str, Any]:
        """The provider call; raise :class:`NotFoundError` / :class:`ProviderError`."""
        raise NotImplementedError


class SourceWrapper:
    """Base of the wrappers (cache, breaker) around a :class:`Source`: they delegate how keys
    are found and normalised to the source they wrap and only change ``lookup``."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = inner.name
        self.fields = getattr(inner, "fields", ())

    def key_for(self, alert: Alert) -> str | None:
        return self.inner.key_for(alert)

    def from_alert(self, alert: Alert) -> Enrichment | None:
        return self.inner.from_alert(alert)

    def normalize_key(self, key: str) -> str:
        return self.inner.normalize_key(key)

    async def enrich(self, alert: Alert) -> Enrichment:
        return await enrich_via(self, alert, self.lookup)

    async def lookup(self, key: str) -> Enrichment:
        raise NotImplementedError


class EmailKeyedSource(SourceBase, Generic[A]):
    """A source keyed by a person's email, answered by a pluggable provider adapter
    (on-call, JIT): validates the key once, so no adapter sends a non-email to a provider."""

    def __init__(
        self, http: httpx.AsyncClient, adapter: A, *, fields: Iterable[str] = ("user.email",)
    ) -> None:
        self.fields = tuple(fields)
        self._http = http
        self._adapter = adapter

    def normalize_key(self, key: str) -> str:
        return key.strip().lower()

    async def fetch(self, key: str) -> Mapping[str, Any]:
        if "@" not in key:
            raise InvalidKeyError(f"{key!r} (not an email address)")
        return await self.fetch_email(key)

    async def fetch_email(self, email: str) -> Mapping[str, Any]:
        raise NotImplementedError
