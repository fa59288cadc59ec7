"""Expression functions backed by an enricher (DESIGN.md §10 "Functions pull their enricher").

The expression never performs I/O: the pipeline asks :meth:`Expression.io_calls` which calls an
expression would make, looks each one up with the named enricher (concurrently), and passes
the results in ``EvalContext.resolved``. During evaluation an I/O function only converts the
resolved enrichment data into the value the rule author sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import freeze


@dataclass(frozen=True)
class IoFunction:
    """An expression function whose value comes from an enricher lookup.

    ``convert`` turns the enricher's data mapping into the value seen by the expression; it may
    raise ``ValueError`` when the data does not have the documented shape, which makes the
    enrichment count as unavailable. ``arity`` is the number of positional arguments.
    """

    name: str
    enricher: str
    convert: Callable[[Mapping[str, Any]], Any]
    arity: int = 1


@dataclass(frozen=True, slots=True)
class ProjectDetails:
    """What ``getProjectDetails(project_id)`` returns: a read-only view of a GCP project.

    Attribute names follow the original expr-lang rules (``.Labels["instance-type"]``).
    """

    ProjectId: str | None
    ProjectNumber: str | None
    DisplayName: str | None
    Labels: Mapping[str, Any]
    Parent: str | None
    State: str | None


def _frozen_mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValueError("labels is not a mapping")
    if isinstance(value, MappingProxyType):
        return value
    frozen: Mapping[str, Any] = freeze(value)
    return frozen


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def project_details(data: Mapping[str, Any]) -> ProjectDetails:
    """gcp_project data ``{project_id, project_number, display_name, labels, parent, state}``."""
    return ProjectDetails(
        ProjectId=_optional_text(data.get("project_id")),
        ProjectNumber=_optional_text(data.get("project_number")),
        DisplayName=_optional_text(data.get("display_name")),
        Labels=_frozen_mapping(data.get("labels")),
        Parent=_optional_text(data.get("parent")),
        State=_optional_text(data.get("state")),
    )


def on_call(data: Mapping[str, Any]) -> bool:
    """oncall data ``{on_call: bool, schedules: [...]}`` → ``on_call``.

    A missing or non-boolean ``on_call`` is an error, not False: ``!isUserOnCall(x)`` must not
    become true because the enricher returned something unexpected.
    """
    value = data.get("on_call")
    if not isinstance(value, bool):
        raise ValueError("oncall data has no boolean 'on_call'")
    return value


#: The I/O functions by name.
IO_FUNCTIONS: Mapping[str, IoFunction] = MappingProxyType({
    "getProjectDetails": IoFunction("getProjectDetails", "gcp_project", project_details),
    "isUserOnCall": IoFunction("isUserOnCall", "oncall", on_call),
})

#: Attributes an expression may read on the objects I/O functions return.
PUBLIC_ATTRIBUTES: Mapping[type, frozenset[str]] = MappingProxyType({
    ProjectDetails: frozenset(f.name for f in fields(ProjectDetails)),
})
