-- Resource servers (issue 16, "One issuer, many APIs"): each registered API is an audience.
-- `identifier` is what tokens carry in `aud` and what clients name in RFC 8707 `resource=`
-- (an absolute URI); `id` is a short name for the admin API's paths and the CLI. `scopes` are
-- the scopes the API defines.
CREATE TABLE apis (
    id         TEXT   PRIMARY KEY,
    identifier TEXT   NOT NULL UNIQUE,
    name       TEXT   NOT NULL,
    scopes     TEXT[] NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The API a refresh-token family's access tokens are for (NULL: the default `audience`), and
-- the one an authorization request and its code were made for.
ALTER TABLE refresh_families ADD COLUMN resource TEXT;
ALTER TABLE oidc_requests ADD COLUMN resource TEXT;
ALTER TABLE oidc_codes ADD COLUMN resource TEXT;
