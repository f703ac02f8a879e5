-- Sync state per (server storage id, document): only the shared heads, so a reconnect does not
-- resend what the server already confirmed.
CREATE TABLE IF NOT EXISTS sync_states (
    peer   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    state  BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
