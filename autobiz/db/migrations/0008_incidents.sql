-- 0008: incidents, one row per invariant violation the InvariantMonitor finds (issue 12
-- item 5; DESIGN §3 INV-01..INV-08, §8 "invariant violation").
--
-- An incident is (kind, entity_ref): the invariant (INV-05, INV-07, ...) and the thing
-- that breaks it (a receipt, an idempotency key, a run, an approval, an order). At most
-- one incident per (tenant, kind, entity_ref) is open or acknowledged at a time: a run
-- that finds it again (an activity retry, the next scheduled run) bumps last_seen /
-- occurrences instead of adding a row. Once resolved, a new violation of the same
-- entity opens a new incident (the resolved one stays the record).
--   status:    open -> acknowledged -> resolved (open -> resolved allowed too)
--   diagnosis: {cause, evidence, alternatives: [{explanation, rejected_because}],
--               recommended_action} -- what the monitor thinks and why
--   acknowledged_by/_at, resolved_by/_at, resolution: who moved it and when

CREATE TABLE incidents (
    incident_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (tenant_id),
    kind             text NOT NULL CHECK (kind ~ '^INV-0[1-8]$'),
    check_name       text NOT NULL,
    entity_ref       text NOT NULL CHECK (length(entity_ref) BETWEEN 1 AND 500),
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'acknowledged', 'resolved')),
    summary          text NOT NULL,
    diagnosis        jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    occurrences      integer NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    first_run_id     text NOT NULL,
    last_run_id      text NOT NULL,
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    resolved_by      text,
    resolved_at      timestamptz,
    resolution       text,
    CHECK (status = 'open' OR acknowledged_by IS NOT NULL OR resolved_by IS NOT NULL),
    CHECK (status <> 'resolved' OR (resolved_by IS NOT NULL AND resolved_at IS NOT NULL))
);

-- The dedup key: one live (open or acknowledged) incident per (tenant, kind, entity).
CREATE UNIQUE INDEX incidents_live_key ON incidents (tenant_id, kind, entity_ref)
    WHERE status IN ('open', 'acknowledged');
CREATE INDEX incidents_tenant_status_idx ON incidents (tenant_id, status, last_seen);

ALTER TABLE incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE incidents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incidents USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- Incidents are moved, never deleted.
GRANT SELECT, INSERT, UPDATE ON incidents TO autobiz_app;
