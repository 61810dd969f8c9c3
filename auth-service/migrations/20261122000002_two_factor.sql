-- Two-factor authentication: a TOTP credential per user (confirmed by a first valid code) and its
-- single-use recovery codes (stored as SHA-256); a phone number for SMS codes.

CREATE TABLE totp_credentials (
    user_id         UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The shared secret; the service must be able to compute codes, so it cannot be hashed.
    secret          BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    -- NULL until the first valid code confirms the enrolment; only confirmed credentials are enforced.
    confirmed_at    TIMESTAMPTZ,
    -- The last accepted time step: a code is accepted once, and never for an earlier step.
    last_used_step  BIGINT,
    CONSTRAINT totp_secret_length CHECK (octet_length(secret) = 20)
);

CREATE TABLE recovery_codes (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash       BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ
);
CREATE UNIQUE INDEX recovery_codes_user_hash_key ON recovery_codes (user_id, code_hash);

ALTER TABLE users ADD COLUMN phone TEXT;
