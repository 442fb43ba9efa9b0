-- Clinical alerts: rules (service defaults, clinic and patient overrides), alerts with their full
-- history, the durable event log behind the live stream, outbound webhooks and their delivery log.
-- The clinical defaults seeded at the end are explained in docs/alerts.md.

-- A rule is identified by its key (e.g. 'threshold:spo2'). The row with clinic_id and patient_id
-- both NULL is the service-wide default and fixes the rule's kind and metric; a clinic row
-- overrides it for the clinic's patients, a patient row for one patient. Override rows hold only
-- the parameters they change (merged over the level below) and NULL "enabled" inherits.
CREATE TABLE alert_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9_.:-]{1,100}$'),
    kind        text NOT NULL CHECK (kind IN
                    ('threshold', 'rate_of_change', 'missing_data', 'device_status', 'low_battery')),
    metric      text CHECK (length(metric) <= 64),
    clinic_id   text REFERENCES clinics (id),
    patient_id  uuid REFERENCES patients (id),
    enabled     boolean,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(params) = 'object'),
    description text CHECK (length(description) <= 1000),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text CHECK (length(updated_by) <= 200),
    CHECK (patient_id IS NULL OR clinic_id IS NOT NULL),
    CHECK (clinic_id IS NOT NULL OR enabled IS NOT NULL)
);
CREATE UNIQUE INDEX alert_rules_default_key ON alert_rules (key)
    WHERE clinic_id IS NULL AND patient_id IS NULL;
CREATE UNIQUE INDEX alert_rules_clinic_key ON alert_rules (clinic_id, key)
    WHERE clinic_id IS NOT NULL AND patient_id IS NULL;
CREATE UNIQUE INDEX alert_rules_patient_key ON alert_rules (patient_id, key)
    WHERE patient_id IS NOT NULL;

-- A counter bumped by every change of alert_rules: each process caches the rules and reloads them
-- when the counter it reads along with a batch's locks has moved.
CREATE TABLE alert_config (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint NOT NULL
);
INSERT INTO alert_config (id, version) VALUES (true, 1);

CREATE FUNCTION alert_rules_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE alert_config SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER alert_rules_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION alert_rules_changed();

-- When a patient was given an expected cadence for a metric they have never measured: the
-- missing-data clock starts then. (Otherwise it starts at their newest reading of the metric.)
CREATE TABLE missing_data_tracking (
    patient_id  uuid NOT NULL REFERENCES patients (id),
    metric      text NOT NULL CHECK (length(metric) <= 64),
    since       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, metric)
);

CREATE TABLE alerts (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id          text NOT NULL REFERENCES clinics (id),
    patient_id         uuid NOT NULL REFERENCES patients (id),
    rule_key           text NOT NULL,
    rule_id            bigint REFERENCES alert_rules (id) ON DELETE SET NULL,
    kind               text NOT NULL,
    metric             text,
    -- what the condition is about besides the patient: the device for device rules, else ''
    subject            text NOT NULL DEFAULT '' CHECK (length(subject) <= 64),
    device_id          text,
    severity           text NOT NULL CHECK (severity IN ('warning', 'critical')),
    status             text NOT NULL DEFAULT 'open'
                           CHECK (status IN ('open', 'acknowledged', 'resolved')),
    value              double precision,
    unit               text,
    last_value         double precision,
    message            text NOT NULL CHECK (length(message) <= 500),
    details            jsonb NOT NULL DEFAULT '{}'::jsonb,
    onset_at           timestamptz NOT NULL,  -- measured time the condition began
    latest_at          timestamptz NOT NULL,  -- measured time of the newest reading holding it
    opened_at          timestamptz NOT NULL DEFAULT now(),
    late               boolean NOT NULL DEFAULT false,
    critical_since     timestamptz,
    escalation_level   smallint NOT NULL DEFAULT 0,
    escalated_at       timestamptz,
    acknowledged_at    timestamptz,
    acknowledged_by    text CHECK (length(acknowledged_by) <= 200),
    acknowledged_by_token uuid,
    acknowledge_note   text CHECK (length(acknowledge_note) <= 2000),
    resolved_at        timestamptz,
    resolved_by        text CHECK (length(resolved_by) <= 200),
    resolved_by_token  uuid,
    resolve_note       text CHECK (length(resolve_note) <= 2000),
    resolution         text CHECK (resolution IN ('auto', 'manual')),
    cleared_at         timestamptz,           -- measured time of the reading that cleared it
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK (status = 'open' OR acknowledged_at IS NOT NULL OR status = 'resolved')
);
-- One open (or acknowledged) alert per condition, whatever process or transaction tries.
CREATE UNIQUE INDEX alerts_one_active ON alerts (patient_id, rule_key, subject)
    WHERE status <> 'resolved';
