"""The webhook ingress (DESIGN §7): signed provider webhooks in, durable events out.

Modules, one job each: ``signatures`` (pure verifiers), ``tenants`` (who may have sent
it), ``authn`` (which tenant's secret verified), ``body`` (size/encoding limits),
``events`` (normalise a verified body), ``store`` (insert once), ``ordering`` (the
hold/release gate), ``routing`` (topic → workflow), ``handoff`` (the Temporal seam),
``relay`` (pending → handed over, exactly once), ``metrics``, ``openapi``, ``app``
(the ASGI app) and ``server`` (built from Settings, served by uvicorn).
"""
