-- 0006: the email outbox (issue 10, "email sends are at-most-once per message identity").
--
-- One row per message identity (the sendgrid.send_email call's internal key), claimed in
-- its own committed transaction BEFORE SendGrid is called:
--   sending  -> claimed, SendGrid called (or about to be); no answer recorded yet
--   sent     -> SendGrid accepted it (message_id); final
--   not_sent -> SendGrid's answer (or a connection that never opened) says it was not
--               accepted; the next attempt may claim it again (attempts + 1)
--   unknown  -> an attempt found a claim no answer was recorded for (a worker killed
--               between SendGrid's answer and the record, a read timeout): it may have
--               gone out, so it is never sent again; ops are told (audit_log). A late
--               answer may still turn it into sent.
-- No recipient address is stored (PII stays in Temporal's encrypted payloads).

CREATE TABLE email_outbox (
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    internal_key  text NOT NULL,
    external_key  text NOT NULL,  -- sent to SendGrid as custom_args.autobiz_ref
    workflow_id   text NOT NULL,
    template      text NOT NULL,
    status        text NOT NULL CHECK (status IN ('sending', 'sent', 'not_sent', 'unknown')),
    attempts      integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    message_id    text,
    note          text,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    settled_at    timestamptz,
    PRIMARY KEY (tenant_id, internal_key)
);
CREATE INDEX email_outbox_open_idx ON email_outbox (tenant_id, status)
    WHERE status IN ('sending', 'unknown');

ALTER TABLE email_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_outbox USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- At most once, in the database too: a sent message stays sent, an unknown one is never
-- claimed for sending again, and no row is deleted.
CREATE FUNCTION email_outbox_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'email outbox rows are never deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.tenant_id, NEW.internal_key, NEW.external_key)
       IS DISTINCT FROM (OLD.tenant_id, OLD.internal_key, OLD.external_key)
       OR (OLD.status = 'sent' AND NEW.status <> 'sent')
       OR (OLD.status = 'unknown' AND NEW.status NOT IN ('unknown', 'sent')) THEN
        RAISE EXCEPTION 'email outbox: % -> % refused (at most once)', OLD.status, NEW.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER email_outbox_guard
    BEFORE UPDATE OR DELETE ON email_outbox
    FOR EACH ROW EXECUTE FUNCTION email_outbox_guard();
CREATE TRIGGER email_outbox_no_truncate
    BEFORE TRUNCATE ON email_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION email_outbox_guard();

GRANT SELECT, INSERT, UPDATE ON email_outbox TO autobiz_app;
