-- SMART on FHIR app launch: pending launches (single-use state) and the browser sessions a launch
-- opens. Both live in PostgreSQL so that any process of the service can finish a launch another
-- one started, and accept a session another one opened.
--
-- Only digests of the secrets are stored (state, browser binding, session cookie, CSRF token):
-- a copy of these tables opens nothing. The PKCE verifier and the nonce are kept as they are:
-- the token request needs the verifier, and both are worthless once the launch row is taken.

CREATE TABLE smart_launches (
    state_hash     bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    browser_hash   bytea NOT NULL CHECK (length(browser_hash) = 32),
    issuer         text NOT NULL CHECK (length(issuer) <= 500),
    clinic_id      text NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    launch         text CHECK (length(launch) <= 2000),
    code_verifier  text NOT NULL CHECK (length(code_verifier) BETWEEN 43 AND 128),
    nonce          text NOT NULL CHECK (length(nonce) <= 200),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX smart_launches_expiry ON smart_launches (expires_at);

CREATE TABLE web_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    secret_hash   bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    csrf_hash     bytea NOT NULL CHECK (length(csrf_hash) = 32),
    role          text NOT NULL CHECK (role = 'clinician'),
    clinic_id     text NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    -- who, as the EHR named them: the id token's fhirUser (recorded in the audit log)
    fhir_user     text NOT NULL CHECK (length(fhir_user) BETWEEN 1 AND 1000),
    issuer        text NOT NULL CHECK (length(issuer) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
