-- The audit log is append-only: row triggers do not fire on TRUNCATE, so refuse it too.
CREATE TRIGGER auditoria_no_truncate BEFORE TRUNCATE ON auditoria
    FOR EACH STATEMENT EXECUTE FUNCTION auditoria_append_only();
