-- Billing: the days with readings, kept small. One row per patient and clinic-local date on which
-- at least one stored reading of the patient was measured, with the first and last such instant
-- of that date. Written in the ingest transaction by billing's hook on new readings
-- (ingest/billing/reading_days.py), filled here from the readings already stored, rebuilt for a
-- clinic whose time zone changes (trigger below), moved with a patient merge. The monthly report
-- counts days from it instead of from the readings: a few rows per patient and month instead of
-- every reading. first_at/last_at decide the first and last day of an episode, which starts and
-- ends at an instant, not at midnight (docs/billing.md).
--
-- Rows are kept when the raw readings age out (RPM_READINGS_RETENTION_DAYS): a billed month does
-- not change afterwards (nor when the time zone changes later, but for the rare cases said below).
CREATE TABLE reading_days (
    patient_id  uuid NOT NULL REFERENCES patients (id),
    local_date  date NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (patient_id, local_date),
    CHECK (first_at <= last_at)
);

-- (Re)computes the rows of a clinic's patients in the clinic's time zone: from their stored
-- readings, and for readings that aged out (before the clinic's oldest stored one) from the first
-- and last instants their rows kept, each dated again (both are instants of readings; a reading
-- between them falls on one of their two dates, unless a day of 25 hours spans three).
CREATE FUNCTION billing_rebuild_reading_days(p_clinic text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    oldest timestamptz;
BEGIN
    SELECT timezone INTO zone FROM clinics WHERE id = p_clinic;
    SELECT coalesce(min(r.measured_at), 'infinity') INTO oldest
    FROM readings r JOIN patients p ON p.id = r.patient_id
    WHERE p.clinic_id = p_clinic;
    WITH kept AS (
        DELETE FROM reading_days d USING patients p
        WHERE p.id = d.patient_id AND p.clinic_id = p_clinic
        RETURNING d.patient_id, d.first_at, d.last_at
    ), instants AS (
        SELECT patient_id, first_at AS at FROM kept WHERE first_at < oldest
        UNION ALL
        SELECT patient_id, last_at FROM kept WHERE last_at < oldest
        UNION ALL
        SELECT r.patient_id, r.measured_at FROM readings r JOIN patients p ON p.id = r.patient_id
        WHERE p.clinic_id = p_clinic
    )
    INSERT INTO reading_days (patient_id, local_date, first_at, last_at)
    SELECT patient_id, (at AT TIME ZONE zone)::date, min(at), max(at)
    FROM instants
    GROUP BY 1, 2;
END
$$;

-- A clinic's time zone changes the dates of its readings: rebuild in the same transaction.
CREATE FUNCTION billing_follow_clinic_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billing_rebuild_reading_days(NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER clinics_billing_timezone
    AFTER UPDATE OF timezone ON clinics
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION billing_follow_clinic_timezone();

-- A patient merge (HL7 ADT A40): the merged patient's days and episodes become the survivor's.
-- Episodes that overlap are joined into one (the earliest start, the latest end, open if either
-- was open), so a reading still belongs to one episode and the survivor has at most one open
-- episode. The device assignments the merge moves next must not open or end episodes again: the
-- transaction-local setting rpm.billing_merged names the merged patient for the trigger below.
CREATE FUNCTION billing_merge_patients(p_survivor uuid, p_merged uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('rpm.billing_merged', p_merged::text, true);
    INSERT INTO reading_days (patient_id, local_date, first_at, last_at)
    SELECT p_survivor, local_date, first_at, last_at FROM reading_days WHERE patient_id = p_merged
    ON CONFLICT (patient_id, local_date) DO UPDATE
    SET first_at = least(reading_days.first_at, EXCLUDED.first_at),
        last_at = greatest(reading_days.last_at, EXCLUDED.last_at);
    DELETE FROM reading_days WHERE patient_id = p_merged;

    CREATE TEMP TABLE billing_merge_islands ON COMMIT DROP AS
    WITH e AS (
        SELECT id, started_at, started_by, coalesce(ended_at, 'infinity') AS until,
               coalesce(started_at >= max(coalesce(ended_at, 'infinity')) OVER (
                   ORDER BY started_at, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), true)
                   AS starts_island
        FROM monitoring_episodes WHERE patient_id IN (p_survivor, p_merged)
    ), g AS (
        SELECT *, count(*) FILTER (WHERE starts_island) OVER (ORDER BY started_at, id) AS island
        FROM e
    )
    SELECT id, island, first_value(id) OVER w AS keeper, min(started_at) OVER w AS started_at,
           nullif(max(until) OVER w, 'infinity') AS ended_at
    FROM g WINDOW w AS (PARTITION BY island ORDER BY started_at, id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING);
    DELETE FROM monitoring_episodes m USING billing_merge_islands i
    WHERE m.id = i.id AND i.id <> i.keeper;
    UPDATE monitoring_episodes m
    SET patient_id = p_survivor, started_at = i.started_at, ended_at = i.ended_at
    FROM billing_merge_islands i
    WHERE m.id = i.id AND i.id = i.keeper;
    DROP TABLE billing_merge_islands;
END
$$;

-- As in 0011, except for the assignments a merge moves from the merged patient to the survivor:
-- their episodes were joined by billing_merge_patients.
CREATE OR REPLACE FUNCTION billing_follow_assignment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    left_patient uuid;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.patient_id::text = current_setting('rpm.billing_merged', true) THEN
        RETURN NULL;
    END IF;
    IF NEW.patient_id IS NOT NULL THEN
        PERFORM billing_begin_monitoring(NEW.patient_id, NEW.since);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        left_patient := OLD.patient_id;
    ELSE
        SELECT a.patient_id INTO left_patient FROM device_assignments a
        WHERE a.device_id = NEW.device_id AND a.since < NEW.since
        ORDER BY a.since DESC LIMIT 1;
    END IF;
    IF left_patient IS NOT NULL AND left_patient IS DISTINCT FROM NEW.patient_id
       AND NOT EXISTS (
           SELECT 1 FROM device_assignments x
           WHERE x.patient_id = left_patient
             AND x.since = (SELECT max(y.since) FROM device_assignments y WHERE y.device_id = x.device_id))
    THEN
        PERFORM 1 FROM patients WHERE id = left_patient FOR NO KEY UPDATE;
        PERFORM billing_end_monitoring(left_patient, NEW.since);
    END IF;
    RETURN NULL;
END
$$;

-- The readings stored before this migration, in their clinics' time zones.
INSERT INTO reading_days (patient_id, local_date, first_at, last_at)
SELECT r.patient_id, (r.measured_at AT TIME ZONE c.timezone)::date, min(r.measured_at), max(r.measured_at)
FROM readings r
JOIN patients p ON p.id = r.patient_id
JOIN clinics c ON c.id = p.clinic_id
GROUP BY 1, 2;
