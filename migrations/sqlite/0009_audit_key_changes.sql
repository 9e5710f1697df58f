-- Key-set changes are recorded in the key manifest with the change itself and copied into the
-- audit log from there (an outbox): this id keeps every change to one audit entry, however many
-- processes copy it.
ALTER TABLE audit_log ADD COLUMN key_change_id TEXT;
CREATE UNIQUE INDEX audit_log_key_change ON audit_log (key_change_id);
