-- Append-only record of administrative actions: who did what, when, to which key or user.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT,
    detail   TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
