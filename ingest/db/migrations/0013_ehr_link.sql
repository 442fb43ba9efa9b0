-- Patients from the EHR (contract ehr-interop.md section 1) and the clinic's Observation profile.
--
-- A patient registered without fhir_patient_id is looked up in the EHR by MRN
-- (GET [base]/Patient?identifier=<system>|<mrn>) after the registration committed, and again every
-- RPM_FHIR_PATIENT_LOOKUP_RETRY_S while the answer was "pending" or "not_found". What the last
-- look-up found is kept on the patient, so GET /v1/patients/{id} can show it:
--
-- ehr_link_status      NULL: never looked up (shown as 'pending' while unlinked, 'linked' once
--                      fhir_patient_id is set by any path); 'linked', 'pending' (the EHR could not
--                      be asked: no identifier system configured, EHR unreachable), 'not_found',
--                      'ambiguous' (several Patients carry the MRN: never guessed), 'error' (the
--                      EHR answered something unusable; retried like 'pending')
-- ehr_link_checked_at  when the EHR was last asked
-- ehr_link_detail      the reason shown beside the status (no patient data, at most 500 chars)
ALTER TABLE patients
    ADD COLUMN ehr_link_status text CONSTRAINT patients_ehr_link_status_check
        CHECK (ehr_link_status IN ('linked', 'pending', 'not_found', 'ambiguous', 'error')),
    ADD COLUMN ehr_link_checked_at timestamptz,
    ADD COLUMN ehr_link_detail text CONSTRAINT patients_ehr_link_detail_check
        CHECK (length(ehr_link_detail) <= 500);

-- What the look-up loop takes next: unlinked patients, never asked first, then the longest waiting.
CREATE INDEX patients_ehr_link_due ON patients (ehr_link_checked_at NULLS FIRST, id)
    WHERE fhir_patient_id IS NULL;

-- The Observation profiles a clinic's EHR expects (docs/fhir.md, "Profiles"):
--   'base'     FHIR R4 vital-signs profiles (what the export always did)
--   'us-core'  US Core vital-signs profiles (US EHRs)
--   'phd'      HL7 Personal Health Device IG: the measuring device and the home gateway as Devices
--              of their own, PHD identifiers, MDC codes beside LOINC
ALTER TABLE clinics
    ADD COLUMN observation_profile text NOT NULL DEFAULT 'base'
        CONSTRAINT clinics_observation_profile_check
        CHECK (observation_profile IN ('base', 'us-core', 'phd'));
