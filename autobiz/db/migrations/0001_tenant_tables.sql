-- 0001: the tenant tables of DESIGN §5, row-level security forced on each, and the
-- application role that owns nothing and cannot bypass RLS.

DO $$
BEGIN
    CREATE ROLE autobiz_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
EXCEPTION
    WHEN duplicate_object THEN NULL;
    WHEN unique_violation THEN NULL;  -- two migrators creating the cluster-wide role at once
END
$$;

-- The tenant id the current transaction acts for; NULL when none was set.
CREATE FUNCTION app_current_tenant() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '') $$;

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_state (
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    order_id    text NOT NULL,
    version     integer NOT NULL DEFAULT 1 CHECK (version > 0),
    state       text NOT NULL,
    state_hash  text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id)
);

CREATE TABLE receipts (
    receipt_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants (tenant_id),
    workflow_id         text NOT NULL,
    run_id              text NOT NULL,
    activity_id         text NOT NULL,
    tool                text NOT NULL,
    tool_version        text NOT NULL,
    side_effect_class   text NOT NULL CHECK (side_effect_class IN ('WRITE', 'FINANCIAL', 'COMMUNICATION')),
    internal_key        text NOT NULL,
    external_key        text NOT NULL,
    request_hash        text NOT NULL,
    provider            text NOT NULL,
    provider_object_id  text,
    status              text NOT NULL,
    amount_minor        bigint,
    currency            char(3),
    details             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, internal_key),
    CHECK (side_effect_class <> 'FINANCIAL' OR (amount_minor IS NOT NULL AND currency IS NOT NULL))
);

CREATE TABLE idempotency_keys (
    tenant_id      text NOT NULL REFERENCES tenants (tenant_id),
    internal_key   text NOT NULL,
    external_key   text NOT NULL,
    tool           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed')),
    result         jsonb,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    hit_count      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, internal_key)
);

CREATE TABLE event_store (
    event_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants (tenant_id),
    source             text NOT NULL CHECK (source IN ('stripe', 'shopify', 'printful', 'sendgrid', 'internal')),
    provider_event_id  text NOT NULL,
    delivery_id        text,
    topic              text NOT NULL,
    entity_key         text,
    payload            jsonb,
    payload_sha256     text NOT NULL,
    signature_valid    boolean NOT NULL,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'held', 'handed_over', 'dead_letter', 'ignored')),
    status_reason      text,
    timeout_released   boolean NOT NULL DEFAULT false,
    attempts           integer NOT NULL DEFAULT 0,
    received_at        timestamptz NOT NULL DEFAULT now(),
    handed_over_at     timestamptz,
    UNIQUE (tenant_id, source, provider_event_id)
);
CREATE INDEX event_store_tenant_source_idx ON event_store (tenant_id, source, received_at);
CREATE INDEX event_store_tenant_status_idx ON event_store (tenant_id, status, received_at);
CREATE INDEX event_store_entity_idx ON event_store (tenant_id, entity_key, received_at);

CREATE TABLE hitl_requests (
    request_id        text NOT NULL,
    tenant_id         text NOT NULL REFERENCES tenants (tenant_id),
    workflow_id       text NOT NULL,
    run_id            text,
    action            text NOT NULL,
    required_role     text NOT NULL,
    amount_minor      bigint,
    currency          char(3),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    escalation_level  integer NOT NULL DEFAULT 0,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    decided_by        text,
    decided_at        timestamptz,
    reason            text,
    details           jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX hitl_requests_pending_idx ON hitl_requests (tenant_id, status, requested_at);

CREATE TABLE reconciliation (
    drift_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    run_id       text NOT NULL,
    kind         text NOT NULL,
    order_id     text,
    entity_ref   text NOT NULL,
    financial    boolean NOT NULL,
    expected     jsonb,
    actual       jsonb,
    action       text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'repaired', 'pending_approval', 'dismissed')),
    detected_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    -- Composite key: a row can only point at an order of its own tenant.
    FOREIGN KEY (tenant_id, order_id) REFERENCES order_state (tenant_id, order_id)
);
CREATE INDEX reconciliation_tenant_status_idx ON reconciliation (tenant_id, status, detected_at);

CREATE TABLE traces (
    trace_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    workflow_id  text NOT NULL,
    run_id       text,
    seq          integer NOT NULL,
    kind         text NOT NULL,
    tool         text,
    outcome      text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    cost_usd     numeric(14, 6) NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, workflow_id, run_id, seq)
);
CREATE INDEX traces_workflow_idx ON traces (tenant_id, workflow_id, seq);

CREATE TABLE daily_metrics (
    tenant_id  text NOT NULL REFERENCES tenants (tenant_id),
    day        date NOT NULL,
    metric     text NOT NULL,
    value      numeric NOT NULL,
    currency   char(3),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day, metric)
);

CREATE TABLE audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    actor       text NOT NULL,
    action      text NOT NULL,
    outcome     text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Row-level security: enabled and forced (so even the owner is filtered) on every
-- tenant table, one policy per table on the transaction-local tenant setting.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'order_state', 'receipts', 'idempotency_keys',
                             'event_store', 'hitl_requests', 'reconciliation', 'traces',
                             'daily_metrics', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) '
            'WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END
$$;

-- Receipts are append-only for everyone, owner included.
CREATE FUNCTION receipts_are_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'receipts are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER receipts_append_only
    BEFORE UPDATE OR DELETE ON receipts
    FOR EACH ROW EXECUTE FUNCTION receipts_are_append_only();
CREATE TRIGGER receipts_no_truncate
    BEFORE TRUNCATE ON receipts
    FOR EACH STATEMENT EXECUTE FUNCTION receipts_are_append_only();

-- Grants: the application role reads and writes through RLS, never owns, never deletes receipts.
GRANT USAGE ON SCHEMA public TO autobiz_app;
GRANT EXECUTE ON FUNCTION app_current_tenant() TO autobiz_app;
GRANT SELECT ON tenants TO autobiz_app;
GRANT SELECT, INSERT ON receipts, audit_log TO autobiz_app;
GRANT SELECT, INSERT, UPDATE ON order_state, idempotency_keys, event_store, hitl_requests,
    reconciliation, daily_metrics TO autobiz_app;
GRANT DELETE ON idempotency_keys TO autobiz_app;
GRANT SELECT, INSERT ON traces TO autobiz_app;
