-- Alert rule kinds are defined in code (ingest/alerts/kinds/), one module each. This table is the
-- database's copy of that registry: the service upserts it (and adds the kinds' default rules that
-- are missing) at migrate and at start-up, and alert_rules.kind references it instead of checking
-- a list written here. So a new kind needs no migration.
CREATE TABLE alert_rule_kinds (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
    label        text CHECK (length(label) <= 100),
    description  text CHECK (length(description) <= 1000),
    scheduled    boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The kinds rules already use (the code fills in labels and descriptions).
INSERT INTO alert_rule_kinds (name) SELECT DISTINCT kind FROM alert_rules;

ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_kind_fkey
    FOREIGN KEY (kind) REFERENCES alert_rule_kinds (name);
