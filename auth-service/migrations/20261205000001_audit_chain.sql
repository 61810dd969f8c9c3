-- The audit log made tamper-evident. Requests append records without taking any lock (each with the
-- SHA-256 of its content, `content_hash`); a sealer links them shortly after into one hash chain, in the
-- order it finds them: `chain_index` is the position and `record_hash` = SHA-256(previous record_hash ‖
-- content_hash). Erasure redacts a record's personal data (`redacted_at`) but keeps its content hash, so
-- the chain still verifies; a redacted record's content is then vouched for by its hash alone.
-- `request_id` is now always the service's own; a client's `X-Request-Id` is kept apart.
ALTER TABLE audit_logs
    ADD COLUMN client_request_id TEXT,
    ADD COLUMN content_hash      BYTEA,
    ADD COLUMN chain_index       BIGINT UNIQUE,
    ADD COLUMN record_hash       BYTEA,
    ADD COLUMN redacted_at       TIMESTAMPTZ;
CREATE INDEX audit_logs_unsealed_idx ON audit_logs (occurred_at, id) WHERE chain_index IS NULL;

-- Append-only: no DELETE and no TRUNCATE; an UPDATE may only seal a record once, redact its personal
-- data, or drop its user (an account's purge: the foreign key's ON DELETE SET NULL).
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP;
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.occurred_at IS DISTINCT FROM OLD.occurred_at
       OR NEW.event IS DISTINCT FROM OLD.event
       OR NEW.result IS DISTINCT FROM OLD.result
       OR NEW.request_id IS DISTINCT FROM OLD.request_id
       OR (NEW.user_id IS DISTINCT FROM OLD.user_id AND NEW.user_id IS NOT NULL)
       OR (OLD.content_hash IS NOT NULL AND NEW.content_hash IS DISTINCT FROM OLD.content_hash)
       OR (OLD.chain_index IS NOT NULL AND (NEW.chain_index IS DISTINCT FROM OLD.chain_index
                                             OR NEW.record_hash IS DISTINCT FROM OLD.record_hash))
       OR (OLD.redacted_at IS NOT NULL AND NEW.redacted_at IS DISTINCT FROM OLD.redacted_at) THEN
        RAISE EXCEPTION 'audit_logs is append-only: only sealing, redaction and a purge of the user change a record';
    END IF;
    IF NEW.redacted_at IS NULL AND (NEW.ip IS DISTINCT FROM OLD.ip
                                    OR NEW.user_agent IS DISTINCT FROM OLD.user_agent
                                    OR NEW.client_request_id IS DISTINCT FROM OLD.client_request_id
                                    OR NEW.metadata IS DISTINCT FROM OLD.metadata) THEN
        RAISE EXCEPTION 'audit_logs: personal data is removed only by a redaction (set redacted_at)';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_logs_append_only_rows BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
CREATE TRIGGER audit_logs_append_only_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();
