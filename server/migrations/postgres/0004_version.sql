-- Each document's stored version: how many appends of new chunks it has had. It grows in the
-- same transaction as the chunk, so a reader that sees version v sees exactly those chunks. A
-- projection records the version it was computed from, so the dashboard and the projector's
-- sweep can tell a projection that is behind its document (src/proyector.rs). Existing
-- projections get -1: the first sweep after the upgrade recomputes them. Keep in step with the
-- other back-end's migration.
ALTER TABLE documentos ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE proy_escuelas ADD COLUMN version BIGINT NOT NULL DEFAULT -1;
