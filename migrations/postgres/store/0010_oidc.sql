-- OpenID Connect provider (issue 12): clients' first-/third-party flag and post-logout
-- redirect URIs, issuer browser sessions, pending authorization requests, authorization codes
-- and remembered consents. Existing clients are first-party (no consent screen), as before.
ALTER TABLE clients
    ADD COLUMN first_party               BOOLEAN NOT NULL DEFAULT TRUE,
    -- Registered post_logout_redirect_uri values (RP-initiated logout).
    ADD COLUMN post_logout_redirect_uris TEXT[]  NOT NULL DEFAULT '{}';

-- The issuer browser session a family was produced under (authorization-code grant), so that
-- ending the session (RP-initiated logout) revokes its families. NULL for other grants.
ALTER TABLE refresh_families ADD COLUMN session_id TEXT;
CREATE INDEX refresh_families_session ON refresh_families (session_id);

-- Issuer browser sessions (single sign-on). `id` is the public `sid` of ID tokens; the cookie
-- holds a separate 256-bit secret, stored as SHA-256 only. A session lives while its user is
-- enabled and still has `token_version` (revoke-all, password change and disable bump it).
CREATE TABLE oidc_sessions (
    id            TEXT   PRIMARY KEY,
    secret_hash   BYTEA  NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
    user_id       TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_version BIGINT NOT NULL,
    auth_time     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX oidc_sessions_user ON oidc_sessions (user_id);
CREATE INDEX oidc_sessions_expires ON oidc_sessions (expires_at);

-- Authorization requests waiting for the login or consent form, under a random id. The form's
-- CSRF token and the pre-login cookie are stored as SHA-256 only.
CREATE TABLE oidc_requests (
    id             TEXT   PRIMARY KEY,
    browser_hash   BYTEA  NOT NULL CHECK (octet_length(browser_hash) = 32),
    csrf_hash      BYTEA  NOT NULL CHECK (octet_length(csrf_hash) = 32),
    client_id      TEXT   NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    scope          TEXT   NOT NULL DEFAULT '',
    state          TEXT,
    nonce          TEXT,
    code_challenge TEXT,
    prompt         TEXT,
    login_hint     TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX oidc_requests_expires ON oidc_requests (expires_at);

-- Authorization codes, by SHA-256 only; consumed once (conditional UPDATE). What the first use
-- produced (family, access token) is kept so that a replay can revoke it.
CREATE TABLE oidc_codes (
    hash           BYTEA  PRIMARY KEY CHECK (octet_length(hash) = 32),
    client_id      TEXT   NOT NULL,
    user_id        TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT   NOT NULL,
    token_version  BIGINT NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    scope          TEXT   NOT NULL DEFAULT '',
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT,
    family_id      TEXT,
    access_jti     TEXT,
    access_exp     BIGINT
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires_at);

-- Consent of a user to a third-party client, for a set of scopes.
CREATE TABLE oidc_consents (
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL,
    scope      TEXT   NOT NULL DEFAULT '',
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
