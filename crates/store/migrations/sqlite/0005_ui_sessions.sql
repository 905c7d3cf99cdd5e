-- The admin web UI: signed-in browsers and failed sign-in counters.
-- Encodings as in 0001 and 0002 (UUIDs and timestamps as TEXT).

-- A session is known by the SHA-256 of the random id in its cookie; the id
-- itself is never stored. Deleting the user deletes their sessions.
CREATE TABLE ui_sessions (
    digest       BLOB NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    -- The synchronizer token every state-changing form of the session carries.
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    client_ip    TEXT,
    user_agent   TEXT
) STRICT;

CREATE INDEX ui_sessions_user_idx ON ui_sessions (user_id);
CREATE INDEX ui_sessions_expiry_idx ON ui_sessions (expires_at);

-- Failed sign-ins per key (the lowercased email) within the current window;
-- a key that reaches the limit is refused until locked_until.
CREATE TABLE ui_login_failures (
    key             TEXT    NOT NULL PRIMARY KEY,
    failures        INTEGER NOT NULL CHECK (failures > 0),
    first_failed_at TEXT    NOT NULL,
    locked_until    TEXT
) STRICT;
