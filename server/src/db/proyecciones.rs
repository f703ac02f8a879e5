//! The dashboard's tables: projections of school documents, the schools' last contact, and
//! dashboard sign-in sessions. Queries here serve the dashboard; they never touch chunks.

use std::collections::BTreeMap;

use bitacora_core::model::escuela::Escuela;
use bitacora_core::proyeccion::{AcuerdoP, AmbitoP, ApoyoP, Proyeccion, SesionP};
use bitacora_core::resumen::Completitud;
use sqlx::{AssertSqlSafe, Row};

use super::{Database, DbError};

/// One school of a zone with its projection's scalar figures (if its document has one).
#[derive(Debug, Clone, PartialEq)]
pub struct FilaEscuela {
    pub cct: String,
    pub nombre: String,
    pub documento: Option<String>,
    pub proyeccion: Option<Cifras>,
    pub ultima_sync: Option<i64>,
    pub ultimo_cambio: Option<i64>,
    /// The document's stored version (appends of new chunks), if it has a document.
    pub version_guardada: Option<i64>,
}

/// (stored version, projected version, computed at, last change) of a document.
type FilaAtraso = (i64, Option<i64>, Option<i64>, Option<i64>);
/// The document's id, then [`FilaAtraso`].
type FilaAtrasoDoc = (String, i64, Option<i64>, Option<i64>, Option<i64>);

/// A school document whose projection is behind what is stored ([`Database::proyecciones_atrasadas`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atraso {
    pub documento: String,
    /// The document's stored version (appends of new chunks).
    pub version_guardada: i64,
    /// The version its projection was computed from (`None`: never projected; -1: projected
    /// before versions were recorded).
    pub version_proyectada: Option<i64>,
    /// When the stored projection was computed.
    pub calculado: Option<i64>,
    /// When the document last received new changes.
    pub ultimo_cambio: Option<i64>,
}

impl Atraso {
    /// Appends of new changes the projection does not include yet.
    pub fn versiones_detras(&self) -> i64 {
        (self.version_guardada - self.version_proyectada.unwrap_or(0).max(0)).max(0)
    }

    /// Seconds since the oldest change the projection lacks could have arrived: from the
    /// projection's computation (or the last change, if never projected) to `ahora`.
    pub fn segundos(&self, ahora: i64) -> i64 {
        self.calculado
            .or(self.ultimo_cambio)
            .map_or(0, |t| (ahora - t).max(0))
    }
}

/// The scalar figures of a stored projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Cifras {
    pub heads: String,
    pub cambios: i64,
    pub calculado: i64,
    /// The stored version the projection was computed from (-1: before versions were kept).
    pub version: i64,
    pub pemc: Completitud,
    pub conflictos: i64,
    pub apoyo_corte: Option<String>,
    pub apoyo_grupos: i64,
    pub apoyo_total_alumnos: i64,
}

/// Acuerdos of one school: open ones (pendiente or en proceso), those of them past their date,
/// and all of them by estado.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcuerdosEscuela {
    pub abiertos: i64,
    pub vencidos: i64,
    pub total: i64,
}

