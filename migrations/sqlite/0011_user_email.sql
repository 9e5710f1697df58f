-- An optional e-mail address per user (issue 12): OpenID Connect userinfo returns it with the
-- `email` scope. Set by an administrator; not checked for ownership (no `email_verified`).
ALTER TABLE users ADD COLUMN email TEXT;
