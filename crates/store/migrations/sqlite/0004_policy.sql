-- The policy engine's shared state (rate-limit counters, the people revoked
-- per window, per-person cooldowns), tenants' stored policies, and the
-- approvals that hold revocations back until a second person decides.
-- Encodings as in 0001: UUIDs and timestamps as TEXT (fixed-width RFC 3339,
-- so text order is time order), JSON as TEXT.

-- One row per counter: the window it counts in and the count so far. A
-- claim in a newer window restarts the count, so the table holds one row
-- per key, not one per window.
CREATE TABLE policy_counters (
    key          TEXT    NOT NULL PRIMARY KEY,
    window_start TEXT    NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0)
) STRICT;

CREATE INDEX policy_counters_window_idx ON policy_counters (window_start);

-- The members of each blast-radius set, per window (its size is the
-- counter '<key>#size' in policy_counters).
CREATE TABLE policy_distinct (
    key          TEXT NOT NULL,
    window_start TEXT NOT NULL,
    member       TEXT NOT NULL,
    PRIMARY KEY (key, window_start, member)
) STRICT;

CREATE INDEX policy_distinct_window_idx ON policy_distinct (window_start);

-- Per-person cooldowns: blocked until 'until'.
CREATE TABLE policy_cooldowns (
    key   TEXT NOT NULL PRIMARY KEY,
    until TEXT NOT NULL
) STRICT;

-- A tenant's policy document, changed over the API; each change is audited
-- with the document before and after. 'revision' guards concurrent edits.
CREATE TABLE tenant_policies (
    tenant_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    document   TEXT    NOT NULL,
    revision   INTEGER NOT NULL CHECK (revision > 0),
    updated_at TEXT    NOT NULL,
    updated_by TEXT    NOT NULL
) STRICT;

-- One row per request a policy sent to approval. The request itself stays
-- 'pending_approval' (which no claim takes) until this row is settled.
CREATE TABLE approvals (
    request_id       TEXT NOT NULL PRIMARY KEY
                     REFERENCES revocation_requests (id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    action           TEXT NOT NULL,
    username         TEXT NOT NULL,
    request_reason   TEXT NOT NULL,
    channel          TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    requester_person TEXT,
    -- JSON array of the policy's reasons.
    reasons          TEXT NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    decided_by       TEXT,
    decided_at       TEXT,
    decision_reason  TEXT
) STRICT;

CREATE INDEX approvals_tenant_idx ON approvals (tenant_id, request_id);
CREATE INDEX approvals_pending_idx ON approvals (state, expires_at);
