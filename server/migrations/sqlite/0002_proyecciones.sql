-- The dashboard's projections: per school document, what the zone dashboard shows, recomputed
-- off the request path whenever the document's stored changes grow (src/proyector.rs). Rows of
-- a document are replaced together, in one transaction, and only by a projection computed from
-- at least as many changes (`cambios`). Keep in step with the other back-end's migration.
CREATE TABLE proy_escuelas (
    documento               TEXT PRIMARY KEY REFERENCES documentos(id),
    cct                     TEXT NOT NULL,
    ciclo                   TEXT NOT NULL,
    nombre                  TEXT,
    heads                   TEXT NOT NULL,
    cambios                 INT8 NOT NULL,
    calculado               INT8 NOT NULL,
    pemc_porcentaje         INT8 NOT NULL,
    ambitos_con_diagnostico INT8 NOT NULL,
    ambitos_total           INT8 NOT NULL,
    ambitos_priorizados     INT8 NOT NULL,
    objetivos               INT8 NOT NULL,
    objetivos_con_meta      INT8 NOT NULL,
    metas                   INT8 NOT NULL,
    metas_con_accion        INT8 NOT NULL,
    acciones                INT8 NOT NULL,
    conflictos              INT8 NOT NULL,
    apoyo_corte             TEXT,
    apoyo_grupos            INT8 NOT NULL,
    apoyo_total_alumnos     INT8 NOT NULL,
    detalle                 TEXT NOT NULL
);
-- Counts by category: grupo 'logro' (metas by nivel de logro), 'accion' (acciones by estado).
CREATE TABLE proy_conteos (
    documento TEXT NOT NULL REFERENCES documentos(id),
    grupo     TEXT NOT NULL,
    clave     TEXT NOT NULL,
    valor     INT8 NOT NULL,
    PRIMARY KEY (documento, grupo, clave)
);
CREATE TABLE proy_acuerdos (
    documento        TEXT NOT NULL REFERENCES documentos(id),
    id               TEXT NOT NULL,
    texto            TEXT NOT NULL,
    estado           TEXT NOT NULL,
    fecha_compromiso TEXT,
    responsables     TEXT NOT NULL,
    PRIMARY KEY (documento, id)
);
CREATE TABLE proy_sesiones (
    documento TEXT NOT NULL REFERENCES documentos(id),
    id        TEXT NOT NULL,
    fase      TEXT NOT NULL,
    numero    INT8,
    fecha     TEXT,
    PRIMARY KEY (documento, id)
);
CREATE TABLE proy_apoyo (
    documento TEXT NOT NULL REFERENCES documentos(id),
    campo     TEXT NOT NULL,
    alumnos   INT8 NOT NULL,
    base      INT8 NOT NULL,
    grupos    INT8 NOT NULL,
    PRIMARY KEY (documento, campo)
);
CREATE TABLE proy_ambitos (
    documento         TEXT NOT NULL REFERENCES documentos(id),
    ambito            TEXT NOT NULL,
    prioridad         INT8,
    tiene_diagnostico INT8 NOT NULL,
    objetivos         INT8 NOT NULL,
    metas             INT8 NOT NULL,
    metas_cumplida    INT8 NOT NULL,
    metas_avance      INT8 NOT NULL,
    metas_escaso      INT8 NOT NULL,
    PRIMARY KEY (documento, ambito)
);
-- When a school last synced (a device of its staff exchanged sync messages for its document, or
-- its USB bundle was imported) and when its document last received new changes, by server time.
CREATE TABLE contacto (
    documento     TEXT PRIMARY KEY REFERENCES documentos(id),
    ultima_sync   INT8,
    ultimo_cambio INT8
);
-- Dashboard sign-in sessions. The cookie holds a random id; only its SHA-256 is stored. A
-- session lives no longer than the token it was opened with and ends if that token is revoked.
CREATE TABLE sesiones_web (
    id_hash TEXT PRIMARY KEY,
    usuario TEXT NOT NULL REFERENCES usuarios(id),
    jti     TEXT NOT NULL REFERENCES tokens(jti),
    csrf    TEXT NOT NULL,
    creada  INT8 NOT NULL,
    expira  INT8 NOT NULL
);
