-- Client secret rotation with an overlap (issue 11): the secret replaced by the latest rotation
-- stays valid until `previous_secret_expires_at` (Unix seconds), so services can roll their
-- configuration without downtime. Both NULL when there is no overlap.
ALTER TABLE clients
    ADD COLUMN previous_secret_hash       BYTEA
        CHECK (previous_secret_hash IS NULL OR octet_length(previous_secret_hash) = 32),
    ADD COLUMN previous_secret_expires_at BIGINT;
