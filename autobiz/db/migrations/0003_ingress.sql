-- 0003: what the webhook ingress needs beyond 0001's event_store (issue 6).
--   next_attempt_at: the relay backs off a failing hand-off instead of retrying hot;
--   released_at:     when the ordering gate released a held event (timeout or precondition).
-- The relay only scans pending/held rows, so it gets a partial index of its own.

ALTER TABLE event_store ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE event_store ADD COLUMN released_at timestamptz;

CREATE INDEX event_store_open_idx ON event_store (tenant_id, status, event_id)
    WHERE status IN ('pending', 'held');
