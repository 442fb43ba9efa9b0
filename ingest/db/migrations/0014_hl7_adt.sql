-- HL7 v2 over MLLP (docs/hl7.md): the ADT messages the listener applied, the merges they made,
-- and what the ORU^R01 sender needs to keep each patient's results in order.

-- Every inbound ADT applied, by its sender and MSH-10: a re-sent message (same control id, e.g.
-- after our ACK was lost) is acknowledged again with the same answer and applied once. Messages
-- answered AE or AR are not kept: the sender may correct the cause and send them again.
CREATE TABLE hl7_received (
    sending_application  text NOT NULL CHECK (length(sending_application) <= 227),
    sending_facility     text NOT NULL CHECK (length(sending_facility) <= 227),
    control_id           text NOT NULL CHECK (length(control_id) BETWEEN 1 AND 199),
    event                text NOT NULL CHECK (event ~ '^A[0-9]{2}$'),
    clinic_id            text NOT NULL REFERENCES clinics (id),
    patient_id           uuid REFERENCES patients (id),
    ack_code             text NOT NULL CHECK (ack_code IN ('AA')),
    ack_text             text CHECK (length(ack_text) <= 2000),
    received_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sending_application, sending_facility, control_id)
);
CREATE INDEX hl7_received_at ON hl7_received (received_at);

-- A patient merged into another (ADT A40) stays, pointing at the survivor; their readings,
-- devices, alerts and exports have moved there.
ALTER TABLE patients ADD COLUMN merged_into uuid REFERENCES patients (id);
ALTER TABLE patients ADD CONSTRAINT patients_not_merged_into_self CHECK (merged_into <> id);

-- The audit of every merge: who asked (the message), what moved, how many rows of each.
CREATE TABLE patient_merges (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinic_id         text NOT NULL REFERENCES clinics (id),
    survivor_id       uuid NOT NULL REFERENCES patients (id),
    merged_id         uuid NOT NULL REFERENCES patients (id),
    survivor_mrn      text NOT NULL,
    merged_mrn        text NOT NULL,
    source            text NOT NULL CHECK (length(source) <= 500),  -- 'hl7:<app>|<facility>|<MSH-10>'
    moved             jsonb NOT NULL,  -- table -> rows moved
    merged_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (survivor_id <> merged_id)
);
CREATE INDEX patient_merges_survivor ON patient_merges (survivor_id, merged_at);
CREATE INDEX patient_merges_merged ON patient_merges (merged_id);

-- The ORU^R01 sender keeps each patient's results in order: a row waits while an older row of
-- the same patient is still pending. This finds that older row without scanning the outbox.
CREATE INDEX outbox_hl7_pending_patient ON outbox (patient_id, id)
    WHERE destination = 'hl7' AND status = 'pending';
