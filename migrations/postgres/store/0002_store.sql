-- The issuer's state on PostgreSQL (the scale-out deployment), shared by every replica: the same
-- tables as the SQLite store, with native types (BIGINT unix seconds, BYTEA hashes, TEXT[] lists).

-- Users of the password grant. Usernames are stored lower-cased (see store::Username).
CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    roles         TEXT[]  NOT NULL DEFAULT '{}',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    token_version BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- Append-only record of administrative actions: who did what, when, to which key or user.
CREATE TABLE audit_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

-- One family per login. Every refresh token descends from the login's first token; reuse of a
-- spent one revokes the family (RFC 9700 §4.14.2).
CREATE TABLE refresh_families (
    id             TEXT   PRIMARY KEY,
    user_id        TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id      TEXT   NOT NULL,
    -- Granted scope, space-separated (RFC 6749 §3.3).
    scope          TEXT   NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    -- Absolute lifetime: no rotation extends the family past this.
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

-- Refresh tokens, by SHA-256 hash only: the database never holds a usable token.
CREATE TABLE refresh_tokens (
    hash          BYTEA   PRIMARY KEY CHECK (octet_length(hash) = 32),
    family_id     TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    -- The user's token_version when this token was issued; a bump invalidates it.
    token_version BIGINT  NOT NULL,
    issued_at     BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    -- Set once, by the one refresh that wins (row lock, then UPDATE ... WHERE spent_at IS NULL).
    spent_at      BIGINT,
    -- Whether the reuse grace window has been used for this (spent) token.
    grace_used    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Access tokens revoked before their exp (logout, RFC 7009), pruned once expired.
CREATE TABLE access_denylist (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_denylist_expires ON access_denylist (expires_at);

-- Service clients of the client_credentials grant. The secret is stored as SHA-256 only.
CREATE TABLE clients (
    id          TEXT    PRIMARY KEY,
    secret_hash BYTEA   NOT NULL CHECK (octet_length(secret_hash) = 32),
    scopes      TEXT[]  NOT NULL DEFAULT '{}',
    -- Signing algorithm for this client's tokens (ES256/RS256), NULL for the configured one.
    alg         TEXT,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