CREATE INDEX alerts_clinic_opened ON alerts (clinic_id, opened_at DESC, id);
CREATE INDEX alerts_patient_opened ON alerts (patient_id, opened_at DESC, id);
CREATE INDEX alerts_active ON alerts (status, severity) WHERE status <> 'resolved';
CREATE INDEX alerts_episode ON alerts (patient_id, rule_key, subject, onset_at);

-- Every change of every alert, in commit order: the history, the live stream (its id is the
-- SSE event id) and the source of webhook deliveries. Writers take one advisory lock before
-- inserting, so ids become visible in increasing order and a reader never skips one.
CREATE TABLE alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    uuid NOT NULL REFERENCES alerts (id),
    clinic_id   text NOT NULL,
    patient_id  uuid NOT NULL,
    type        text NOT NULL CHECK (type IN
                    ('opened', 'severity_raised', 'escalated', 'acknowledged', 'resolved')),
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text CHECK (length(actor) <= 200),
    note        text CHECK (length(note) <= 2000),
    origin      text CHECK (length(origin) <= 64),
    alert       jsonb NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);
CREATE INDEX alert_events_clinic ON alert_events (clinic_id, id);

CREATE TABLE alert_webhooks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id     text NOT NULL REFERENCES clinics (id),
    url           text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret        text NOT NULL CHECK (length(secret) BETWEEN 16 AND 200),
    description   text CHECK (length(description) <= 200),
    min_severity  text NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('warning', 'critical')),
    event_types   text[] NOT NULL DEFAULT ARRAY['opened', 'severity_raised', 'escalated',
                                                'acknowledged', 'resolved'],
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text CHECK (length(created_by) <= 200),
    disabled_at   timestamptz
);
CREATE INDEX alert_webhooks_clinic ON alert_webhooks (clinic_id) WHERE enabled;

-- One row per (webhook, event): written in the transaction that wrote the event (nothing is lost
-- if the process dies), claimed by delivery workers with a lease.
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES alert_webhooks (id),
    event_id         bigint NOT NULL REFERENCES alert_events (id),
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text CHECK (length(last_error) <= 1000),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id DESC);

CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (id),
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    status_code   integer,
    error         text CHECK (length(error) <= 1000)
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);

-- ---------------------------------------------------------------------------------------------
-- Service-wide clinical defaults (adults in home monitoring). Rationale: docs/alerts.md.
-- Threshold bounds are the last normal values: below "low" or above "high" is out of range.
-- ---------------------------------------------------------------------------------------------
INSERT INTO alert_rules (key, kind, metric, enabled, params, description) VALUES
('threshold:heart_rate', 'threshold', 'heart_rate', true,
 '{"low": 50, "high": 110, "critical_low": 40, "critical_high": 130, "hysteresis": 5,
   "consecutive": 2, "sustained_seconds": 0, "debounce_critical": false}',
 'Brady-/tachycardia; two consecutive readings for a warning, critical at once'),
('threshold:respiratory_rate', 'threshold', 'respiratory_rate', true,
 '{"low": 12, "high": 20, "critical_low": 9, "critical_high": 24, "hysteresis": 2,
   "consecutive": 2, "sustained_seconds": 0, "debounce_critical": false}',
 'NEWS2 bands: 9-11 and 21-24 warn, <=8 and >=25 critical'),
('threshold:spo2', 'threshold', 'spo2', true,
 '{"low": 92, "high": null, "critical_low": 88, "critical_high": null, "hysteresis": 1,
   "consecutive": 2, "sustained_seconds": 0, "debounce_critical": false}',
 'Hypoxaemia; COPD patients with a target of 88-92 % need a patient override'),
