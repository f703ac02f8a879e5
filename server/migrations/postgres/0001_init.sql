-- Zone server schema (PostgreSQL). Keep in step with ../sqlite/0001_init.sql: the queries in
-- src/db.rs run unchanged on both.
CREATE TABLE zonas (
    clave  TEXT PRIMARY KEY,
    nombre TEXT NOT NULL,
    creado BIGINT NOT NULL
);
CREATE TABLE escuelas (
    cct    TEXT PRIMARY KEY,
    nombre TEXT NOT NULL,
    zona   TEXT NOT NULL REFERENCES zonas(clave),
    creado BIGINT NOT NULL
);
CREATE TABLE usuarios (
    id     TEXT PRIMARY KEY,
    nombre TEXT NOT NULL,
    rol    TEXT NOT NULL,
    cct    TEXT REFERENCES escuelas(cct),
    zona   TEXT REFERENCES zonas(clave),
    creado BIGINT NOT NULL
);
CREATE TABLE tokens (
    jti      TEXT PRIMARY KEY,
    usuario  TEXT NOT NULL REFERENCES usuarios(id),
    emitido  BIGINT NOT NULL,
    expira   BIGINT NOT NULL,
    revocado BIGINT
);
CREATE TABLE actores (
    actor      TEXT PRIMARY KEY,
    usuario    TEXT NOT NULL REFERENCES usuarios(id),
    registrado BIGINT NOT NULL
);
CREATE TABLE documentos (
    id     TEXT PRIMARY KEY,
    tipo   TEXT NOT NULL,
    owner  TEXT NOT NULL,
    ciclo  TEXT NOT NULL,
    creado BIGINT NOT NULL
);
CREATE TABLE chunks (
    seq    BIGSERIAL PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documentos(id),
    hash   BYTEA NOT NULL,
    data   BYTEA NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE TABLE snapshots (
    doc_id  TEXT PRIMARY KEY REFERENCES documentos(id),
    data    BYTEA NOT NULL,
    heads   TEXT NOT NULL,
    max_seq BIGINT NOT NULL,
    creado  BIGINT NOT NULL
);
CREATE TABLE sync_states (
    peer    TEXT NOT NULL,
    doc_id  TEXT NOT NULL REFERENCES documentos(id),
    state   BYTEA NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
CREATE TABLE auditoria (
    seq       BIGSERIAL PRIMARY KEY,
    ts        BIGINT NOT NULL,
    usuario   TEXT NOT NULL,
    documento TEXT NOT NULL,
    accion    TEXT NOT NULL,
    resultado TEXT NOT NULL,
    detalle   TEXT NOT NULL
);
-- The audit log is append-only.
CREATE FUNCTION auditoria_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'auditoria is append-only'; END $$;
CREATE TRIGGER auditoria_no_change BEFORE UPDATE OR DELETE ON auditoria
    FOR EACH ROW EXECUTE FUNCTION auditoria_append_only();
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
