-- The key store of the scale-out deployment: the manifest (states and times) as one row, and the
-- private keys encrypted with AES-256-GCM under the operator's key-encryption key (kid as AAD).
CREATE TABLE key_manifest (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation BIGINT  NOT NULL,
    manifest   JSONB   NOT NULL
);

CREATE TABLE signing_keys (
    kid        TEXT   PRIMARY KEY,
    alg        TEXT   NOT NULL,
    nonce      BYTEA  NOT NULL,
    ciphertext BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);
