-- Foundation: tenants, patients, devices and their assignments, readings, dead letters, API tokens.
-- Runs unchanged on plain PostgreSQL 14+ and on TimescaleDB (see ingest/db/timescale.py).

CREATE TABLE clinics (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO clinics (id, name) VALUES ('default', 'Default clinic');

CREATE TABLE patients (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id        text NOT NULL REFERENCES clinics (id),
    mrn              text NOT NULL CHECK (length(mrn) BETWEEN 1 AND 64),
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    fhir_patient_id  text CHECK (fhir_patient_id ~ '^[A-Za-z0-9.-]{1,64}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (clinic_id, mrn)
);

CREATE TABLE devices (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    clinic_id     text NOT NULL REFERENCES clinics (id),
    type          text NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    manufacturer  text CHECK (length(manufacturer) <= 200),
    model         text CHECK (length(model) <= 200),
    serial        text CHECK (length(serial) <= 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    battery_level smallint CHECK (battery_level BETWEEN 0 AND 100)
);

-- A device moves between patients over time: a reading belongs to the patient of the newest
-- assignment whose "since" is at or before the reading's measured_at. patient_id NULL = unassigned.
CREATE TABLE device_assignments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices (id),
    patient_id  uuid REFERENCES patients (id),
    since       timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, since)
);

CREATE TABLE readings (
    device_id       text NOT NULL,
    metric          text NOT NULL,
    measured_at     timestamptz NOT NULL,
    patient_id      uuid NOT NULL,
    value           double precision NOT NULL,
    unit            text NOT NULL,
    original_value  double precision NOT NULL,
    original_unit   text NOT NULL,
    status          text[] NOT NULL DEFAULT '{}',
    source          text,
    gateway_id      text,
    device_time     timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, measured_at)
);
CREATE INDEX readings_patient_metric_time ON readings (patient_id, metric, measured_at DESC);

CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL,
    topic        text,
    device_id    text,
    reading_index integer,
    reason       text NOT NULL,
    raw          bytea NOT NULL,
    replayed_at  timestamptz,
    replay_result text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('admin', 'clinician', 'device')),
    clinic_id     text REFERENCES clinics (id),
    device_id     text REFERENCES devices (id),
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK (role <> 'device' OR device_id IS NOT NULL)
);
