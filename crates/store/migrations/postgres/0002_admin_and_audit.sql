-- Tenants, the people and API keys that act for them, their channel switches
-- and connector instances, the audit trail and the idempotency cache. Same
-- tables and columns as the SQLite schema, with native types.

CREATE TABLE tenants (
    id         uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

-- One row once a tenant's switches were first saved; until then every
-- switch is off. The webhook signing secret is sealed (key_id names the
-- sealing key, blob is nonce || ciphertext) and present only while the
-- webhook channel is on.
CREATE TABLE tenant_settings (
    tenant_id                 uuid        NOT NULL PRIMARY KEY REFERENCES tenants (id),
    revocation_enabled        boolean     NOT NULL,
    webhook_enabled           boolean     NOT NULL,
    mcp_enabled               boolean     NOT NULL,
    webhook_require_timestamp boolean     NOT NULL,
    webhook_secret_key_id     text,
    webhook_secret_blob       bytea,
    updated_at                timestamptz NOT NULL,
    CHECK ((webhook_secret_key_id IS NULL) = (webhook_secret_blob IS NULL))
);

CREATE TABLE users (
    id            uuid        NOT NULL PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    email         text        NOT NULL,
    role          text        NOT NULL,
    -- Argon2id PHC string.
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    disabled      boolean     NOT NULL
);

-- Emails are unique per tenant whatever their case.
CREATE UNIQUE INDEX users_tenant_email_idx ON users (tenant_id, lower(email));

-- Only the SHA-256 of a key is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id           uuid        NOT NULL PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    digest       bytea       NOT NULL UNIQUE,
    -- Space-separated: 'sessions:read sessions:revoke'.
    scopes       text        NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    -- A revoked key stays, so an attempt to use it can be recognised and logged.
    revoked_at   timestamptz
);

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- Connector instances configured per tenant. Non-secret settings are JSON;
-- the secret fields are one sealed JSON object, never stored in the clear.
CREATE TABLE connector_instances (
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    name             text        NOT NULL,
    provider         text        NOT NULL,
    enabled          boolean     NOT NULL,
    settings         jsonb       NOT NULL,
    secrets_key_id   text,
    secrets_blob     bytea,
    last_test_at     timestamptz,
    last_test_ok     boolean,
    last_test_detail text,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name),
    CHECK ((secrets_key_id IS NULL) = (secrets_blob IS NULL))
);

-- The audit trail: one hash chain across every tenant, numbered from 1, so
-- one pass verifies everything. No tenant foreign key: refused attempts
-- naming an unknown tenant are recorded too.
--
-- detail is `json`, not `jsonb`: `json` keeps the text exactly as written,
-- so what is read back serializes, and hashes, exactly as what was hashed.
CREATE TABLE audit_log (
    seq        bigint      NOT NULL PRIMARY KEY CHECK (seq > 0),
    tenant_id  uuid        NOT NULL,
    at         timestamptz NOT NULL,
    actor      text        NOT NULL,
    role       text,
    channel    text        NOT NULL,
    source     text,
    client_ip  text,
    action     text        NOT NULL CHECK (action <> ''),
    target     text,
    reason     text,
    decision   text        NOT NULL CHECK (decision IN ('allowed', 'denied')),
    result     text,
    request_id uuid,
    detail     json        NOT NULL,
    -- Hex SHA-256 of the previous record (64 zeros for the first) and of this one.
    prev_hash  text        NOT NULL,
    hash       text        NOT NULL
);

CREATE INDEX audit_log_tenant_seq_idx ON audit_log (tenant_id, seq);

-- The database itself keeps the trail append-only: an UPDATE, DELETE or
-- TRUNCATE fails whatever the application does. (Statement-level, so even
-- one that would touch no row is refused.) The hash chain then shows any
-- change made by someone able to drop these triggers.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- The first answer given to an Idempotency-Key, replayed on retries.
CREATE TABLE idempotency_keys (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    key         text        NOT NULL,
    -- SHA-256 of the request body: the same key with another body is a conflict.
    body_digest bytea       NOT NULL,
    status      integer     NOT NULL,
    response    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
