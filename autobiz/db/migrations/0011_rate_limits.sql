-- 0011: provider rate limits shared by every worker process (issue 15, B5; DESIGN §13).
--
-- One token bucket per provider account: (tenant, provider). A worker takes budget for a
-- request with rate_limit_take(), one statement, under the row's lock, on the database's
-- clock (one clock for every worker). Tokens may go below zero: a grant within the
-- caller's longest wait reserves a slot in the future (the caller sleeps until then), so
-- concurrent callers queue in order instead of all retrying at once.
--   tokens:     budget left at updated_at (negative: slots already promised ahead)
--   updated_at: when tokens was computed

CREATE TABLE rate_limit_buckets (
    tenant_id   text NOT NULL REFERENCES tenants (tenant_id),
    provider    text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_]{1,31}$'),
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, provider)
);

ALTER TABLE rate_limit_buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_limit_buckets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_limit_buckets USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT, UPDATE ON rate_limit_buckets TO autobiz_app;

-- Take p_cost from the bucket of (the transaction's tenant, p_provider), refilled at
-- p_rate per second up to p_capacity. Granted when the budget is there within
-- p_max_wait seconds (wait_seconds: how long the caller must wait before sending);
-- refused otherwise, taking nothing (wait_seconds: when it would be there). A negative
-- p_cost gives budget back (a Shopify query that cost less than reserved).
-- SECURITY INVOKER: row-level security applies as for any other statement.
CREATE FUNCTION rate_limit_take(
    p_provider text, p_capacity double precision, p_rate double precision,
    p_cost double precision, p_max_wait double precision
)
RETURNS TABLE (granted boolean, wait_seconds double precision)
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
DECLARE
    v_tenant text := app_current_tenant();
    v_tokens double precision;
    v_stamp timestamptz;
    v_now timestamptz;
    v_avail double precision;
    v_wait double precision;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'rate_limit_take needs app.tenant_id';
    END IF;
    IF p_capacity <= 0 OR p_rate <= 0 THEN
        RAISE EXCEPTION 'rate_limit_take needs a positive capacity and rate';
    END IF;
    SELECT b.tokens, b.updated_at INTO v_tokens, v_stamp
      FROM rate_limit_buckets b
     WHERE b.tenant_id = v_tenant AND b.provider = p_provider FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO rate_limit_buckets (tenant_id, provider, tokens)
        VALUES (v_tenant, p_provider, p_capacity)
        ON CONFLICT (tenant_id, provider) DO NOTHING;
        SELECT b.tokens, b.updated_at INTO v_tokens, v_stamp
          FROM rate_limit_buckets b
         WHERE b.tenant_id = v_tenant AND b.provider = p_provider FOR UPDATE;
    END IF;
    v_now := greatest(clock_timestamp(), v_stamp);  -- the clock once the lock is held
    v_avail := least(p_capacity,
                     v_tokens + extract(epoch FROM v_now - v_stamp)::double precision * p_rate);
    v_wait := greatest(0.0, (p_cost - v_avail) / p_rate);
    IF p_cost > 0 AND v_wait > p_max_wait THEN
        RETURN QUERY SELECT false, v_wait;
        RETURN;
    END IF;
    UPDATE rate_limit_buckets b
       SET tokens = least(p_capacity, v_avail - p_cost), updated_at = v_now
     WHERE b.tenant_id = v_tenant AND b.provider = p_provider;
    RETURN QUERY SELECT true, v_wait;
END
$$;
REVOKE ALL ON FUNCTION rate_limit_take(text, double precision, double precision,
    double precision, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rate_limit_take(text, double precision, double precision,
    double precision, double precision) TO autobiz_app;
