"""``gcp_project``: a GCP project's display name, labels, parent and state (Resource Manager v3).

Uses google-cloud-resource-manager's ``ProjectsClient`` over its REST transport, so
``SECBOT_GCP_ENDPOINT`` can point at a stand-in; an ``http://`` endpoint means a local stand-in
and anonymous credentials, anything else Application Default Credentials. The client is
blocking, so calls run in a worker thread.

Keys: a project id (``prod-payments``) or number (``123456789012``), also accepted inside a
resource name (``projects/prod-payments/serviceAccounts/…``). Numbers go to ``GetProject``
(``projects/<number>`` is the documented name); ids go to ``SearchProjects`` with ``id:<id>``,
falling back to ``GetProject`` because search is eventually consistent (a project created a
minute ago may not be searchable yet, and GetProject resolves ids in practice).

GCP answers 403 for projects that do not exist as well as for those we may not see, so 403 is
reported as "not found" (and does not trip the breaker): for a rule both mean "no data".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError

from secbot.enrich.common import InvalidKeyError, NotFoundError, ProviderError, SourceBase
from secbot.enrich.http import retry_after_seconds
from secbot.resilience.retry import RetryableError, RetryPolicy, Sleep, retry_async

_RESOURCE = re.compile(r"(?:^|/)projects/([^/]+)")
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# Legacy "domain-scoped" ids look like example.com:my-project.
_SCOPED_ID = re.compile(r"^[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_NUMBER = re.compile(r"^\d{1,20}$")
_RETRYABLE = (
    gexc.TooManyRequests,
    gexc.ResourceExhausted,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
)


class ProjectsApi(Protocol):
    """The two ``ProjectsClient`` methods used (a fake in tests may implement just these)."""

    def get_project(self, *, name: str, retry: Any, timeout: float) -> Any: ...

    def search_projects(self, *, query: str, retry: Any, timeout: float) -> Iterable[Any]: ...


def default_projects_client(endpoint: str | None) -> ProjectsApi:
    """A REST ``ProjectsClient``: anonymous for an ``http://`` stand-in, else ADC."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import resourcemanager_v3

    options = {"api_endpoint": endpoint} if endpoint else None
    local = bool(endpoint and endpoint.startswith("http://"))
    client: ProjectsApi = resourcemanager_v3.ProjectsClient(
        credentials=AnonymousCredentials() if local else None,  # type: ignore[no-untyped-call]
        transport="rest",
        client_options=options,
    )
    return client


def project_to_dict(project: Any) -> dict[str, Any]:
    """A ``resourcemanager_v3.Project`` → the fixed ``gcp_project`` shape (plus extras)."""
    name = str(project.name or "")
    state = project.state
    create_time = getattr(project, "create_time", None)
    return {
        "project_id": project.project_id,
        "project_number": name.rsplit("/", 1)[-1] if name else None,
        "display_name": project.display_name or None,
        "labels": dict(project.labels),  # protobuf map → plain dict (rules index it)
        "parent": project.parent or None,
        "state": getattr(state, "name", str(state)),
        "create_time": create_time.isoformat() if create_time else None,
    }


def _retry_after(exc: gexc.GoogleAPICallError) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return retry_after_seconds(headers.get("Retry-After"))


class GcpProjectEnricher(SourceBase):
    """Project details by id or number; powers ``getProjectDetails(id)``."""

    name = "gcp_project"

    def __init__(
        self,
        client_factory: Callable[[], ProjectsApi],
        *,
        fields: Iterable[str] = ("cloud.project.id", "gcp.audit.resource_name"),
        policy: RetryPolicy | None = None,
        request_timeout: float = 4.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.fields = tuple(fields)
        self._factory = client_factory
        self._client: ProjectsApi | None = None
        self._client_lock = asyncio.Lock()
        self._policy = policy or RetryPolicy()
        self._timeout = request_timeout
        self._sleep = sleep

    def normalize_key(self, key: str) -> str:
        text = key.strip()
        match = _RESOURCE.search(text)
        return match.group(1) if match else text

    async def _api(self) -> ProjectsApi:
        # Built lazily, off the loop: finding ADC may touch the disk or the metadata server,
        # and a missing credential should be "unavailable", not a crash at start-up.
        async with self._client_lock:
            if self._client is None:
                try:
                    self._client = await asyncio.to_thread(self._factory)
                except Exception as exc:
                    raise ProviderError(f"GCP client unavailable: {exc}") from exc
            return self._client

    async def _call(self, fn: Callable[[ProjectsApi], Any], what: str) -> Any:
        api = await self._api()
        try:
            return await retry_async(
                lambda: self._once(fn, api, what), self._policy, what="GCP call", sleep=self._sleep
            )
        except RetryableError as exc:  # the policy's tries are spent
            raise ProviderError(str(exc)) from exc

    @staticmethod
    async def _once(fn: Callable[[ProjectsApi], Any], api: ProjectsApi, what: str) -> Any:
        """One try, its failure sorted: transient ones (``_RETRYABLE``, a refused connection)
        are :class:`RetryableError` for the shared policy; the rest end the call."""
        try:
            return await asyncio.to_thread(fn, api)
        except (gexc.NotFound, gexc.Forbidden) as exc:  # Forbidden covers PermissionDenied
            raise NotFoundError(what) from exc
        except gexc.Unauthorized as exc:
            raise ProviderError("GCP: unauthorized (HTTP 401), check credentials") from exc
        except GoogleAuthError as exc:
            # A 401 makes google-auth refresh the token; when that fails we land here.
            raise ProviderError(f"GCP: unauthorized, credentials rejected ({exc})") from exc
        except _RETRYABLE as exc:
            raise RetryableError(f"GCP: {exc.code} {type(exc).__name__}",
                                 retry_after=_retry_after(exc)) from exc
        except gexc.GoogleAPICallError as exc:
            raise ProviderError(f"GCP: {exc.code} {exc.message}") from exc
        except gexc.GoogleAPIError as exc:  # e.g. RetryError, DefaultCredentialsError
            raise ProviderError(f"GCP: {exc}") from exc
        except requests.Timeout as exc:  # not retried: the call's time budget is spent
            raise ProviderError("GCP: request timed out") from exc
        except requests.ConnectionError as exc:
            raise RetryableError(f"GCP: cannot connect ({type(exc).__name__})") from exc

    async def fetch(self, key: str) -> Mapping[str, Any]:
        if _NUMBER.match(key):
            project = await self._get(key)
        elif _PROJECT_ID.match(key) or _SCOPED_ID.match(key):
            project = await self._search(key) or await self._get(key)
        else:
            # Never splice arbitrary alert text into a search query.
            raise InvalidKeyError(f"{key!r} (not a GCP project id or number)")
        return project_to_dict(project)

    async def _get(self, key: str) -> Any:
        return await self._call(
            lambda api: api.get_project(name=f"projects/{key}", retry=None, timeout=self._timeout),
            f"project {key!r}",
        )

    async def _search(self, project_id: str) -> Any | None:
        def search(api: ProjectsApi) -> list[Any]:
            pager = api.search_projects(query=f"id:{project_id}", retry=None, timeout=self._timeout)
            # Search matches case-insensitively; only an exact id is the project we want.
            return [p for p in pager if p.project_id == project_id]

        found = await self._call(search, f"project {project_id!r}")
        return found[0] if found else None


__all__ = ["GcpProjectEnricher", "ProjectsApi", "default_projects_client", "project_to_dict"]