/// Everything the zone page needs, from a handful of queries over the zone's documents.
#[derive(Debug, Clone, Default)]
pub struct DatosZona {
    pub escuelas: Vec<FilaEscuela>,
    /// documento -> grupo -> clave -> valor
    pub conteos: BTreeMap<String, BTreeMap<String, BTreeMap<String, i64>>>,
    pub acuerdos: BTreeMap<String, AcuerdosEscuela>,
    /// documento -> fase -> sessions recorded
    pub sesiones: BTreeMap<String, BTreeMap<String, i64>>,
    /// documento -> campo -> row
    pub apoyo: BTreeMap<String, BTreeMap<String, ApoyoP>>,
    /// Zone totals per campo (groups that recorded it, over all schools).
    pub apoyo_zona: Vec<ApoyoZona>,
    pub ambitos: Vec<AmbitoZona>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApoyoZona {
    pub campo: String,
    pub alumnos: i64,
    pub base: i64,
    pub escuelas: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AmbitoZona {
    pub ambito: String,
    /// Schools with at least one meta in this ámbito at escaso o nulo avance.
    pub escuelas_con_escaso: i64,
    /// Schools with at least one meta in this ámbito.
    pub escuelas_con_metas: i64,
    /// Schools that gave it a priority in their diagnóstico.
    pub escuelas_que_priorizan: i64,
    pub metas: i64,
    pub metas_escaso: i64,
}

/// A live dashboard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesionWeb {
    pub usuario: String,
    pub jti: String,
    pub csrf: String,
    pub expira: i64,
}

/// The zone's school documents of a ciclo, as a subquery over `$1` (zone) and `$2` (ciclo).
const DOCS_ZONA: &str = "SELECT d.id FROM documentos d JOIN escuelas e ON e.cct = d.owner \
                         WHERE e.zona = $1 AND d.tipo = 'escuela' AND d.ciclo = $2";

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Database {
    /// Stores a projection, replacing the document's rows in one transaction, unless the stored
    /// one was computed from more changes. Returns whether it was written. The stored version
    /// it was computed from stays as it was ([`Database::guardar_proyeccion_de`] records it).
    pub async fn guardar_proyeccion(
        &self,
        p: &Proyeccion,
        calculado: i64,
    ) -> Result<bool, DbError> {
        self.guardar_proyeccion_de(p, None, calculado).await
    }

    /// [`Database::guardar_proyeccion`] of a projection computed from the document's stored
    /// `version` ([`super::Stored::version`]), which is recorded with it so the dashboard and the
    /// projector's sweep can tell whether the projection is behind the document.
    pub async fn guardar_proyeccion_de(
        &self,
        p: &Proyeccion,
        version: Option<i64>,
        calculado: i64,
    ) -> Result<bool, DbError> {
        let detalle = serde_json::to_string(&p.detalle)
            .map_err(|e| DbError::Damaged(format!("projection does not serialise: {e}")))?;
        let doc = p.documento.as_str();
        macro_rules! body {
            ($tx:ident) => {{
                let escrito = sqlx::query(
                    "INSERT INTO proy_escuelas (documento, cct, ciclo, nombre, heads, cambios, calculado, \
                     pemc_porcentaje, ambitos_con_diagnostico, ambitos_total, ambitos_priorizados, objetivos, \
                     objetivos_con_meta, metas, metas_con_accion, acciones, conflictos, apoyo_corte, apoyo_grupos, \
                     apoyo_total_alumnos, detalle, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
                     ON CONFLICT (documento) DO UPDATE SET cct = excluded.cct, ciclo = excluded.ciclo, \
                     nombre = excluded.nombre, heads = excluded.heads, cambios = excluded.cambios, \
                     calculado = excluded.calculado, pemc_porcentaje = excluded.pemc_porcentaje, \
                     ambitos_con_diagnostico = excluded.ambitos_con_diagnostico, ambitos_total = excluded.ambitos_total, \
                     ambitos_priorizados = excluded.ambitos_priorizados, objetivos = excluded.objetivos, \
                     objetivos_con_meta = excluded.objetivos_con_meta, metas = excluded.metas, \
                     metas_con_accion = excluded.metas_con_accion, acciones = excluded.acciones, \
                     conflictos = excluded.conflictos, apoyo_corte = excluded.apoyo_corte, \
                     apoyo_grupos = excluded.apoyo_grupos, apoyo_total_alumnos = excluded.apoyo_total_alumnos, \
                     detalle = excluded.detalle, \
                     version = CASE WHEN excluded.version >= 0 THEN excluded.version ELSE proy_escuelas.version END \
                     WHERE proy_escuelas.cambios <= excluded.cambios",
                )
                .bind(doc)
                .bind(&p.cct)
                .bind(&p.ciclo)
                .bind(&p.nombre)
                .bind(&p.heads)
                .bind(n(p.cambios))
                .bind(calculado)
                .bind(i64::from(p.pemc.porcentaje))
                .bind(p.pemc.ambitos_con_diagnostico as i64)
                .bind(p.pemc.ambitos_total as i64)
                .bind(p.pemc.ambitos_priorizados as i64)
                .bind(p.pemc.objetivos as i64)
                .bind(p.pemc.objetivos_con_meta as i64)
                .bind(p.pemc.metas as i64)
                .bind(p.pemc.metas_con_accion as i64)
                .bind(p.pemc.acciones as i64)
                .bind(n(p.conflictos))
                .bind(&p.apoyo_corte)
                .bind(n(p.apoyo_grupos))
                .bind(n(p.apoyo_total_alumnos))
                .bind(&detalle)
                .bind(version.unwrap_or(-1))
                .execute(&mut *$tx)
                .await?
                .rows_affected();
                if escrito == 0 {
                    // A projection of more changes is already there.
                    $tx.rollback().await?;
                    return Ok(false);
                }
                for q in [
                    "DELETE FROM proy_conteos WHERE documento = $1",
                    "DELETE FROM proy_acuerdos WHERE documento = $1",
                    "DELETE FROM proy_sesiones WHERE documento = $1",
                    "DELETE FROM proy_apoyo WHERE documento = $1",
                    "DELETE FROM proy_ambitos WHERE documento = $1",
                ] {
                    sqlx::query(q).bind(doc).execute(&mut *$tx).await?;
                }
                for (grupo, mapa) in [("logro", &p.metas_por_logro), ("accion", &p.acciones_por_estado)] {
                    for (clave, valor) in mapa {
                        sqlx::query("INSERT INTO proy_conteos (documento, grupo, clave, valor) VALUES ($1, $2, $3, $4)")
                            .bind(doc).bind(grupo).bind(clave).bind(n(*valor))
                            .execute(&mut *$tx).await?;
                    }
                }
                for a in &p.acuerdos {
                    let responsables = serde_json::to_string(&a.responsables).unwrap_or_else(|_| "[]".into());
                    sqlx::query("INSERT INTO proy_acuerdos (documento, id, texto, estado, fecha_compromiso, responsables) \
                                 VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(doc).bind(&a.id).bind(&a.texto).bind(&a.estado).bind(&a.fecha_compromiso).bind(responsables)
                        .execute(&mut *$tx).await?;
                }
                for s in &p.sesiones {
                    sqlx::query("INSERT INTO proy_sesiones (documento, id, fase, numero, fecha) VALUES ($1, $2, $3, $4, $5)")
                        .bind(doc).bind(&s.id).bind(&s.fase).bind(s.numero.map(n)).bind(&s.fecha)
                        .execute(&mut *$tx).await?;
                }
                for a in &p.apoyo {
                    sqlx::query("INSERT INTO proy_apoyo (documento, campo, alumnos, base, grupos) VALUES ($1, $2, $3, $4, $5)")
                        .bind(doc).bind(&a.campo).bind(n(a.alumnos)).bind(n(a.base)).bind(n(a.grupos))
                        .execute(&mut *$tx).await?;
                }
                for a in &p.ambitos {
                    sqlx::query("INSERT INTO proy_ambitos (documento, ambito, prioridad, tiene_diagnostico, objetivos, metas, \
                                 metas_cumplida, metas_avance, metas_escaso) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                        .bind(doc).bind(&a.ambito).bind(a.prioridad.map(n)).bind(i64::from(a.tiene_diagnostico))
                        .bind(n(a.objetivos)).bind(n(a.metas)).bind(n(a.metas_cumplida)).bind(n(a.metas_avance))
                        .bind(n(a.metas_escaso))
                        .execute(&mut *$tx).await?;
                }
                $tx.commit().await?;
                Ok(true)
            }};
        }
        match self {
            Database::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                body!(tx)
            }
            Database::Postgres(p) => {
                let mut tx = p.begin().await?;
                body!(tx)
            }
        }
    }

    /// The stored projection of a document, read back from its rows.
    pub async fn proyeccion(&self, documento: &str) -> Result<Option<Proyeccion>, DbError> {
        macro_rules! body {
            ($p:ident) => {{
                let Some(r) = sqlx::query("SELECT * FROM proy_escuelas WHERE documento = $1")
                    .bind(documento)
                    .fetch_optional($p)
                    .await?
                else {
                    return Ok(None);
                };
                let detalle: String = r.get("detalle");
                let detalle: Escuela = serde_json::from_str(&detalle)
                    .map_err(|e| DbError::Damaged(format!("projection of {documento}: {e}")))?;
                let conteos: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT grupo, clave, valor FROM proy_conteos WHERE documento = $1 ORDER BY grupo, clave",
                )
                .bind(documento)
                .fetch_all($p)
                .await?;
                let mapa = |g: &str| {
                    conteos
                        .iter()
                        .filter(|c| c.0 == g)
                        .map(|c| (c.1.clone(), u(c.2)))
                        .collect::<BTreeMap<_, _>>()
                };
                let acuerdos: Vec<(String, String, String, Option<String>, String)> = sqlx::query_as(
                    "SELECT id, texto, estado, fecha_compromiso, responsables FROM proy_acuerdos WHERE documento = $1",
                )
                .bind(documento)
                .fetch_all($p)
                .await?;
                let sesiones: Vec<(String, String, Option<i64>, Option<String>)> = sqlx::query_as(
                    "SELECT id, fase, numero, fecha FROM proy_sesiones WHERE documento = $1",
                )
                .bind(documento)
                .fetch_all($p)
                .await?;
                let apoyo: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT campo, alumnos, base, grupos FROM proy_apoyo WHERE documento = $1",
                )
                .bind(documento)
                .fetch_all($p)
                .await?;
                let ambitos: Vec<(String, Option<i64>, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
                    "SELECT ambito, prioridad, tiene_diagnostico, objetivos, metas, metas_cumplida, metas_avance, \
                     metas_escaso FROM proy_ambitos WHERE documento = $1",
                )
                .bind(documento)
                .fetch_all($p)
                .await?;
                let cabecera = (cifras_de_fila(&r), r_get_str(&r, "cct"), r_get_str(&r, "ciclo"), r_get_opt(&r, "nombre"));
                (cabecera, detalle, mapa("logro"), mapa("accion"), acuerdos, sesiones, apoyo, ambitos)
            }};
        }
        let (
            (cifras, cct, ciclo, nombre),
            detalle,
            metas_por_logro,
            acciones_por_estado,
            acuerdos,
            sesiones,
            apoyo,
            ambitos,
        ) = match self {
            Database::Sqlite(p) => body!(p),
            Database::Postgres(p) => body!(p),
        };
        // Rows are put back in the document's order, which the projection keeps.
        fn orden<'a>(id: &str, mut ids: impl Iterator<Item = &'a str>) -> Option<usize> {
            ids.position(|x| x == id)
        }
        let mut acuerdos: Vec<AcuerdoP> = acuerdos
            .into_iter()
            .map(
                |(id, texto, estado, fecha_compromiso, responsables)| AcuerdoP {
                    id,
                    texto,
                    estado,
                    fecha_compromiso,
                    responsables: serde_json::from_str(&responsables).unwrap_or_default(),
                },
            )
            .collect();
        acuerdos.sort_by_key(|a| {
            orden(
                &a.id,
                detalle
                    .acuerdos
                    .iter()
                    .filter(|x| !x.archivado)
                    .map(|x| x.id.as_str()),
            )
        });
        let mut sesiones: Vec<SesionP> = sesiones
            .into_iter()
            .map(|(id, fase, numero, fecha)| SesionP {
                id,
                fase,
                numero: numero.map(u),
                fecha,
            })
            .collect();
        sesiones.sort_by_key(|s| {
            orden(
                &s.id,
                detalle
                    .sesiones
                    .iter()
                    .filter(|x| !x.archivado)
                    .map(|x| x.id.as_str()),
            )
        });
        let campos: Vec<&str> = bitacora_core::proyeccion::campos_situacion()
            .map(|c| c.0)
            .collect();
        let mut apoyo: Vec<ApoyoP> = apoyo
            .into_iter()
            .map(|(campo, alumnos, base, grupos)| ApoyoP {
                campo,
                alumnos: u(alumnos),
                base: u(base),
                grupos: u(grupos),
            })
            .collect();
        apoyo.sort_by_key(|a| campos.iter().position(|c| *c == a.campo));
        let ambitos: Vec<AmbitoP> = ordenar_ambitos(
            ambitos
                .into_iter()
                .map(
                    |(ambito, prioridad, diag, objetivos, metas, c, a, e)| AmbitoP {
                        ambito,
                        prioridad: prioridad.map(u),
                        tiene_diagnostico: diag != 0,
                        objetivos: u(objetivos),
                        metas: u(metas),
                        metas_cumplida: u(c),
                        metas_avance: u(a),
                        metas_escaso: u(e),
                    },
                )
                .collect(),
            &detalle,
        );
        Ok(Some(Proyeccion {
            documento: documento.to_string(),
            cct,
            ciclo,
            nombre,
            heads: cifras.heads,
            cambios: u(cifras.cambios),
            pemc: cifras.pemc,
            metas_por_logro,
            acciones_por_estado,
            acuerdos,
            sesiones,
            apoyo_corte: cifras.apoyo_corte,
            apoyo_grupos: u(cifras.apoyo_grupos),
            apoyo_total_alumnos: u(cifras.apoyo_total_alumnos),
            apoyo,
            ambitos,
            conflictos: u(cifras.conflictos),
            detalle,
        }))
    }

    /// The heads and change count of a document's stored projection.
    pub async fn proyeccion_version(
        &self,
        documento: &str,
    ) -> Result<Option<(String, i64)>, DbError> {
        Ok(
            on!(self, p => sqlx::query_as("SELECT heads, cambios FROM proy_escuelas WHERE documento = $1")
            .bind(documento).fetch_optional(p).await?),
        )
    }

    /// School documents whose projection is behind their stored changes (or missing): the
    /// stored version is past the one the projection was computed from. The projector's sweep
    /// marks them; the dashboard and `/metrics` show them.
    pub async fn proyecciones_atrasadas(&self) -> Result<Vec<Atraso>, DbError> {
        let rows: Vec<FilaAtrasoDoc> = on!(self, p => sqlx::query_as(
            "SELECT d.id, d.version, pe.version, pe.calculado, c.ultimo_cambio FROM documentos d \
             LEFT JOIN proy_escuelas pe ON pe.documento = d.id \
             LEFT JOIN contacto c ON c.documento = d.id \
             WHERE d.tipo = 'escuela' AND (pe.version IS NULL OR pe.version < d.version) \
             ORDER BY d.id")
            .fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(
                |(documento, guardada, proyectada, calculado, ultimo_cambio)| Atraso {
                    documento,
                    version_guardada: guardada,
                    version_proyectada: proyectada,
                    calculado,
                    ultimo_cambio,
                },
            )
            .collect())
    }

    /// One document's projection lag, `None` when its projection is up to date (or it is not a
    /// registered school document).
    pub async fn proyeccion_atraso(&self, documento: &str) -> Result<Option<Atraso>, DbError> {
        let r: Option<FilaAtraso> = on!(self, p => sqlx::query_as(
            "SELECT d.version, pe.version, pe.calculado, c.ultimo_cambio FROM documentos d \
             LEFT JOIN proy_escuelas pe ON pe.documento = d.id \
             LEFT JOIN contacto c ON c.documento = d.id \
             WHERE d.id = $1 AND d.tipo = 'escuela' AND (pe.version IS NULL OR pe.version < d.version)")
            .bind(documento).fetch_optional(p).await?);
        Ok(
            r.map(|(guardada, proyectada, calculado, ultimo_cambio)| Atraso {
                documento: documento.to_string(),
                version_guardada: guardada,
                version_proyectada: proyectada,
                calculado,
                ultimo_cambio,
            }),
        )
    }

    /// When a document's stored projection was computed.
    pub async fn proyeccion_calculado(&self, documento: &str) -> Result<Option<i64>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT calculado FROM proy_escuelas WHERE documento = $1")
            .bind(documento).fetch_optional(p).await?),
        )
    }

    /// Records that a school's device synced its document (or its bundle arrived) at `ts`.
    pub async fn registrar_sync(&self, documento: &str, ts: i64) -> Result<(), DbError> {
        on!(self, p => sqlx::query(
            "INSERT INTO contacto (documento, ultima_sync) VALUES ($1, $2) \
             ON CONFLICT (documento) DO UPDATE SET ultima_sync = excluded.ultima_sync \
             WHERE contacto.ultima_sync IS NULL OR contacto.ultima_sync < excluded.ultima_sync")
            .bind(documento).bind(ts).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Records that a document received new changes at `ts`.
    pub async fn registrar_cambio(&self, documento: &str, ts: i64) -> Result<(), DbError> {
        on!(self, p => sqlx::query(
            "INSERT INTO contacto (documento, ultimo_cambio) VALUES ($1, $2) \
             ON CONFLICT (documento) DO UPDATE SET ultimo_cambio = excluded.ultimo_cambio \
             WHERE contacto.ultimo_cambio IS NULL OR contacto.ultimo_cambio < excluded.ultimo_cambio")
            .bind(documento).bind(ts).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The zone page's data for `ciclo`; `hoy` (`AAAA-MM-DD`) decides which acuerdos are overdue.
    pub async fn datos_zona(
        &self,
        zona: &str,
        ciclo: &str,
        hoy: &str,
    ) -> Result<DatosZona, DbError> {
        let mut out = DatosZona::default();
        macro_rules! body {
            ($p:ident) => {{
                let filas = sqlx::query(
                    "SELECT e.cct AS cct, e.nombre AS escuela, d.id AS documento, pe.heads, pe.cambios, pe.calculado, \
                     pe.pemc_porcentaje, pe.ambitos_con_diagnostico, pe.ambitos_total, pe.ambitos_priorizados, \
                     pe.objetivos, pe.objetivos_con_meta, pe.metas, pe.metas_con_accion, pe.acciones, pe.conflictos, \
                     pe.apoyo_corte, pe.apoyo_grupos, pe.apoyo_total_alumnos, c.ultima_sync, c.ultimo_cambio, \
                     d.version AS version_guardada, pe.version AS version_proyectada \
                     FROM escuelas e \
                     LEFT JOIN documentos d ON d.owner = e.cct AND d.tipo = 'escuela' AND d.ciclo = $2 \
                     LEFT JOIN proy_escuelas pe ON pe.documento = d.id \
                     LEFT JOIN contacto c ON c.documento = d.id \
                     WHERE e.zona = $1 ORDER BY e.cct",
                )
                .bind(zona)
                .bind(ciclo)
                .fetch_all($p)
                .await?;
                for r in &filas {
                    let tiene: Option<String> = r.try_get("heads").ok().flatten();
                    out.escuelas.push(FilaEscuela {
                        cct: r.get("cct"),
                        nombre: r.get("escuela"),
                        documento: r.get("documento"),
                        proyeccion: tiene.map(|_| cifras_de_fila(r)),
                        ultima_sync: r.get("ultima_sync"),
                        ultimo_cambio: r.get("ultimo_cambio"),
                        version_guardada: r.get("version_guardada"),
                    });
                }
                let conteos: Vec<(String, String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT documento, grupo, clave, valor FROM proy_conteos WHERE documento IN ({DOCS_ZONA})"
                )))
                .bind(zona).bind(ciclo).fetch_all($p).await?;
                for (d, g, c, v) in conteos {
                    out.conteos.entry(d).or_default().entry(g).or_default().insert(c, v);
                }
                let acuerdos: Vec<(String, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT documento, \
                       CAST(SUM(CASE WHEN estado IN ('pendiente', 'en_proceso') THEN 1 ELSE 0 END) AS INT8), \
                       CAST(SUM(CASE WHEN estado IN ('pendiente', 'en_proceso') AND fecha_compromiso < $3 THEN 1 ELSE 0 END) AS INT8), \
                       CAST(COUNT(*) AS INT8) \
                     FROM proy_acuerdos WHERE documento IN ({DOCS_ZONA}) GROUP BY documento"
                )))
                .bind(zona).bind(ciclo).bind(hoy).fetch_all($p).await?;
                for (d, abiertos, vencidos, total) in acuerdos {
                    out.acuerdos.insert(d, AcuerdosEscuela { abiertos, vencidos, total });
                }
                let sesiones: Vec<(String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT documento, fase, CAST(COUNT(*) AS INT8) FROM proy_sesiones \
                     WHERE documento IN ({DOCS_ZONA}) GROUP BY documento, fase"
                )))
                .bind(zona).bind(ciclo).fetch_all($p).await?;
                for (d, f, c) in sesiones {
                    out.sesiones.entry(d).or_default().insert(f, c);
                }
                let apoyo: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT documento, campo, alumnos, base, grupos FROM proy_apoyo WHERE documento IN ({DOCS_ZONA})"
                )))
                .bind(zona).bind(ciclo).fetch_all($p).await?;
                for (d, campo, alumnos, base, grupos) in apoyo {
                    out.apoyo.entry(d).or_default().insert(
                        campo.clone(),
                        ApoyoP { campo, alumnos: u(alumnos), base: u(base), grupos: u(grupos) },
                    );
                }
                out.apoyo_zona = sqlx::query_as::<_, (String, i64, i64, i64)>(AssertSqlSafe(format!(
                    "SELECT campo, CAST(SUM(alumnos) AS INT8), CAST(SUM(base) AS INT8), CAST(COUNT(*) AS INT8) \
                     FROM proy_apoyo WHERE grupos > 0 AND documento IN ({DOCS_ZONA}) GROUP BY campo"
                )))
                .bind(zona).bind(ciclo).fetch_all($p).await?
                .into_iter()
                .map(|(campo, alumnos, base, escuelas)| ApoyoZona { campo, alumnos, base, escuelas })
                .collect();
                out.ambitos = sqlx::query_as::<_, (String, i64, i64, i64, i64, i64)>(AssertSqlSafe(format!(
                    "SELECT ambito, \
                       CAST(SUM(CASE WHEN metas_escaso > 0 THEN 1 ELSE 0 END) AS INT8), \
                       CAST(SUM(CASE WHEN metas > 0 THEN 1 ELSE 0 END) AS INT8), \
                       CAST(SUM(CASE WHEN prioridad IS NOT NULL THEN 1 ELSE 0 END) AS INT8), \
                       CAST(SUM(metas) AS INT8), CAST(SUM(metas_escaso) AS INT8) \
                     FROM proy_ambitos WHERE documento IN ({DOCS_ZONA}) GROUP BY ambito"
                )))
                .bind(zona).bind(ciclo).fetch_all($p).await?
                .into_iter()
                .map(|(ambito, escuelas_con_escaso, escuelas_con_metas, escuelas_que_priorizan, metas, metas_escaso)| AmbitoZona {
                    ambito, escuelas_con_escaso, escuelas_con_metas, escuelas_que_priorizan, metas, metas_escaso,
                })
                .collect();
            }};
        }
        match self {
            Database::Sqlite(p) => body!(p),
            Database::Postgres(p) => body!(p),
        }
        Ok(out)
    }

    /// The ciclos a zone's schools have documents for, newest first.
    pub async fn ciclos_de_zona(&self, zona: &str) -> Result<Vec<String>, DbError> {
        Ok(on!(self, p => sqlx::query_scalar(
            "SELECT DISTINCT d.ciclo FROM documentos d JOIN escuelas e ON e.cct = d.owner \
             WHERE e.zona = $1 AND d.tipo = 'escuela' ORDER BY d.ciclo DESC")
            .bind(zona).fetch_all(p).await?))
    }

    /// A school's registry row: (name, zone).
    pub async fn escuela(&self, cct: &str) -> Result<Option<(String, String)>, DbError> {
        Ok(
            on!(self, p => sqlx::query_as("SELECT nombre, zona FROM escuelas WHERE cct = $1")
            .bind(cct).fetch_optional(p).await?),
        )
    }

    /// A zone's name.
    pub async fn zona_nombre(&self, clave: &str) -> Result<Option<String>, DbError> {
        Ok(
            on!(self, p => sqlx::query_scalar("SELECT nombre FROM zonas WHERE clave = $1")
            .bind(clave).fetch_optional(p).await?),
        )
    }

    /// The last contact of one document: (ultima_sync, ultimo_cambio).
    pub async fn contacto(&self, documento: &str) -> Result<(Option<i64>, Option<i64>), DbError> {
        let r: Option<(Option<i64>, Option<i64>)> = on!(self, p => sqlx::query_as(
            "SELECT ultima_sync, ultimo_cambio FROM contacto WHERE documento = $1")
            .bind(documento).fetch_optional(p).await?);
        Ok(r.unwrap_or((None, None)))
    }

    // -----------------------------------------------------------------------------------------
    // Dashboard sessions.

    pub async fn crear_sesion_web(
        &self,
        id_hash: &str,
        s: &SesionWeb,
        creada: i64,
    ) -> Result<(), DbError> {
        on!(self, p => sqlx::query(
            "INSERT INTO sesiones_web (id_hash, usuario, jti, csrf, creada, expira) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id_hash).bind(&s.usuario).bind(&s.jti).bind(&s.csrf).bind(creada).bind(s.expira)
            .execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// A session that has not expired at `ahora` and whose token is not revoked.
    pub async fn sesion_web(
        &self,
        id_hash: &str,
        ahora: i64,
    ) -> Result<Option<SesionWeb>, DbError> {
        let r: Option<(String, String, String, i64)> = on!(self, p => sqlx::query_as(
            "SELECT s.usuario, s.jti, s.csrf, s.expira FROM sesiones_web s JOIN tokens t ON t.jti = s.jti \
             WHERE s.id_hash = $1 AND s.expira > $2 AND t.revocado IS NULL AND t.expira > $2")
            .bind(id_hash).bind(ahora).fetch_optional(p).await?);
        Ok(r.map(|(usuario, jti, csrf, expira)| SesionWeb {
            usuario,
            jti,
            csrf,
            expira,
        }))
    }

    /// Ends a session, and any expired ones.
    pub async fn borrar_sesion_web(&self, id_hash: &str, ahora: i64) -> Result<(), DbError> {
        on!(self, p => sqlx::query("DELETE FROM sesiones_web WHERE id_hash = $1 OR expira <= $2")
            .bind(id_hash).bind(ahora).execute(p).await.map(|_| ()))?;
        Ok(())
    }
}

fn r_get_str<R: Row>(r: &R, col: &str) -> String
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    r.get(col)
}

fn r_get_opt<R: Row>(r: &R, col: &str) -> Option<String>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    r.get(col)
}

