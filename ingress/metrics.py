"""Prometheus metrics of the ingress, on a registry of its own (one per app instance).

Named by the Prometheus conventions (``_total``, ``_seconds``); ``docs/metrics.md`` lists
them all. ``source`` is one of :class:`ingress.tenants.Source`, ``tenant`` one of the
tenants the ingress serves: bounded, no PII.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from ingress.tenants import Source

# No ``*_created`` series: nothing reads them, and they double every counter's series.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The statuses an event waits for the relay in (``event_store.status``).
WAITING = ("pending", "held")

ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "autobiz_ingress_events_total",
            "Webhook requests by source and outcome (pending, held, duplicate, dead_letter, "
            "ignored, rejected_*, unavailable, error).",
            ["source", "outcome"],
            registry=r,
        )
        self.signature_failures = Counter(
            "autobiz_ingress_signature_failures_total",
            "Requests refused because no tenant's secret verified the signature.",
            ["source", "reason"],
            registry=r,
        )
        self.security_incidents = Counter(
            "autobiz_ingress_security_incidents_total",
            "Signed events refused because they named another tenant's object.",
            ["source", "code"],
            registry=r,
        )
        self.verifications = Counter(
            "autobiz_ingress_signature_checks_total",
            "Signature verifications attempted (one per request that reached the check).",
            ["source"],
            registry=r,
        )
        self.ack_duration = Histogram(
            "autobiz_ingress_ack_duration_seconds",
            "Time from request start to the answer, by source and outcome.",
            ["source", "outcome"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.held = Counter(
            "autobiz_ingress_held_total",
            "Events held by the ordering gate.",
            ["source"],
            registry=r,
        )
        self.released = Counter(
            "autobiz_ingress_released_total",
            "Held events released (reason: precondition | timeout).",
            ["source", "reason"],
            registry=r,
        )
        self.handoffs = Counter(
            "autobiz_ingress_handoffs_total",
            "Hand-offs to workflows by outcome (handed_over, retry, dead_letter, skipped).",
            ["source", "outcome"],
            registry=r,
        )
        self.relay_backlog = Gauge(
            "autobiz_ingress_relay_backlog",
            "Events waiting for the relay at its last pass, by status (pending, held).",
            ["tenant", "source", "status"],
            registry=r,
        )
        self.relay_backlog_oldest = Gauge(
            "autobiz_ingress_relay_backlog_oldest_age_seconds",
            "Age of the oldest event waiting for the relay at its last pass (0 when none).",
            ["tenant", "source", "status"],
            registry=r,
        )

    def set_backlog(
        self, tenant: str, now: datetime, rows: Iterable[tuple[str, str, int, datetime]]
    ) -> None:
        """The tenant's waiting events, ``(source, status, count, oldest received_at)``
        per group; every (source, status) not in ``rows`` reads 0."""
        found = {(source, status): (n, oldest) for source, status, n, oldest in rows}
        for source in Source:
            for status in WAITING:
                n, oldest = found.get((source.value, status), (0, now))
                labels = {"tenant": tenant, "source": source.value, "status": status}
                self.relay_backlog.labels(**labels).set(n)
                self.relay_backlog_oldest.labels(**labels).set(
                    max((now - oldest).total_seconds(), 0.0)
                )
