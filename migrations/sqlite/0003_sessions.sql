-- Sessions: refresh-token families, the access-token denylist, and service clients.

-- One family per login. Every refresh token descends from the login's first token; reuse of a
-- spent one revokes the family (RFC 9700 §4.14.2).
CREATE TABLE refresh_families (
    id             TEXT    PRIMARY KEY NOT NULL,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id      TEXT    NOT NULL,
    -- Granted scope, space-separated (RFC 6749 §3.3).
    scope          TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    -- Absolute lifetime: no rotation extends the family past this.
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

-- Refresh tokens, by SHA-256 hash only: the database never holds a usable token.
CREATE TABLE refresh_tokens (
    hash          BLOB    PRIMARY KEY NOT NULL,
    family_id     TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    -- The user's token_version when this token was issued; a bump invalidates it.
    token_version INTEGER NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    -- Set once, by the one refresh that wins (conditional UPDATE ... WHERE spent_at IS NULL).
    spent_at      INTEGER,
    -- Whether the reuse grace window has been used for this (spent) token.
    grace_used    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Access tokens revoked before their exp (logout, RFC 7009), pruned once expired.
CREATE TABLE access_denylist (
    jti        TEXT    PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX access_denylist_expires ON access_denylist (expires_at);

-- Service clients of the client_credentials grant. The secret is stored as SHA-256 only.
CREATE TABLE clients (
    id          TEXT    PRIMARY KEY NOT NULL,
    secret_hash BLOB    NOT NULL,
    scopes      TEXT    NOT NULL DEFAULT '[]',
    -- Signing algorithm for this client's tokens (ES256/RS256), NULL for the configured one.
    alg         TEXT,
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
