"""Prometheus metrics of the ingress, on a registry of its own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "autobiz_ingress_events",
            "Webhook requests by source and outcome (stored, duplicate, held, dead_letter, "
            "ignored, rejected_*, unavailable, error).",
            ["source", "outcome"],
            registry=r,
        )
        self.signature_failures = Counter(
            "autobiz_ingress_signature_failures",
            "Requests refused because no tenant's secret verified the signature.",
            ["source", "reason"],
            registry=r,
        )
        self.security_incidents = Counter(
            "autobiz_ingress_security_incidents",
            "Signed events refused because they named another tenant's object.",
            ["source", "code"],
            registry=r,
        )
        self.verifications = Counter(
            "autobiz_ingress_signature_checks",
            "Signature verifications attempted (one per request that reached the check).",
            ["source"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "autobiz_ingress_ack_seconds",
            "Time from request start to the answer, by source and outcome.",
            ["source", "outcome"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.held = Counter(
            "autobiz_ingress_held", "Events held by the ordering gate.", ["source"], registry=r
        )
        self.released = Counter(
            "autobiz_ingress_released",
            "Held events released (reason: precondition | timeout).",
            ["source", "reason"],
            registry=r,
        )
        self.handoffs = Counter(
            "autobiz_ingress_handoffs",
            "Hand-offs to workflows by outcome (handed_over, retry, dead_letter, skipped).",
            ["source", "outcome"],
            registry=r,
        )
        self.open_events = Gauge(
            "autobiz_ingress_relay_backlog",
            "Pending events the relay saw at its last pass.",
            registry=r,
        )
