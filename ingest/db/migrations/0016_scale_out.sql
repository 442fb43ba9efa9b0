-- Members of MQTT shared groups (docs/scaling.md): one row per consumer session in a group.
--
-- A member stopping cleanly leaves the group (unsubscribe, end its session) only while another
-- member is alive; the last one parks instead (keeps its session and subscription), so readings
-- published while the whole group is down wait in the broker instead of being dropped for want of
-- a subscriber. A member adopts the session of a parked member, or of one not seen for a long
-- time (killed, never started again under its client id): it connects under that client id,
-- stores what waited there, then ends that session. Writers serialise per group with a
-- transaction-scoped advisory lock.
CREATE TABLE mqtt_group_members (
    client_id     text PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 200),
    shared_group  text NOT NULL CHECK (length(shared_group) BETWEEN 1 AND 64),
    topic_filter  text NOT NULL CHECK (length(topic_filter) BETWEEN 1 AND 400),
    state         text NOT NULL CHECK (state IN ('active', 'parked')),
    seen_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mqtt_group_members_by_group ON mqtt_group_members (shared_group, state, seen_at);
