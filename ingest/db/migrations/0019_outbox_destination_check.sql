-- The outbox's destination check, reworded for the same reason as the export_key check in 0006:
-- the bounded repetition ('{0,39}') expands into a large automaton that PostgreSQL ran for every
-- row written, about 1.7 µs of the 8 µs an outbox row cost (bench/ingest_mqtt.py gateway mode
-- writes one per reading). The destinations are named in code (ingest/export/destinations.py),
-- so the check names them: a new destination adds itself here in its own migration
-- (docs/architecture.md, "An export destination").
--
-- NOT VALID + VALIDATE: validating existing rows does not block writers.
ALTER TABLE outbox DROP CONSTRAINT outbox_destination_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_destination_check
    CHECK (destination IN ('fhir', 'hl7', 'dicom')) NOT VALID;
ALTER TABLE outbox VALIDATE CONSTRAINT outbox_destination_check;
