-- ECG strips (docs/contract/ehr-interop.md §5): one row per strip, identified like every reading
-- by (device, 'ecg', measured_at). The samples are kept compactly, not one row per sample:
-- `samples` holds every lead's samples as little-endian signed 16-bit integers in microvolts,
-- lead after lead in the order of `leads` (12-lead order), `sample_count` samples per lead
-- (devices.ecg.encode_samples / decode_samples). A 60 s six-lead strip at 500 Hz is 360 kB.
-- `id` is derived from the identity (devices.ecg.strip_id), so a strip keeps its id, and the
-- DICOM UIDs derived from it, wherever it is stored again.
CREATE TABLE ecg_strips (
    id              uuid PRIMARY KEY,
    clinic_id       text NOT NULL REFERENCES clinics (id),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    device_id       text NOT NULL REFERENCES devices (id),
    measured_at     timestamptz NOT NULL,
    sample_rate_hz  double precision NOT NULL CHECK (sample_rate_hz BETWEEN 100 AND 1000),
    leads           text[] NOT NULL CHECK (
                        cardinality(leads) BETWEEN 1 AND 12
                        AND leads <@ ARRAY['I', 'II', 'III', 'aVR', 'aVL', 'aVF',
                                           'V1', 'V2', 'V3', 'V4', 'V5', 'V6']),
    sample_count    integer NOT NULL CHECK (sample_count > 0 AND sample_count <= 60 * sample_rate_hz),
    samples         bytea NOT NULL CHECK (octet_length(samples) = 2 * cardinality(leads) * sample_count),
    interpretation  text CHECK (length(interpretation) BETWEEN 1 AND 500),
    source          text,
    gateway_id      text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, measured_at)
);
-- The samples are read whole or not at all: keep them out of line, uncompressed (int16 noise
-- compresses poorly and decompressing costs on every read).
ALTER TABLE ecg_strips ALTER COLUMN samples SET STORAGE EXTERNAL;
CREATE INDEX ecg_strips_patient_time ON ecg_strips (patient_id, measured_at DESC);
