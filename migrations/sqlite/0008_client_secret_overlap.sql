-- Client secret rotation with an overlap (issue 11): the secret replaced by the latest rotation
-- stays valid until `previous_secret_expires_at` (Unix seconds), so services can roll their
-- configuration without downtime. Both NULL when there is no overlap.
ALTER TABLE clients ADD COLUMN previous_secret_hash BLOB
    CHECK (previous_secret_hash IS NULL OR length(previous_secret_hash) = 32);
ALTER TABLE clients ADD COLUMN previous_secret_expires_at INTEGER;
