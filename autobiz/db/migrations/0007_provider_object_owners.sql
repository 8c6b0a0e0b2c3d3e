-- 0007: which tenant a provider object id was first seen for (issue 10: objects are bound
-- to their owner). Shopify order ids and Stripe PaymentIntent ids are unique across all
-- shops and accounts, so an id first seen for tenant A that arrives in tenant B's signed
-- event is another tenant's object: the ingress refuses it as a security incident.
--
-- The table is not readable by the application role at all (not even through RLS): the
-- only way in is claim_provider_object(), which records the first owner and answers one
-- boolean -- "is it this tenant's?" -- so no tenant can learn another tenant's ids.

CREATE TABLE provider_object_owners (
    kind        text NOT NULL CHECK (kind IN ('shopify_order', 'stripe_payment_intent')),
    object_id   text NOT NULL CHECK (length(object_id) BETWEEN 1 AND 200),
    -- not a tenant table (no RLS): it spans tenants, and the app role has no grant on it
    owner_tenant text NOT NULL REFERENCES tenants (tenant_id),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, object_id)
);
REVOKE ALL ON provider_object_owners FROM PUBLIC;

-- The tenant is the transaction's own (app.tenant_id), never an argument.
CREATE FUNCTION claim_provider_object(p_kind text, p_object_id text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    v_tenant text := app_current_tenant();
    v_owner text;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'claim_provider_object needs app.tenant_id';
    END IF;
    INSERT INTO provider_object_owners (kind, object_id, owner_tenant)
    VALUES (p_kind, p_object_id, v_tenant)
    ON CONFLICT (kind, object_id) DO NOTHING;
    SELECT o.owner_tenant INTO v_owner
      FROM provider_object_owners o WHERE o.kind = p_kind AND o.object_id = p_object_id;
    RETURN v_owner = v_tenant;
END
$$;
REVOKE ALL ON FUNCTION claim_provider_object(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_provider_object(text, text) TO autobiz_app;
