-- Clients are registered identities on every grant (issue 10): public clients (no secret),
-- the grants each client may use, and redirect URIs for the authorization-code grant.
--
-- SQLite cannot drop NOT NULL from `secret_hash`, so the table is rebuilt. Existing rows are
-- confidential service clients of the client_credentials grant, and keep exactly that.
CREATE TABLE clients_new (
    id            TEXT    PRIMARY KEY NOT NULL,
    -- SHA-256 of the secret; NULL exactly for a public client.
    secret_hash   BLOB    CHECK (secret_hash IS NULL OR length(secret_hash) = 32),
    scopes        TEXT    NOT NULL DEFAULT '[]',
    -- Signing algorithm for this client's tokens (ES256/RS256), NULL for the configured one.
    alg           TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    public        INTEGER NOT NULL DEFAULT 0,
    -- Allowed grant types, a JSON list of RFC 6749 grant_type names.
    grants        TEXT    NOT NULL DEFAULT '["client_credentials"]',
    -- Registered redirection URIs (RFC 6749 §3.1.2), a JSON list.
    redirect_uris TEXT    NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK ((public <> 0) = (secret_hash IS NULL))
);

INSERT INTO clients_new (id, secret_hash, scopes, alg, disabled, public, grants, redirect_uris,
                         created_at, updated_at)
SELECT id, secret_hash, scopes, alg, disabled, 0, '["client_credentials"]', '[]',
       created_at, updated_at
FROM clients;

DROP TABLE clients;

ALTER TABLE clients_new RENAME TO clients;