fn cifras_de_fila<R: Row>(r: &R) -> Cifras
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let g = |c: &str| -> i64 { r.get(c) };
    let z = |c: &str| -> usize { usize::try_from(g(c)).unwrap_or(0) };
    Cifras {
        heads: r.get("heads"),
        cambios: g("cambios"),
        calculado: g("calculado"),
        version: r
            .try_get::<i64, _>("version_proyectada")
            .or_else(|_| r.try_get::<i64, _>("version"))
            .unwrap_or(-1),
        pemc: Completitud {
            porcentaje: u32::try_from(g("pemc_porcentaje")).unwrap_or(0),
            ambitos_con_diagnostico: z("ambitos_con_diagnostico"),
            ambitos_total: z("ambitos_total"),
            ambitos_priorizados: z("ambitos_priorizados"),
            objetivos: z("objetivos"),
            objetivos_con_meta: z("objetivos_con_meta"),
            metas: z("metas"),
            metas_con_accion: z("metas_con_accion"),
            acciones: z("acciones"),
        },
        conflictos: g("conflictos"),
        apoyo_corte: r.get("apoyo_corte"),
        apoyo_grupos: g("apoyo_grupos"),
        apoyo_total_alumnos: g("apoyo_total_alumnos"),
    }
}

/// Ámbitos in the order the projection computes them: the catalogue's, then unknown keys in
/// the order the document mentions them.
fn ordenar_ambitos(mut v: Vec<AmbitoP>, e: &Escuela) -> Vec<AmbitoP> {
    let mut claves: Vec<String> = bitacora_core::catalogo::Catalogo::por_version(&e.catalogo)
        .map(|c| c.ambitos.iter().map(|a| a.clave.to_string()).collect())
        .unwrap_or_default();
    for k in e.diagnostico.iter().map(|d| &d.ambito).chain(
        e.objetivos
            .iter()
            .filter(|o| !o.archivado)
            .flat_map(|o| o.ambitos.iter()),
    ) {
        if !claves.contains(k) {
            claves.push(k.clone());
        }
    }
    v.sort_by_key(|a| claves.iter().position(|c| *c == a.ambito));
    v
}
