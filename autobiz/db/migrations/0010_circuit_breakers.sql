-- 0010: circuit breakers shared by every worker process (issue 14 item 1; DESIGN §8).
--
-- One row per provider account: (tenant, provider). Each worker admits a provider call
-- and records its outcome in a short transaction holding the row's lock
-- (SELECT ... FOR UPDATE), so the state machine in autobiz/breakers/machine.py runs once
-- per step whichever worker takes it. Times are the database's clock, one clock for
-- every worker.
--   state:          closed | open | half_open
--   window_start, calls, failures: the closed state's current counting window
--   opened_at, open_until: the last time it opened and until when it refuses calls
--   probes, probe_deadline: half-open probes admitted and not yet reported, and when
--                   unreported ones are forgotten (their worker died)
--
-- breaker_events keeps every transition (who, why, from which call): the breaker's
-- trace. An operator's reset is also an audit_log row (action 'breaker.reset').

CREATE TABLE circuit_breakers (
    tenant_id       text NOT NULL REFERENCES tenants (tenant_id),
    provider        text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_]{1,31}$'),
    state           text NOT NULL DEFAULT 'closed'
                    CHECK (state IN ('closed', 'open', 'half_open')),
    window_start    timestamptz,
    calls           integer NOT NULL DEFAULT 0 CHECK (calls >= 0),
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0 AND failures <= calls),
    opened_at       timestamptz,
    open_until      timestamptz,
    probes          integer NOT NULL DEFAULT 0 CHECK (probes >= 0),
    probe_deadline  timestamptz,
    last_failure    text,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider),
    CHECK (state <> 'open' OR open_until IS NOT NULL)
);

CREATE TABLE breaker_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    provider    text NOT NULL,
    from_state  text NOT NULL CHECK (from_state IN ('closed', 'open', 'half_open')),
    to_state    text NOT NULL CHECK (to_state IN ('closed', 'open', 'half_open')),
    reason      text NOT NULL,
    actor       text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX breaker_events_key_idx ON breaker_events (tenant_id, provider, created_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['circuit_breakers', 'breaker_events']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) '
            'WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE ON circuit_breakers TO autobiz_app;
-- Transitions are appended, never changed.
GRANT SELECT, INSERT ON breaker_events TO autobiz_app;
