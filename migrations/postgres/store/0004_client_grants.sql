-- Clients are registered identities on every grant (issue 10): public clients (no secret),
-- the grants each client may use, and redirect URIs for the authorization-code grant.
-- Existing rows are confidential service clients of the client_credentials grant, and keep
-- exactly that.
ALTER TABLE clients ALTER COLUMN secret_hash DROP NOT NULL;

ALTER TABLE clients
    ADD COLUMN public        BOOLEAN NOT NULL DEFAULT FALSE,
    -- Allowed grant types, by RFC 6749 grant_type name.
    ADD COLUMN grants        TEXT[]  NOT NULL DEFAULT '{client_credentials}',
    -- Registered redirection URIs (RFC 6749 §3.1.2).
    ADD COLUMN redirect_uris TEXT[]  NOT NULL DEFAULT '{}',
    -- SHA-256 of the secret; NULL exactly for a public client.
    ADD CONSTRAINT clients_public_has_no_secret CHECK (public = (secret_hash IS NULL));