('threshold:body_temperature', 'threshold', 'body_temperature', true,
 '{"low": 35.0, "high": 38.0, "critical_low": 34.0, "critical_high": 39.5, "hysteresis": 0.2,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'Fever above 38.0 C, hypothermia below 35.0 C'),
('threshold:systolic_bp', 'threshold', 'systolic_bp', true,
 '{"low": 90, "high": 160, "critical_low": 80, "critical_high": 180, "hysteresis": 5,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'Hypotension below 90, severe hypertension above 160, crisis above 180 mmHg'),
('threshold:diastolic_bp', 'threshold', 'diastolic_bp', true,
 '{"low": 50, "high": 100, "critical_low": 40, "critical_high": 120, "hysteresis": 5,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'Diastolic above 100, crisis above 120 mmHg'),
('threshold:mean_arterial_pressure', 'threshold', 'mean_arterial_pressure', true,
 '{"low": 65, "high": 130, "critical_low": 60, "critical_high": 140, "hysteresis": 5,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'Hypoperfusion below 65 mmHg'),
('threshold:body_weight', 'threshold', 'body_weight', true,
 '{"low": null, "high": null, "critical_low": null, "critical_high": null, "hysteresis": 0.5,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'No absolute default: weight is judged by its change; set bounds per patient'),
('threshold:blood_glucose', 'threshold', 'blood_glucose', true,
 '{"low": 70, "high": 250, "critical_low": 54, "critical_high": 400, "hysteresis": 10,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'ADA hypoglycaemia level 1 below 70, level 2 below 54 mg/dL; hyperglycaemia above 250'),
('threshold:steps', 'threshold', 'steps', true,
 '{"low": null, "high": null, "critical_low": null, "critical_high": null, "hysteresis": 0,
   "consecutive": 1, "sustained_seconds": 0, "debounce_critical": false}',
 'Not a vital sign: no default bounds'),
('rate:body_weight:24h', 'rate_of_change', 'body_weight', true,
 '{"delta": 1.0, "critical_delta": 2.0, "window_seconds": 86400, "grace_seconds": 21600,
   "direction": "rise", "hysteresis": 0.3}',
 'Heart failure: gain of 1 kg or more within a day (2 kg: critical)'),
('rate:body_weight:7d', 'rate_of_change', 'body_weight', true,
 '{"delta": 2.3, "critical_delta": null, "window_seconds": 604800, "grace_seconds": 21600,
   "direction": "rise", "hysteresis": 0.3}',
 'Heart failure: gain of 2.3 kg (5 lb) or more within a week'),
('missing:body_weight', 'missing_data', 'body_weight', true,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Daily weight expected'),
('missing:systolic_bp', 'missing_data', 'systolic_bp', true,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Daily blood pressure expected'),
('missing:spo2', 'missing_data', 'spo2', true,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Daily oxygen saturation expected'),
('missing:blood_glucose', 'missing_data', 'blood_glucose', true,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Daily glucose expected'),
('missing:heart_rate', 'missing_data', 'heart_rate', false,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Off: heart rate comes with BP and SpO2, which have their own rules'),
('missing:body_temperature', 'missing_data', 'body_temperature', false,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Off: temperature is usually measured when symptomatic'),
('missing:respiratory_rate', 'missing_data', 'respiratory_rate', false,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}', NULL),
('missing:diastolic_bp', 'missing_data', 'diastolic_bp', false,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Off: follows systolic'),
('missing:mean_arterial_pressure', 'missing_data', 'mean_arterial_pressure', false,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}',
 'Off: follows systolic'),
('missing:steps', 'missing_data', 'steps', false,
 '{"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}', NULL),
('status:irregular_pulse', 'device_status', NULL, true,
 '{"flags": ["irregular_pulse"], "severity": "warning", "auto_resolve": false}',
 'Possible arrhythmia: stays open until a clinician resolves it'),
('status:cuff_too_loose', 'device_status', NULL, true,
 '{"flags": ["cuff_too_loose"], "severity": "warning", "auto_resolve": true}',
 'BP reading may be wrong; clears on the next measurement without the flag'),
('status:improper_position', 'device_status', NULL, true,
 '{"flags": ["improper_measurement_position"], "severity": "warning", "auto_resolve": true}',
 'BP reading may be wrong; clears on the next measurement without the flag'),
('status:sensor_fault', 'device_status', NULL, true,
 '{"flags": ["sensor_fault", "sensor_malfunction", "sensor_malfunctioning", "equipment_malfunction",
             "general_device_fault", "sensor_disconnected", "sensor_displaced"],
   "severity": "warning", "auto_resolve": true}',
 'The device reports a fault; clears on the next measurement without it'),
('battery:low', 'low_battery', NULL, true,
 '{"flags": ["battery_low", "low_battery", "device_battery_low"], "level_below": 20,
   "hysteresis": 10, "severity": "warning"}',
 'Low battery from a reading flag or the device battery level');
