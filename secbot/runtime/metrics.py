"""Prometheus metrics, on a registry owned by the service (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """The counters and histograms ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_polled = Counter(
            "secbot_alerts_polled", "Alerts handed to the pipeline", registry=r
        )
        self.alerts_posted = Counter(
            "secbot_alerts_posted", "Top-level Slack posts", ["rule"], registry=r
        )
        self.alerts_threaded = Counter(
            "secbot_alerts_threaded", "Duplicates threaded as context", ["rule"], registry=r
        )
        self.alerts_auto_closed = Counter(
            "secbot_alerts_auto_closed", "Alerts closed by expression", ["rule"], registry=r
        )
        self.alerts_human_status = Counter(
            "secbot_alerts_status_changed_by_human",
            "Status changes made from Slack",
            ["status"],
            registry=r,
        )
        self.enrichment_seconds = Histogram(
            "secbot_enrichment_seconds",
            "Enricher latency",
            ["enricher", "outcome"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.slack_api_errors = Counter(
            "secbot_slack_api_errors", "Slack Web API errors", ["error"], registry=r
        )
        self.poll_errors = Counter("secbot_poll_errors", "Failed polls", ["kind"], registry=r)
        # Push intake (DESIGN.md §11): every answer by source and HTTP status, and the alerts
        # durably accepted. A 404's source is "(unknown)" (clients do not pick labels).
        self.intake_requests = Counter(
            "secbot_intake_requests", "Intake answers", ["source", "code"], registry=r
        )
        self.intake_alerts_accepted = Counter(
            "secbot_intake_alerts_accepted", "Alerts stored by the intake (202)", ["source"],
            registry=r,
        )

    def observe_enrichment(self, name: str, seconds: float, ok: bool) -> None:
        self.enrichment_seconds.labels(name, "ok" if ok else "unavailable").observe(seconds)

    def observe_intake(self, source: str, status: int, accepted: int) -> None:
        self.intake_requests.labels(source, str(status)).inc()
        if accepted:
            self.intake_alerts_accepted.labels(source).inc(accepted)

    def render(self) -> bytes:
        return generate_latest(self.registry)
