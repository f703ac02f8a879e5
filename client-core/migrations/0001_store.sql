-- The local store of a replica. Documents are a snapshot plus append-only change chunks.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS documents (
    id         TEXT PRIMARY KEY,           -- automerge-repo document id (bs58check)
    kind       TEXT NOT NULL,              -- 'escuela' | 'zona'
    owner      TEXT NOT NULL,              -- CCT or zone key
    ciclo      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- At most one snapshot per document: the compacted prefix of its history.
CREATE TABLE IF NOT EXISTS snapshots (
    doc_id     TEXT PRIMARY KEY REFERENCES documents(id),
    data       BLOB NOT NULL,
    heads      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Change chunks appended after the snapshot; `hash` (sha256 of data) makes appends idempotent.
CREATE TABLE IF NOT EXISTS chunks (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    hash   BLOB NOT NULL,
    data   BLOB NOT NULL,
    UNIQUE (doc_id, hash)
);
