-- Bulk revocations (issue 7): a job under an incident id, and one item per
-- input row. A valid item gets the id of its ordinary revocation request
-- before that request is written, so a restart never creates a second one.
-- Encodings as in 0001 (UUIDs and timestamps as TEXT).

CREATE TABLE bulk_jobs (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    incident_id  TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    -- JSON array of connector instance names; NULL: every enabled one.
    targets      TEXT,
    source       TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    -- Data rows stored so far, and how many of them were invalid.
    row_count    INTEGER NOT NULL DEFAULT 0,
    invalid_rows INTEGER NOT NULL DEFAULT 0,
    input_done   INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT    NOT NULL,
    finished_at  TEXT
) STRICT;

CREATE INDEX bulk_jobs_incident_idx ON bulk_jobs (incident_id);

CREATE TABLE bulk_items (
    job_id     TEXT    NOT NULL REFERENCES bulk_jobs (id),
    seq        INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    username   TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    request_id TEXT,
    note       TEXT,
    PRIMARY KEY (job_id, seq)
) STRICT;

CREATE INDEX bulk_items_request_idx ON bulk_items (request_id);
