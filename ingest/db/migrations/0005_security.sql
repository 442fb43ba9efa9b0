-- Security: the append-only audit log of every access to patient data, and tenancy constraints.
--
-- audit_log answers "who did what to which patient's data, when, and from where". It never holds
-- request or response bodies, so no reading value (nor any token) can end up in it. Rows can be
-- inserted and read, never changed or removed: the triggers below refuse UPDATE, DELETE and
-- TRUNCATE for every role, including the table owner (a superuser would have to drop the trigger
-- first, which itself shows up in the database's own logs).

CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    request_id    uuid NOT NULL,
    -- who: the token (no foreign key: the audit trail must not depend on the token table)
    token_id      uuid,
    actor_name    text CHECK (length(actor_name) <= 200),
    actor_role    text CHECK (actor_role IN ('admin', 'clinician', 'device')),
    actor_clinic  text,
    -- from where
    client_addr   text CHECK (length(client_addr) <= 100),
    user_agent    text CHECK (length(user_agent) <= 200),
    -- what
    method        text NOT NULL CHECK (length(method) <= 16),
    route         text NOT NULL CHECK (length(route) <= 300),
    path          text NOT NULL CHECK (length(path) <= 1000),
    query         text CHECK (length(query) <= 1000),
    action        text NOT NULL CHECK (action IN ('read', 'write')),
    patient_id    uuid,
    resource      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        smallint NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_patient ON audit_log (patient_id, at DESC) WHERE patient_id IS NOT NULL;
CREATE INDEX audit_log_token ON audit_log (token_id, at DESC) WHERE token_id IS NOT NULL;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

-- A clinician token always belongs to exactly one clinic (tenancy is decided by it).
ALTER TABLE api_tokens
    ADD CONSTRAINT api_tokens_clinician_has_clinic CHECK (role <> 'clinician' OR clinic_id IS NOT NULL);

-- Retention on plain PostgreSQL deletes readings by measured_at (ingest/security/retention.py):
-- a BRIN index finds old rows of this append-mostly table for a few pages of index.
CREATE INDEX readings_measured_at_brin ON readings USING brin (measured_at);
