"""Prometheus metrics, on a registry owned by the service (no global registry)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from secbot.destinations.jobs import DestinationState


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
        self._destination_gauges(r)

    def _destination_gauges(self, r: CollectorRegistry) -> None:
        # Destinations (issue 13): the outbox's state, read from Redis at each scrape (shared
        # by the replicas, so every replica shows the same numbers).
        self.destination_queued = Gauge(
            "secbot_destination_queued", "Outbox jobs waiting", ["destination"], registry=r)
        self.destination_failing = Gauge(
            "secbot_destination_failing", "1 while the last call failed and is retried",
            ["destination"], registry=r)
        self.destination_oldest = Gauge(
            "secbot_destination_oldest_job_seconds", "Age of the oldest waiting job",
            ["destination"], registry=r)
        self.destination_jobs = Gauge(
            "secbot_destination_jobs", "Jobs finished, by outcome (since the outbox began)",
            ["destination", "outcome"], registry=r)

    def observe_destinations(self, states: Sequence[DestinationState]) -> None:
        for s in states:
            self.destination_queued.labels(s.name).set(s.queued)
            self.destination_failing.labels(s.name).set(1 if s.failing else 0)
            self.destination_oldest.labels(s.name).set(s.oldest_age)
            self.destination_jobs.labels(s.name, "sent").set(s.sent)
            self.destination_jobs.labels(s.name, "failed").set(s.failed)

    def observe_enrichment(self, name: str, seconds: float, ok: bool) -> None:
        self.enrichment_seconds.labels(name, "ok" if ok else "unavailable").observe(seconds)

    def observe_intake(self, source: str, status: int, accepted: int) -> None:
        self.intake_requests.labels(source, str(status)).inc()
        if accepted:
            self.intake_alerts_accepted.labels(source).inc(accepted)

    def render(self) -> bytes:
        return generate_latest(self.registry)
