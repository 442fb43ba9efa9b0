-- Billing (the RPM programme): the clinic's time zone, monitoring episodes, clinician time.
-- Rules and sources: docs/billing.md. The report itself is a query (ingest/billing/queries.py).

-- Days with readings are counted in the clinic's time zone (an IANA name such as
-- 'America/New_York'; the API checks it against the time zone database before storing it).
ALTER TABLE clinics
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64);

-- A monitoring episode: from the first device assignment (or an explicit start) until monitoring
-- ends (the patient's last device assignment ended, or a discharge). 30-day billing periods are
-- counted from its start. A patient has at most one open episode; episodes do not overlap (the
-- functions below, the only writers, keep that under a lock on the patient's row).
CREATE TABLE monitoring_episodes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  uuid NOT NULL REFERENCES patients (id),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    started_by  text NOT NULL CHECK (started_by IN ('assignment', 'explicit', 'migration')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX monitoring_episodes_one_open
    ON monitoring_episodes (patient_id) WHERE ended_at IS NULL;
CREATE INDEX monitoring_episodes_patient ON monitoring_episodes (patient_id, started_at);

-- Ends the patient's open episode at p_at (never before its start). Idempotent: with no open
-- episode it does nothing. Called by the assignment trigger below and by
-- ingest.billing.episodes.end_monitoring (HL7 ADT A03, explicit ends).
CREATE FUNCTION billing_end_monitoring(p_patient uuid, p_at timestamptz) RETURNS void
LANGUAGE sql AS $$
    UPDATE monitoring_episodes SET ended_at = greatest(started_at, p_at)
    WHERE patient_id = p_patient AND ended_at IS NULL
$$;

-- Opens an episode at p_at unless one is open; an episode never starts inside an earlier one.
CREATE FUNCTION billing_begin_monitoring(p_patient uuid, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM patients WHERE id = p_patient FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM monitoring_episodes WHERE patient_id = p_patient AND ended_at IS NULL) THEN
        RETURN;
    END IF;
    INSERT INTO monitoring_episodes (patient_id, started_at, started_by)
    SELECT p_patient, greatest(p_at, coalesce(max(ended_at), p_at)), 'assignment'
    FROM monitoring_episodes WHERE patient_id = p_patient;
END
$$;

-- Device assignments drive episodes, whichever path wrote them (API, demo, simulator, HL7): an
-- assignment to a patient opens their episode; when a device leaves a patient (un-assigned or
-- given to someone else) and the patient has no device left, their episode ends then.
CREATE FUNCTION billing_follow_assignment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    left_patient uuid;
BEGIN
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

CREATE TRIGGER device_assignments_billing
    AFTER INSERT OR UPDATE OF patient_id, since ON device_assignments
    FOR EACH ROW EXECUTE FUNCTION billing_follow_assignment();

-- Patients assigned before this migration: one episode from their first assignment, ended when
-- their last device left them (open while a device is still theirs).
INSERT INTO monitoring_episodes (patient_id, started_at, ended_at, started_by)
SELECT f.patient_id, f.first_since,
       CASE WHEN EXISTS (
                SELECT 1 FROM device_assignments x
                WHERE x.patient_id = f.patient_id
                  AND x.since = (SELECT max(y.since) FROM device_assignments y WHERE y.device_id = x.device_id))
            THEN NULL
            ELSE greatest(f.first_since, (
                SELECT max(n.since) FROM device_assignments a
                JOIN LATERAL (
                    SELECT b.since FROM device_assignments b
                    WHERE b.device_id = a.device_id AND b.since > a.since ORDER BY b.since LIMIT 1
                ) n ON true
                WHERE a.patient_id = f.patient_id))
       END,
       'migration'
FROM (SELECT patient_id, min(since) AS first_since FROM device_assignments
      WHERE patient_id IS NOT NULL GROUP BY patient_id) f;

-- Clinician time spent on a patient's remote monitoring (treatment management, 99470/99457/99458).
-- A deleted entry stays (deleted_at, deleted_by) and stops counting; the deletion is also in the
-- audit log. author_token has no foreign key, like audit_log: the record outlives the token.
CREATE TABLE clinician_time (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id    uuid NOT NULL REFERENCES patients (id),
    minutes       smallint NOT NULL CHECK (minutes BETWEEN 1 AND 240),
    interactive   boolean NOT NULL,
    performed_at  timestamptz NOT NULL,
    note          text CHECK (length(note) <= 2000),
    author_token  uuid,
    author_name   text NOT NULL CHECK (length(author_name) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    deleted_by    uuid,
    CHECK ((deleted_at IS NULL) = (deleted_by IS NULL))
);
CREATE INDEX clinician_time_patient
    ON clinician_time (patient_id, performed_at) WHERE deleted_at IS NULL;
