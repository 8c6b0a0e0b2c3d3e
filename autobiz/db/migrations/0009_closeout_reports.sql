-- 0009: the DailyCloseout's report (issue 12 item 4).
--
-- One report per tenant and tenant-local day: the CSV the closeout wrote from provider
-- truth, its sha256 (the signed link names the day, the hash shows a re-run wrote the
-- same bytes), the UTC window the day covered and the run that wrote it last. A re-run of
-- the day rewrites the row (and the day's daily_metrics rows) in one transaction.
--   runs: how many runs wrote the day (1 = closed once; more = re-run or caught up).

CREATE TABLE closeout_reports (
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    day           date NOT NULL,
    timezone      text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL CHECK (window_end > window_start),
    csv           text NOT NULL,
    csv_sha256    char(64) NOT NULL,
    summary       jsonb NOT NULL DEFAULT '{}'::jsonb,
    drift_count   integer NOT NULL DEFAULT 0 CHECK (drift_count >= 0),
    run_id        text NOT NULL,
    runs          integer NOT NULL DEFAULT 1 CHECK (runs > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

ALTER TABLE closeout_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE closeout_reports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON closeout_reports USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

GRANT SELECT, INSERT, UPDATE ON closeout_reports TO autobiz_app;
-- A re-run rewrites its day: a metric the provider no longer shows for that day (a
-- currency with nothing left in it) goes, under RLS like every other statement.
GRANT DELETE ON daily_metrics TO autobiz_app;
