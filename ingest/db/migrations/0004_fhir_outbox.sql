-- FHIR export outbox: one row per reading (or per blood-pressure panel) to publish to the EHR,
-- written in the ingest transaction that stored the reading(s). The row keeps a copy of what it
-- exports, so it never depends on the readings table (which may become a TimescaleDB hypertable
-- with retention and compression: no foreign key points to it).
--
-- status:
--   pending  due at next_attempt_at; export workers claim it (FOR UPDATE SKIP LOCKED, then a
--            lease: claim_token + claimed_until, renewed while the worker is sending; a crashed
--            worker's rows come back when the lease runs out)
--   waiting  the patient has no FHIR Patient id yet; released when the patient is linked
--   sent     the EHR holds it (fhir_reference, created_in_ehr false when a retry found it there)
--   failed   refused for good (reason in last_error); an operator requeues it
--
-- The hot path carries no foreign key (like readings): the hook copies patient, clinic and device
-- from readings the pipeline has just attributed, and none of them is ever deleted.
CREATE TABLE fhir_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id        text NOT NULL,
    patient_id       uuid NOT NULL,
    device_id        text NOT NULL,
    -- what is exported: a metric name, 'bp_panel', or 'late:<metric>' (a panel component that
    -- arrived after its panel had been sent)
    export_key       text NOT NULL CHECK (export_key ~ '^[a-z0-9_:]{1,80}$'),
    kind             text NOT NULL CHECK (kind IN ('reading', 'bp_panel', 'late_component')),
    measured_at      timestamptz NOT NULL,
    -- metric -> {value, unit, original_value, original_unit, status[], source, gateway_id}
    readings         jsonb NOT NULL CHECK (jsonb_typeof(readings) = 'object'),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'waiting', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text CHECK (length(last_error) <= 2000),
    claimed_by       text CHECK (length(claimed_by) <= 200),
    claim_token      uuid,
    claimed_until    timestamptz,
    fhir_reference   text CHECK (length(fhir_reference) <= 200),
    created_in_ehr   boolean,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    CHECK (status <> 'sent' OR sent_at IS NOT NULL)
);
-- A panel (or a late component) is one row: later components join it. A single reading needs no
-- such index: the hook sees each stored reading once (a reading stored again after the readings
-- table let it go would get a second row, which the EHR's conditional create answers "already
-- there").
CREATE UNIQUE INDEX fhir_outbox_panel ON fhir_outbox (device_id, export_key, measured_at)
    WHERE kind <> 'reading';
-- what workers claim, oldest due first
CREATE INDEX fhir_outbox_due ON fhir_outbox (next_attempt_at, id) WHERE status = 'pending';
-- rows released when a patient is linked to the EHR
CREATE INDEX fhir_outbox_waiting ON fhir_outbox (patient_id) WHERE status = 'waiting';
-- the failures an operator looks at
CREATE INDEX fhir_outbox_failed ON fhir_outbox (updated_at DESC) WHERE status = 'failed';
-- purge of sent rows past their keeping time; counting them per clinic (index-only)
CREATE INDEX fhir_outbox_sent_at ON fhir_outbox (sent_at) INCLUDE (clinic_id) WHERE status = 'sent';

-- The Device resource of each device in each EHR, created once. A worker creating it holds this
-- row locked (SELECT ... FOR UPDATE), so two workers never race to create the same Device.
CREATE TABLE fhir_devices (
    ehr_base_url    text NOT NULL CHECK (length(ehr_base_url) BETWEEN 1 AND 2000),
    device_id       text NOT NULL REFERENCES devices (id),
    fhir_reference  text CHECK (length(fhir_reference) <= 200),  -- 'Device/<id>'; NULL until created
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ehr_base_url, device_id)
);
