-- Zone server schema (SQLite). Keep in step with ../postgres/0001_init.sql: the queries in
-- src/db.rs run unchanged on both.
CREATE TABLE zonas (
    clave  TEXT PRIMARY KEY,
    nombre TEXT NOT NULL,
    creado INTEGER NOT NULL
);
CREATE TABLE escuelas (
    cct    TEXT PRIMARY KEY,
    nombre TEXT NOT NULL,
    zona   TEXT NOT NULL REFERENCES zonas(clave),
    creado INTEGER NOT NULL
);
CREATE TABLE usuarios (
    id     TEXT PRIMARY KEY,
    nombre TEXT NOT NULL,
    rol    TEXT NOT NULL,
    cct    TEXT REFERENCES escuelas(cct),
    zona   TEXT REFERENCES zonas(clave),
    creado INTEGER NOT NULL
);
CREATE TABLE tokens (
    jti      TEXT PRIMARY KEY,
    usuario  TEXT NOT NULL REFERENCES usuarios(id),
    emitido  INTEGER NOT NULL,
    expira   INTEGER NOT NULL,
    revocado INTEGER
);
CREATE TABLE actores (
    actor      TEXT PRIMARY KEY,
    usuario    TEXT NOT NULL REFERENCES usuarios(id),
    registrado INTEGER NOT NULL
);
CREATE TABLE documentos (
    id     TEXT PRIMARY KEY,
    tipo   TEXT NOT NULL,
    owner  TEXT NOT NULL,
    ciclo  TEXT NOT NULL,
    creado INTEGER NOT NULL
);
CREATE TABLE chunks (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documentos(id),
    hash   BLOB NOT NULL,
    data   BLOB NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE TABLE snapshots (
    doc_id  TEXT PRIMARY KEY REFERENCES documentos(id),
    data    BLOB NOT NULL,
    heads   TEXT NOT NULL,
    max_seq INTEGER NOT NULL,
    creado  INTEGER NOT NULL
);
CREATE TABLE sync_states (
    peer    TEXT NOT NULL,
    doc_id  TEXT NOT NULL REFERENCES documentos(id),
    state   BLOB NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
CREATE TABLE auditoria (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        INTEGER NOT NULL,
    usuario   TEXT NOT NULL,
    documento TEXT NOT NULL,
    accion    TEXT NOT NULL,
    resultado TEXT NOT NULL,
    detalle   TEXT NOT NULL
);
-- The audit log is append-only.
CREATE TRIGGER auditoria_no_update BEFORE UPDATE ON auditoria BEGIN SELECT RAISE(ABORT, 'auditoria is append-only'); END;
CREATE TRIGGER auditoria_no_delete BEFORE DELETE ON auditoria BEGIN SELECT RAISE(ABORT, 'auditoria is append-only'); END;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
