-- Tenants, the people and API keys that act for them, their channel switches
-- and connector instances, the audit trail and the idempotency cache.
-- Encodings as in 0001 (UUIDs and timestamps as TEXT); booleans are
-- INTEGER 0 or 1, JSON is TEXT.

CREATE TABLE tenants (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- One row once a tenant's switches were first saved; until then every
-- switch is off. The webhook signing secret is sealed (key_id names the
-- sealing key, blob is nonce || ciphertext) and present only while the
-- webhook channel is on.
CREATE TABLE tenant_settings (
    tenant_id                 TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    revocation_enabled        INTEGER NOT NULL CHECK (revocation_enabled IN (0, 1)),
    webhook_enabled           INTEGER NOT NULL CHECK (webhook_enabled IN (0, 1)),
    mcp_enabled               INTEGER NOT NULL CHECK (mcp_enabled IN (0, 1)),
    webhook_require_timestamp INTEGER NOT NULL CHECK (webhook_require_timestamp IN (0, 1)),
    webhook_secret_key_id     TEXT,
    webhook_secret_blob       BLOB,
    updated_at                TEXT    NOT NULL,
    CHECK ((webhook_secret_key_id IS NULL) = (webhook_secret_blob IS NULL))
) STRICT;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    email         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    -- Argon2id PHC string.
    password_hash TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1))
) STRICT;

-- Emails are unique per tenant whatever their case. (SQLite's lower() folds
-- ASCII only; PostgreSQL's folds all of Unicode.)
CREATE UNIQUE INDEX users_tenant_email_idx ON users (tenant_id, lower(email));

-- Only the SHA-256 of a key is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id           TEXT NOT NULL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    digest       BLOB NOT NULL UNIQUE,
    -- Space-separated: 'sessions:read sessions:revoke'.
    scopes       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    -- A revoked key stays, so an attempt to use it can be recognised and logged.
    revoked_at   TEXT
) STRICT;

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- Connector instances configured per tenant. Non-secret settings are JSON;
-- the secret fields are one sealed JSON object, never stored in the clear.
CREATE TABLE connector_instances (
    tenant_id        TEXT    NOT NULL REFERENCES tenants (id),
    name             TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    settings         TEXT    NOT NULL,
    secrets_key_id   TEXT,
    secrets_blob     BLOB,
    last_test_at     TEXT,
    last_test_ok     INTEGER CHECK (last_test_ok IN (0, 1)),
    last_test_detail TEXT,
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, name),
    CHECK ((secrets_key_id IS NULL) = (secrets_blob IS NULL))
) STRICT;

-- The audit trail: one hash chain across every tenant, numbered from 1, so
-- one pass verifies everything. No tenant foreign key: refused attempts
-- naming an unknown tenant are recorded too.
CREATE TABLE audit_log (
    seq        INTEGER NOT NULL PRIMARY KEY CHECK (seq > 0),
    tenant_id  TEXT    NOT NULL,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    role       TEXT,
    channel    TEXT    NOT NULL,
    source     TEXT,
    client_ip  TEXT,
    action     TEXT    NOT NULL CHECK (action <> ''),
    target     TEXT,
    reason     TEXT,
    decision   TEXT    NOT NULL CHECK (decision IN ('allowed', 'denied')),
    result     TEXT,
    request_id TEXT,
    detail     TEXT    NOT NULL,
    -- Hex SHA-256 of the previous record (64 zeros for the first) and of this one.
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_tenant_seq_idx ON audit_log (tenant_id, seq);

-- The database itself keeps the trail append-only: an UPDATE or DELETE
-- (SQLite has no TRUNCATE; these triggers also disable its truncate
-- optimisation) fails whatever the application does. The hash chain then
-- shows any change made by someone able to drop these triggers.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- The first answer given to an Idempotency-Key, replayed on retries.
CREATE TABLE idempotency_keys (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    key         TEXT    NOT NULL,
    -- SHA-256 of the request body: the same key with another body is a conflict.
    body_digest BLOB    NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, key)
) STRICT;
