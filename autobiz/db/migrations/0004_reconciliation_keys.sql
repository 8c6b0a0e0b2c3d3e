-- 0004: what the Reconciliation workflow (issue 6 item 5) needs beyond 0001's table.
--
-- One row per drift, ever: a drift is (kind, entity_ref) -- a Stripe refund id, a
-- PaymentIntent id, a Printful order -- and a run that sees it again (an activity retry,
-- the next scheduled run, an operator re-running a window) finds the row instead of
-- adding one. A dismissed drift therefore stays dismissed: nobody is asked twice.
--   last_run_id / last_seen_at / seen_count: which run saw it last, when, how many runs;
--   (NULL last_run_id: no run has seen it since run_id, the one that found it);
--   details: how it was handled (approval request, approver, repair workflow, provider ids).

ALTER TABLE reconciliation ADD COLUMN last_run_id text;
ALTER TABLE reconciliation ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE reconciliation ADD COLUMN seen_count integer NOT NULL DEFAULT 1 CHECK (seen_count > 0);
ALTER TABLE reconciliation ADD COLUMN details jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE UNIQUE INDEX reconciliation_drift_key ON reconciliation (tenant_id, kind, entity_ref);
