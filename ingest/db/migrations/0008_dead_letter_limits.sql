-- Dead letters are bounded: a device flooding the service with refused input must not fill the
-- disk or slow everyone else, and nothing it sends may go uncounted.
--
-- Per source and key (the device id, else the topic, else none) and per time window, the first
-- letters are kept in full; the rest of that window are counted into ONE summary row of
-- dead_letters, updated in place: suppressed_count (exact), first seen (received_at) and last
-- seen, with the first suppressed letter's reason and raw bytes as a sample. The table grows by
-- keys x windows, not by messages.
--
-- dead_letter_windows holds each key's count in the current window: the upsert of its row
-- serialises the writers of one key (several service processes included) until they commit, so
-- the split between full rows and the summary is exact. Rows of past windows are deleted by the
-- retention job.
--
-- NOT VALID + VALIDATE (as in 0006): adding the checks scans no row; the existing rows are
-- validated in a separate step, which of itself takes no lock that blocks writers.
ALTER TABLE dead_letters
    ADD COLUMN suppressed_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_seen timestamptz,
    ADD COLUMN limit_key text,
    ADD COLUMN window_start timestamptz,
    ADD CONSTRAINT dead_letters_suppressed_count_check CHECK (suppressed_count >= 0) NOT VALID,
    ADD CONSTRAINT dead_letters_summary_shape CHECK (
        (window_start IS NULL AND limit_key IS NULL AND suppressed_count = 0 AND last_seen IS NULL)
        OR (window_start IS NOT NULL AND limit_key IS NOT NULL AND suppressed_count > 0
            AND last_seen IS NOT NULL)
    ) NOT VALID;
ALTER TABLE dead_letters VALIDATE CONSTRAINT dead_letters_suppressed_count_check;
ALTER TABLE dead_letters VALIDATE CONSTRAINT dead_letters_summary_shape;

-- one summary per source, key and window (the target of the summary upsert)
CREATE UNIQUE INDEX dead_letters_summary ON dead_letters (source, limit_key, window_start)
    WHERE window_start IS NOT NULL;

CREATE TABLE dead_letter_windows (
    source       text NOT NULL,
    limit_key    text NOT NULL,
    window_start timestamptz NOT NULL,
    letters      bigint NOT NULL CHECK (letters > 0),
    PRIMARY KEY (source, limit_key, window_start)
);
