-- Revocation requests, their per-connector results and every provider call
-- made for them, plus the sealed token cache.
--
-- Representation on SQLite (the PostgreSQL schema has the same tables and
-- columns with native types):
--   * UUIDs are hyphenated lowercase TEXT. That text sorts like the UUID's
--     bytes, so UUIDv7 request ids sort by creation time.
--   * Timestamps are fixed-width RFC 3339 TEXT in UTC with microseconds
--     ('2025-01-02T03:04:05.123456Z'), so text order is time order and
--     comparisons such as lease expiry work in SQL.
--   * Every row carries or reaches a tenant_id: the schema is multi-tenant
--     from the start.

CREATE TABLE revocation_requests (
    id               TEXT    NOT NULL PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    username         TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    requested_by     TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    -- The process running the request and until when; NULL when nobody is.
    lease_owner      TEXT,
    lease_expires_at TEXT,
    -- How many times a process took the request; a high count flags a
    -- request that keeps killing its workers.
    claim_count      INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Request ids are UUIDv7, so (.., id) indexes serve "newest first" listings.
CREATE INDEX revocation_requests_tenant_id_idx ON revocation_requests (tenant_id, id);
CREATE INDEX revocation_requests_status_id_idx ON revocation_requests (status, id);
CREATE INDEX revocation_requests_username_idx ON revocation_requests (lower(username), id);

CREATE TABLE revocation_results (
    request_id     TEXT    NOT NULL REFERENCES revocation_requests (id) ON DELETE CASCADE,
    instance       TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    -- Order of the targets as requested.
    position       INTEGER NOT NULL,
    -- Outcome label ('revoked', 'failed', ...); NULL while pending.
    outcome        TEXT,
    -- The full serialized outcome (JSON), including a failure's detail.
    outcome_detail TEXT,
    subject_id     TEXT,
    finished_at    TEXT,
    PRIMARY KEY (request_id, instance)
) STRICT;

CREATE TABLE revocation_attempts (
    request_id          TEXT    NOT NULL,
    instance            TEXT    NOT NULL,
    seq                 INTEGER NOT NULL,
    step                TEXT    NOT NULL,
    number              INTEGER NOT NULL,
    started_at          TEXT    NOT NULL,
    duration_ms         INTEGER NOT NULL,
    http_status         INTEGER,
    provider_code       TEXT,
    provider_request_id TEXT,
    error_class         TEXT,
    PRIMARY KEY (request_id, instance, seq),
    FOREIGN KEY (request_id, instance)
        REFERENCES revocation_results (request_id, instance) ON DELETE CASCADE
) STRICT;

-- Provider access tokens, sealed: blob is nonce || ciphertext, key_id names
-- the sealing key. No column ever holds a token in the clear.
CREATE TABLE token_cache (
    key        TEXT NOT NULL PRIMARY KEY,
    key_id     TEXT NOT NULL,
    blob       BLOB NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
