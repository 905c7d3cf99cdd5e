-- The admin web UI: signed-in browsers and failed sign-in counters. Same
-- tables and columns as the SQLite schema, with native types.

-- A session is known by the SHA-256 of the random id in its cookie; the id
-- itself is never stored. Deleting the user deletes their sessions.
CREATE TABLE ui_sessions (
    digest       bytea       NOT NULL PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    -- The synchronizer token every state-changing form of the session carries.
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    client_ip    text,
    user_agent   text
);

CREATE INDEX ui_sessions_user_idx ON ui_sessions (user_id);
CREATE INDEX ui_sessions_expiry_idx ON ui_sessions (expires_at);

-- Failed sign-ins per key (the lowercased email) within the current window;
-- a key that reaches the limit is refused until locked_until.
CREATE TABLE ui_login_failures (
    key             text        NOT NULL PRIMARY KEY,
    failures        integer     NOT NULL CHECK (failures > 0),
    first_failed_at timestamptz NOT NULL,
    locked_until    timestamptz
);
