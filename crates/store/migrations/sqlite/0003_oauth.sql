-- OAuth 2.1 for MCP clients: clients registered dynamically (RFC 7591),
-- authorization codes and access/refresh tokens. Codes and tokens are kept
-- as the SHA-256 of their value only. Encodings as in 0001 and 0002.

-- A client is pending (tenant_id NULL) until an owner or admin approves it,
-- which binds it to their tenant.
CREATE TABLE oauth_clients (
    id            TEXT NOT NULL PRIMARY KEY,
    name          TEXT NOT NULL,
    -- JSON array of exact redirect URIs.
    redirect_uris TEXT NOT NULL,
    -- The rest of the registration metadata, as JSON.
    metadata      TEXT NOT NULL,
    tenant_id     TEXT REFERENCES tenants (id),
    approved_by   TEXT,
    approved_at   TEXT,
    created_at    TEXT NOT NULL,
    CHECK ((tenant_id IS NULL) = (approved_at IS NULL))
) STRICT;

CREATE INDEX oauth_clients_tenant_idx ON oauth_clients (tenant_id, created_at);

-- Deleting a client deletes its codes and tokens (the store also does so
-- explicitly, in the same transaction).
CREATE TABLE oauth_codes (
    digest         BLOB NOT NULL PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    user_id        TEXT NOT NULL,
    -- Space-separated, as api_keys.scopes.
    scopes         TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT,
    expires_at     TEXT NOT NULL,
    created_at     TEXT NOT NULL
) STRICT;

CREATE INDEX oauth_codes_client_idx ON oauth_codes (client_id);

CREATE TABLE oauth_tokens (
    digest     BLOB NOT NULL PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id  TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- A used refresh token or a revoked token stays until its client goes.
    revoked_at TEXT
) STRICT;

CREATE INDEX oauth_tokens_client_idx ON oauth_tokens (client_id);
