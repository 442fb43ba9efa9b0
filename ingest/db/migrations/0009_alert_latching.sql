-- Latching alerts (docs/alerts.md, "Lifecycle"): when the condition of a latching alert (critical
-- by default) clears before anyone acknowledged it, the alert stays open with cleared_at set (the
-- measured time of the reading that cleared it) and a 'cleared' event is written; if the condition
-- comes back while it waits, the same alert carries on ('recurred', cleared_at emptied again).
-- No new column: alerts.cleared_at already holds the measured time the condition cleared.
ALTER TABLE alert_events DROP CONSTRAINT alert_events_type_check;
ALTER TABLE alert_events ADD CONSTRAINT alert_events_type_check CHECK (type IN
    ('opened', 'severity_raised', 'escalated', 'acknowledged', 'resolved', 'cleared', 'recurred'));

-- Webhooks registered from now on without a list of event types also receive 'cleared' (a critical
-- value that came and went still needs someone to look). Existing registrations keep their list.
ALTER TABLE alert_webhooks ALTER COLUMN event_types SET DEFAULT
    ARRAY['opened', 'severity_raised', 'escalated', 'acknowledged', 'resolved', 'cleared'];
