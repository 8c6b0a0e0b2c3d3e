-- 0005: the approver key registry (issue 10, "decisions carry proof"; DESIGN §4 HITL).
--
-- One row per public key an approver signs decisions with (Ed25519, raw 32 bytes as
-- base64url). A workflow accepts a decision only with a signature by a key of that
-- approver in this tenant that is not revoked and within [not_before, expires_at).
--   rotation:   register a new key; the old one stays valid until revoked or expired;
--   revocation: revoked_at set (once; a revoked key never comes back).
-- Registering and revoking are admin acts on the owner's connection: the application
-- role can only read (a worker reads the registry into the workflow's snapshot), so a
-- compromised worker or application credential cannot add a key. The trust root is
-- whoever holds the database owner's credentials.

CREATE TABLE approver_keys (
    tenant_id       text NOT NULL REFERENCES tenants (tenant_id),
    key_id          text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9_-]{8,64}$'),
    approver_id     text NOT NULL CHECK (length(approver_id) BETWEEN 1 AND 128),
    algorithm       text NOT NULL DEFAULT 'ed25519' CHECK (algorithm = 'ed25519'),
    public_key      text NOT NULL CHECK (public_key ~ '^[A-Za-z0-9_-]{43}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    not_before      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    revoked_reason  text,
    PRIMARY KEY (tenant_id, key_id),
    UNIQUE (tenant_id, public_key),
    CHECK (expires_at IS NULL OR expires_at > not_before)
);
CREATE INDEX approver_keys_approver_idx ON approver_keys (tenant_id, approver_id, created_at);

ALTER TABLE approver_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE approver_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approver_keys USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- A key's identity never changes and a revocation is final: the only update allowed is
-- setting revoked_at (and its reason) on a key that is not revoked; no row is deleted.
CREATE FUNCTION approver_keys_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'approver keys are revoked, never deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.tenant_id, NEW.key_id, NEW.approver_id, NEW.algorithm, NEW.public_key,
        NEW.created_at, NEW.created_by, NEW.not_before, NEW.expires_at)
       IS DISTINCT FROM
       (OLD.tenant_id, OLD.key_id, OLD.approver_id, OLD.algorithm, OLD.public_key,
        OLD.created_at, OLD.created_by, OLD.not_before, OLD.expires_at)
       OR OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL THEN
        RAISE EXCEPTION 'an approver key can only be revoked, once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER approver_keys_guard
    BEFORE UPDATE OR DELETE ON approver_keys
    FOR EACH ROW EXECUTE FUNCTION approver_keys_guard();
CREATE TRIGGER approver_keys_no_truncate
    BEFORE TRUNCATE ON approver_keys
    FOR EACH STATEMENT EXECUTE FUNCTION approver_keys_guard();

GRANT SELECT ON approver_keys TO autobiz_app;
