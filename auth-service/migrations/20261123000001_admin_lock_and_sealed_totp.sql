-- An administrative lock on an account (the security-incident runbook's lock/unlock), kept in PostgreSQL
-- so that it survives the loss of Redis, where the failed-login lockout lives. Locked while `locked_at` is
-- set and `locked_until` is NULL (until unlocked) or in the future.
ALTER TABLE users
    ADD COLUMN locked_at    TIMESTAMPTZ,
    ADD COLUMN locked_until TIMESTAMPTZ,
    ADD COLUMN lock_reason  TEXT,
    ADD COLUMN locked_by    TEXT;

-- TOTP secrets encrypted at rest. `secret_format` 0: the 20 raw bytes (every row written before this
-- migration; the service seals it the next time it reads it), 1: sealed with AES-256-GCM
-- (version ‖ key id ‖ nonce ‖ ciphertext and tag, 57 bytes; see src/totp_seal.rs).
ALTER TABLE totp_credentials DROP CONSTRAINT totp_secret_length;
ALTER TABLE totp_credentials ADD COLUMN secret_format SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE totp_credentials ADD CONSTRAINT totp_secret_shape CHECK (
    (secret_format = 0 AND octet_length(secret) = 20) OR (secret_format = 1 AND octet_length(secret) = 57)
);
