-- Revocation requests, their per-connector results and every provider call
-- made for them, plus the sealed token cache. Same tables and columns as the
-- SQLite schema, with native types. Unqualified names: the tables live in the
-- connection's search_path schema, which lets tests isolate themselves.

CREATE TABLE revocation_requests (
    id               uuid        NOT NULL PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    username         text        NOT NULL,
    reason           text        NOT NULL,
    channel          text        NOT NULL,
    requested_by     text        NOT NULL,
    status           text        NOT NULL,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- The process running the request and until when; NULL when nobody is.
    lease_owner      text,
    lease_expires_at timestamptz,
    -- How many times a process took the request; a high count flags a
    -- request that keeps killing its workers.
    claim_count      integer     NOT NULL DEFAULT 0
);

-- Request ids are UUIDv7, so (.., id) indexes serve "newest first" listings.
CREATE INDEX revocation_requests_tenant_id_idx ON revocation_requests (tenant_id, id);
CREATE INDEX revocation_requests_status_id_idx ON revocation_requests (status, id);
CREATE INDEX revocation_requests_username_idx ON revocation_requests (lower(username), id);

CREATE TABLE revocation_results (
    request_id     uuid        NOT NULL REFERENCES revocation_requests (id) ON DELETE CASCADE,
    instance       text        NOT NULL,
    provider       text        NOT NULL,
    -- Order of the targets as requested.
    position       bigint      NOT NULL,
    -- Outcome label ('revoked', 'failed', ...); NULL while pending.
    outcome        text,
    -- The full serialized outcome, including a failure's detail.
    outcome_detail jsonb,
    subject_id     text,
    finished_at    timestamptz,
    PRIMARY KEY (request_id, instance)
);

CREATE TABLE revocation_attempts (
    request_id          uuid        NOT NULL,
    instance            text        NOT NULL,
    seq                 bigint      NOT NULL,
    step                text        NOT NULL,
    number              bigint      NOT NULL,
    started_at          timestamptz NOT NULL,
    duration_ms         bigint      NOT NULL,
    http_status         integer,
    provider_code       text,
    provider_request_id text,
    error_class         text,
    PRIMARY KEY (request_id, instance, seq),
    FOREIGN KEY (request_id, instance)
        REFERENCES revocation_results (request_id, instance) ON DELETE CASCADE
);

-- Provider access tokens, sealed: blob is nonce || ciphertext, key_id names
-- the sealing key. No column ever holds a token in the clear.
CREATE TABLE token_cache (
    key        text        NOT NULL PRIMARY KEY,
    key_id     text        NOT NULL,
    blob       bytea       NOT NULL,
    expires_at timestamptz NOT NULL
);
