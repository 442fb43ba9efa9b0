-- The outbox serves every export destination, not only the FHIR server: the EHR's FHIR API, an
-- interface engine over HL7 v2 (MLLP), a PACS over DICOMweb. A stored item gets one row per
-- destination it goes to, so each destination's claims, retries, failures and requeues are its
-- own, and the exports page shows them all from one table.
--
-- destination  which export the row is for ('fhir', 'hl7', 'dicom', ...); rows written before
--              this migration were all for the FHIR server
-- item_ref     the id of the stored thing the row exports when the row keeps no copy of it (an ECG
--              strip's id, an alert's id); readings and panels keep their copy in the row, as before
-- kind         also 'ecg' (a strip) and 'flag' (an alert as a FHIR Flag)
ALTER TABLE fhir_outbox RENAME TO outbox;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_export_key_check TO outbox_export_key_check;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_contents TO outbox_contents;
ALTER INDEX fhir_outbox_pkey RENAME TO outbox_pkey;

ALTER TABLE outbox
    ADD COLUMN destination text NOT NULL DEFAULT 'fhir'
        CONSTRAINT outbox_destination_check CHECK (destination ~ '^[a-z][a-z0-9_]{0,39}$'),
    ADD COLUMN item_ref text CONSTRAINT outbox_item_ref_check CHECK (length(item_ref) BETWEEN 1 AND 200);

ALTER TABLE outbox DROP CONSTRAINT fhir_outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('reading', 'bp_panel', 'late_component', 'ecg', 'flag'));
-- rows that keep no copy name what they export
ALTER TABLE outbox ADD CONSTRAINT outbox_item_ref_needed
    CHECK (kind NOT IN ('ecg', 'flag') OR item_ref IS NOT NULL);
ALTER TABLE outbox DROP CONSTRAINT outbox_contents;
ALTER TABLE outbox ADD CONSTRAINT outbox_contents CHECK (
    readings IS NOT NULL
    OR kind IN ('ecg', 'flag')
    OR (kind = 'reading' AND value IS NOT NULL AND unit IS NOT NULL
        AND original_value IS NOT NULL AND original_unit IS NOT NULL)
);
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_check TO outbox_sent_has_time;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_readings_check TO outbox_readings_check;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_status_check TO outbox_status_check;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_attempts_check TO outbox_attempts_check;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_last_error_check TO outbox_last_error_check;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_claimed_by_check TO outbox_claimed_by_check;
ALTER TABLE outbox RENAME CONSTRAINT fhir_outbox_fhir_reference_check TO outbox_reference_check;
-- fhir_reference and created_in_ehr keep their names (the exports API shows them): for other
-- destinations they hold that destination's reference (an HL7 message control id, a SOP Instance
-- UID) and whether this send created it there.

-- A panel is one row per destination.
DROP INDEX fhir_outbox_panel;
CREATE UNIQUE INDEX outbox_panel ON outbox (destination, device_id, export_key, measured_at)
    WHERE kind <> 'reading' AND item_ref IS NULL;
-- An item kept elsewhere (a strip, an alert) is one row per destination and kind.
CREATE UNIQUE INDEX outbox_item ON outbox (destination, kind, item_ref) WHERE item_ref IS NOT NULL;
-- Each destination's workers claim their own due rows, oldest first.
DROP INDEX fhir_outbox_due;
CREATE INDEX outbox_due ON outbox (destination, next_attempt_at, id) WHERE status = 'pending';
ALTER INDEX fhir_outbox_waiting RENAME TO outbox_waiting;
ALTER INDEX fhir_outbox_failed RENAME TO outbox_failed;
ALTER INDEX fhir_outbox_sent_at RENAME TO outbox_sent_at;
