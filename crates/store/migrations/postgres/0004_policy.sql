-- The policy engine's shared state (rate-limit counters, the people revoked
-- per window, per-person cooldowns), tenants' stored policies, and the
-- approvals that hold revocations back until a second person decides. Same
-- tables and columns as the SQLite schema, with native types. Counters live
-- here so every replica shares them and they survive restarts.

-- One row per counter: the window it counts in and the count so far. A
-- claim in a newer window restarts the count, so the table holds one row
-- per key, not one per window.
CREATE TABLE policy_counters (
    key          text        NOT NULL PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        bigint      NOT NULL CHECK (count >= 0)
);

CREATE INDEX policy_counters_window_idx ON policy_counters (window_start);

-- The members of each blast-radius set, per window (its size is the
-- counter '<key>#size' in policy_counters).
CREATE TABLE policy_distinct (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    member       text        NOT NULL,
    PRIMARY KEY (key, window_start, member)
);

CREATE INDEX policy_distinct_window_idx ON policy_distinct (window_start);

-- Per-person cooldowns: blocked until 'until'.
CREATE TABLE policy_cooldowns (
    key   text        NOT NULL PRIMARY KEY,
    until timestamptz NOT NULL
);

-- A tenant's policy document, changed over the API; each change is audited
-- with the document before and after. 'revision' guards concurrent edits.
-- json, not jsonb: the document is kept as written by Sever, key order included.
CREATE TABLE tenant_policies (
    tenant_id  uuid        NOT NULL PRIMARY KEY REFERENCES tenants (id),
    document   json        NOT NULL,
    revision   bigint      NOT NULL CHECK (revision > 0),
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL
);

-- One row per request a policy sent to approval. The request itself stays
-- 'pending_approval' (which no claim takes) until this row is settled.
CREATE TABLE approvals (
    request_id       uuid        NOT NULL PRIMARY KEY
                     REFERENCES revocation_requests (id) ON DELETE CASCADE,
    tenant_id        uuid        NOT NULL,
    action           text        NOT NULL,
    username         text        NOT NULL,
    request_reason   text        NOT NULL,
    channel          text        NOT NULL,
    requested_by     text        NOT NULL,
    requester_person text,
    -- JSON array of the policy's reasons.
    reasons          json        NOT NULL,
    state            text        NOT NULL
                     CHECK (state IN ('pending', 'approved', 'denied', 'expired')),
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    decided_by       text,
    decided_at       timestamptz,
    decision_reason  text
);

CREATE INDEX approvals_tenant_idx ON approvals (tenant_id, request_id);
CREATE INDEX approvals_pending_idx ON approvals (state, expires_at);
