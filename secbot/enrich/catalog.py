"""Names of the built-in enrichers a rule may list under ``enrich``, with what each returns.

The names are data for validation; the implementations are built by the composition root.
"""

from __future__ import annotations

BUILTIN_ENRICHERS: dict[str, str] = {
    "gcp_project": "{project_id, project_number, display_name, labels, parent, state}",
    "gcp_service_account": "{email, display_name, description, project_id, disabled}",
    "jit_permissions": "{grants: [{permission, resource, granted_at, expires_at, justification}]}",
    "oncall": "{on_call: bool, schedules: [...]}",
    "hr": "{email, name, division, title, manager, employment_status, terminated: bool}",
    "threat_intel": "{indicator, verdict, sources: [{provider, verdict, details}]}",
    "whois": "{query, registrar, created, young_domain: bool, network_owner}",
}
