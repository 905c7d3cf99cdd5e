-- Bulk revocations (issue 7): a job under an incident id, and one item per
-- input row. A valid item gets the id of its ordinary revocation request
-- before that request is written, so a restart never creates a second one.

CREATE TABLE bulk_jobs (
    id           uuid        NOT NULL PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    incident_id  text        NOT NULL,
    reason       text        NOT NULL,
    channel      text        NOT NULL,
    requested_by text        NOT NULL,
    -- JSON array of connector instance names; NULL: every enabled one.
    targets      text,
    source       text        NOT NULL,
    state        text        NOT NULL,
    row_count    bigint      NOT NULL DEFAULT 0,
    invalid_rows bigint      NOT NULL DEFAULT 0,
    input_done   boolean     NOT NULL DEFAULT FALSE,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);

CREATE INDEX bulk_jobs_incident_idx ON bulk_jobs (incident_id);

CREATE TABLE bulk_items (
    job_id     uuid    NOT NULL REFERENCES bulk_jobs (id),
    seq        bigint  NOT NULL,
    line       bigint  NOT NULL,
    username   text    NOT NULL,
    state      text    NOT NULL,
    request_id uuid,
    note       text,
    PRIMARY KEY (job_id, seq)
);

CREATE INDEX bulk_items_request_idx ON bulk_items (request_id);
