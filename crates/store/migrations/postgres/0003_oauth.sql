-- OAuth 2.1 for MCP clients: clients registered dynamically (RFC 7591),
-- authorization codes and access/refresh tokens. Same tables and columns as
-- the SQLite schema, with native types.

-- A client is pending (tenant_id NULL) until an owner or admin approves it,
-- which binds it to their tenant.
CREATE TABLE oauth_clients (
    id            text        NOT NULL PRIMARY KEY,
    name          text        NOT NULL,
    -- JSON array of exact redirect URIs.
    redirect_uris text        NOT NULL,
    -- The rest of the registration metadata, as JSON.
    metadata      text        NOT NULL,
    tenant_id     uuid        REFERENCES tenants (id),
    approved_by   text,
    approved_at   timestamptz,
    created_at    timestamptz NOT NULL,
    CHECK ((tenant_id IS NULL) = (approved_at IS NULL))
);

CREATE INDEX oauth_clients_tenant_idx ON oauth_clients (tenant_id, created_at);

-- Deleting a client deletes its codes and tokens (the store also does so
-- explicitly, in the same transaction).
CREATE TABLE oauth_codes (
    digest         bytea       NOT NULL PRIMARY KEY,
    client_id      text        NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    tenant_id      uuid        NOT NULL REFERENCES tenants (id),
    user_id        uuid        NOT NULL,
    -- Space-separated, as api_keys.scopes.
    scopes         text        NOT NULL,
    redirect_uri   text        NOT NULL,
    code_challenge text        NOT NULL,
    resource       text,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE INDEX oauth_codes_client_idx ON oauth_codes (client_id);

CREATE TABLE oauth_tokens (
    digest     bytea       NOT NULL PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id  text        NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    user_id    uuid        NOT NULL,
    scopes     text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    -- A used refresh token or a revoked token stays until its client goes.
    revoked_at timestamptz
);

CREATE INDEX oauth_tokens_client_idx ON oauth_tokens (client_id);
