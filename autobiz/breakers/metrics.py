"""The breakers' metrics, named by the Prometheus conventions.

The worker's endpoint adds ``_total`` to every counter (``counters_total_suffix``, see
``workers.worker.metrics_runtime``), so the counters are created without it.

They are recorded on the worker runtime's meter, not ``activity.metric_meter()``: that
one labels every series with the ``activity_type`` that happened to record it, and a
state gauge split by activity type would keep a stale OPEN series for every type that
saw the breaker open. Each worker process reports the state it last saw; the breaker
itself (``autobiz breaker status``) is the truth, so a dashboard takes ``max`` by
``provider, tenant``.

- ``autobiz_breaker_state{provider,tenant}``: 0 closed, 1 half-open, 2 open.
- ``autobiz_breaker_transitions_total{provider,tenant,from,to}``: state changes this
  process made (the breaker_events table holds all of them).
- ``autobiz_breaker_rejections_total{provider,tenant,state}``: calls failed fast.
"""

from __future__ import annotations

from temporalio.common import MetricMeter

from autobiz.breakers.machine import STATE_VALUE, BreakerState, Transition

BREAKER_STATE = "autobiz_breaker_state"
BREAKER_TRANSITIONS = "autobiz_breaker_transitions"  # scraped as ..._total
BREAKER_REJECTIONS = "autobiz_breaker_rejections"  # scraped as ..._total
METRIC_NAMES = (BREAKER_STATE, BREAKER_TRANSITIONS, BREAKER_REJECTIONS)


class BreakerMetrics:
    def __init__(self, meter: MetricMeter) -> None:
        self._state = meter.create_gauge(
            BREAKER_STATE, "Circuit breaker state: 0 closed, 1 half-open, 2 open."
        )
        self._transitions = meter.create_counter(
            BREAKER_TRANSITIONS, "Circuit breaker state changes, by the state left and entered."
        )
        self._rejections = meter.create_counter(
            BREAKER_REJECTIONS, "Provider calls an open (or probing) breaker failed fast."
        )

    def state(self, provider: str, tenant: str, state: BreakerState) -> None:
        self._state.set(STATE_VALUE[state], {"provider": provider, "tenant": tenant})

    def transition(self, provider: str, tenant: str, transition: Transition) -> None:
        labels = {
            "provider": provider,
            "tenant": tenant,
            "from": transition.from_state.value,
            "to": transition.to_state.value,
        }
        self._transitions.add(1, labels)

    def rejection(self, provider: str, tenant: str, state: BreakerState) -> None:
        self._rejections.add(1, {"provider": provider, "tenant": tenant, "state": state.value})
