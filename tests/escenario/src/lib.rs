//! `bitacora-escenario`: random editing scenarios of a school document for property tests.
//!
//! A scenario is a few replicas of one school's document (each its own device, initialised
//! offline from the deterministic genesis) and a sequence of steps drawn from the document
//! model's operations (acuerdos with concurrent text and status edits, PEMC records, sessions,
//! concentrado counts, archiving, conflict resolution) and merges between replicas. Used by
//! client-core's `replicas_converge_in_any_merge_order` and the server's
//! `projection_matches_document`. Test support only: never a dependency of a shipped crate.

pub mod ciclo;

use std::collections::BTreeSet;

use bitacora_core::ModelError;
use bitacora_core::automerge::{ActorId, AutoCommit, ChangeHash};
use bitacora_core::ids::{Cct, CicloEscolar, Fecha, RecordId};
use bitacora_core::model::escuela::{
    self, CAMPOS_CONCENTRADO, Corte, EstadoAccion, EstadoAcuerdo, Fase, NivelLogro, NuevaAccion,
    NuevaMeta, NuevaSesion, NuevoAcuerdo, NuevoObjetivo,
};
use bitacora_core::model::{Ctx, conflictos};
use proptest::prelude::*;

pub const AMBITOS: &[&str] = &[
    "aprovechamiento_asistencia",
    "practicas_docentes",
    "formacion_docente",
    "planes_programas",
    "participacion_comunidad",
    "autoridad_escolar",
    "infraestructura",
    "carga_administrativa",
];

pub const PERSONAS: &[&str] = &["Lupita", "Don Chema", "Mtra. Ñusta", "Iván"];

/// Picks one of the items a replica holds when the step runs (shrinks towards the first).
#[derive(Debug, Clone, Copy)]
pub struct Ix(pub u16);

impl Ix {
    pub fn index(self, len: usize) -> usize {
        usize::from(self.0) % len
    }

    pub fn get<T>(self, items: &[T]) -> &T {
        &items[self.index(items.len())]
    }
}

pub fn ix() -> impl Strategy<Value = Ix> {
    any::<u16>().prop_map(Ix)
}

/// Half of the time the first record (the oldest, usually shared by every replica), so that
/// replicas edit the same fields concurrently and conflicts arise.
pub fn ix_sesgado() -> impl Strategy<Value = Ix> {
    prop_oneof![Just(Ix(0)), ix()]
}

/// A splice on a text: delete `borrar` characters at a position, insert `insertar` there.
#[derive(Debug, Clone)]
pub struct Splice {
    pub pos: Ix,
    pub borrar: usize,
    pub insertar: String,
}

impl Splice {
    pub fn aplicar(&self, texto: &str) -> String {
        let chars: Vec<char> = texto.chars().collect();
        let pos = self.pos.index(chars.len() + 1);
        let fin = (pos + self.borrar).min(chars.len());
        chars[..pos]
            .iter()
            .chain(self.insertar.chars().collect::<Vec<_>>().iter())
            .chain(chars[fin..].iter())
            .collect()
    }
}

/// One step of the scenario. `r` picks the replica; other `Ix`es pick among the records that
/// replica holds when the step runs.
#[derive(Debug, Clone)]
pub enum Op {
    AgregarAcuerdo {
        r: Ix,
        texto: String,
        dias: Option<u16>,
        sesion: Option<Ix>,
    },
    EditarTextoAcuerdo {
        r: Ix,
        k: Ix,
        splice: Splice,
    },
    EstadoAcuerdo {
        r: Ix,
        k: Ix,
        estado: Ix,
        revision: Option<Ix>,
    },
    AgregarObjetivo {
        r: Ix,
        texto: String,
        ambitos: Vec<Ix>,
    },
    AgregarMeta {
        r: Ix,
        objetivo: Ix,
        linea_base: Option<u8>,
        valor_meta: Option<u8>,
    },
    AgregarAccion {
        r: Ix,
        meta: Ix,
        responsables: Vec<Ix>,
    },
    EstadoAccion {
        r: Ix,
        a: Ix,
        estado: Ix,
    },
    RegistrarLogro {
        r: Ix,
        meta: Ix,
        nivel: Ix,
        dias: u16,
    },
    Diagnostico {
        r: Ix,
        ambito: Ix,
        splice: Option<Splice>,
        prioridad: Option<u64>,
    },
    Concentrado {
        r: Ix,
        grado: i64,
        grupo: Ix,
        corte: Ix,
        inscritos: Option<(bool, u64)>,
        conteos: Vec<(Ix, u8)>,
    },
    Archivar {
        r: Ix,
        tipo: Ix,
        k: Ix,
        archivado: bool,
    },
    AgregarSesion {
        r: Ix,
        fase: Ix,
        numero: u64,
        asistentes: Vec<Ix>,
    },
    EditarSesion {
        r: Ix,
        s: Ix,
        splice: Splice,
    },
    Resolver {
        r: Ix,
        c: Ix,
        opcion: usize,
    },
    Merge {
        a: Ix,
        b: Ix,
    },
}

pub fn texto() -> impl Strategy<Value = String> {
    // Spanish letters, a space, and a character outside the BMP to exercise text indexing.
    "[a-zñé👍 ]{0,8}"
}

pub fn splice() -> impl Strategy<Value = Splice> {
    (ix(), 0..4usize, texto()).prop_map(|(pos, borrar, insertar)| Splice {
        pos,
        borrar,
        insertar,
    })
}

pub fn op() -> impl Strategy<Value = Op> {
    let i = ix;
    let h = ix_sesgado;
    prop_oneof![
        2 => (i(), "[A-Za-zñ][a-zñé ]{0,12}", proptest::option::of(0..300u16), proptest::option::weighted(0.3, i()))
            .prop_map(|(r, texto, dias, sesion)| Op::AgregarAcuerdo { r, texto, dias, sesion }),
        5 => (i(), h(), splice()).prop_map(|(r, k, splice)| Op::EditarTextoAcuerdo { r, k, splice }),
        6 => (i(), h(), i(), proptest::option::weighted(0.3, i()))
            .prop_map(|(r, k, estado, revision)| Op::EstadoAcuerdo { r, k, estado, revision }),
        1 => (i(), "[A-Z][a-z ]{0,10}", proptest::collection::vec(i(), 1..3))
            .prop_map(|(r, texto, ambitos)| Op::AgregarObjetivo { r, texto, ambitos }),
        1 => (i(), i(), proptest::option::of(0..100u8), proptest::option::of(0..100u8))
            .prop_map(|(r, objetivo, linea_base, valor_meta)| Op::AgregarMeta { r, objetivo, linea_base, valor_meta }),
        1 => (i(), i(), proptest::collection::vec(i(), 0..3))
            .prop_map(|(r, meta, responsables)| Op::AgregarAccion { r, meta, responsables }),
        1 => (i(), h(), i()).prop_map(|(r, a, estado)| Op::EstadoAccion { r, a, estado }),
        1 => (i(), i(), i(), 0..300u16).prop_map(|(r, meta, nivel, dias)| Op::RegistrarLogro { r, meta, nivel, dias }),
        2 => (i(), h(), proptest::option::of(splice()), proptest::option::of(1..=8u64))
            .prop_map(|(r, ambito, splice, prioridad)| Op::Diagnostico { r, ambito, splice, prioridad }),
        2 => (
            i(),
            1..=3i64,
            i(),
            i(),
            proptest::option::weighted(0.6, (any::<bool>(), 0..=40u64)),
            proptest::collection::vec((i(), any::<u8>()), 0..4)
        )
            .prop_map(|(r, grado, grupo, corte, inscritos, conteos)| Op::Concentrado {
                r,
                grado,
                grupo,
                corte,
                inscritos,
                conteos
            }),
        2 => (i(), i(), h(), any::<bool>()).prop_map(|(r, tipo, k, archivado)| Op::Archivar { r, tipo, k, archivado }),
        1 => (i(), i(), 1..=8u64, proptest::collection::vec(i(), 0..3))
            .prop_map(|(r, fase, numero, asistentes)| Op::AgregarSesion { r, fase, numero, asistentes }),
        1 => (i(), h(), splice()).prop_map(|(r, s, splice)| Op::EditarSesion { r, s, splice }),
        4 => (i(), i(), 1..=3usize).prop_map(|(r, c, opcion)| Op::Resolver { r, c, opcion }),
        8 => (i(), i()).prop_map(|(a, b)| Op::Merge { a, b }),
    ]
}

pub fn pick<'a, T>(i: &Ix, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| i.get(items))
}

pub fn rid(s: &str) -> RecordId {
    RecordId::parse(s).expect("ids read from the document are valid")
}

pub fn fecha(dias: u16) -> Fecha {
    let base = Fecha::parse("2025-08-25").unwrap().naive();
    Fecha::from_naive(base + chrono::Days::new(u64::from(dias)))
}

/// `dst` merges everything `src` has.
pub fn merge(reps: &mut [AutoCommit], dst: usize, src: usize) {
    if dst == src {
        return;
    }
    let mut other = reps[src].clone();
    reps[dst].merge(&mut other).expect("merge");
}

pub fn sorted_heads(doc: &mut AutoCommit) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}

/// Ids created successfully during the scenario, which must all be in the final document.
#[derive(Default)]
pub struct Creados {
    pub acuerdos: BTreeSet<String>,
    pub objetivos: BTreeSet<String>,
    pub metas: BTreeSet<String>,
    pub acciones: BTreeSet<String>,
    pub seguimiento: BTreeSet<String>,
    pub sesiones: BTreeSet<String>,
}

/// Applies one step. Model errors caused by the input (an id another replica has not seen yet,
/// counts that no longer add up, an option out of range) are part of the scenario; any other
/// error fails the test.
pub fn aplicar(
    reps: &mut [AutoCommit],
    paso: usize,
    op: &Op,
    nuevo_id: &mut u64,
    creados: &mut Creados,
) -> Result<(), TestCaseError> {
    let n = reps.len();
    let r = match op {
        Op::Merge { a, b } => {
            merge(reps, a.index(n), b.index(n));
            return Ok(());
        }
        Op::AgregarAcuerdo { r, .. }
        | Op::EditarTextoAcuerdo { r, .. }
        | Op::EstadoAcuerdo { r, .. }
        | Op::AgregarObjetivo { r, .. }
        | Op::AgregarMeta { r, .. }
        | Op::AgregarAccion { r, .. }
        | Op::EstadoAccion { r, .. }
        | Op::RegistrarLogro { r, .. }
        | Op::Diagnostico { r, .. }
        | Op::Concentrado { r, .. }
        | Op::Archivar { r, .. }
        | Op::AgregarSesion { r, .. }
        | Op::EditarSesion { r, .. } => r.index(n),
        // Resolve on the first replica, from `r` on, that shows a conflict.
        Op::Resolver { r, .. } => {
            let r = r.index(n);
            (0..n)
                .map(|d| (r + d) % n)
                .find(|&i| !conflictos::listar(&reps[i]).is_empty())
                .unwrap_or(r)
        }
    };
    let ctx = Ctx {
        ahora: 1_756_000_000 + paso as i64 * 97,
        autor: Some(PERSONAS[r]),
    };
    let doc = &mut reps[r];
    let e = escuela::leer(doc).map_err(|e| TestCaseError::fail(format!("leer: {e}")))?;
    let mut fresco = || {
        *nuevo_id += 1;
        RecordId::parse(&format!("r{nuevo_id:04}")).unwrap()
    };
    let nombres = |idx: &[Ix]| {
        idx.iter()
            .map(|i| i.get(PERSONAS).to_string())
            .collect::<Vec<_>>()
    };

    let res: Result<(), ModelError> = match op {
        Op::Merge { .. } => unreachable!(),
        Op::AgregarAcuerdo {
            texto,
            dias,
            sesion,
            ..
        } => {
            let id = fresco();
            let a = NuevoAcuerdo {
                texto: texto.clone(),
                responsables: vec![PERSONAS[r].to_string()],
                fecha_compromiso: dias.map(fecha),
                sesion_origen: sesion
                    .as_ref()
                    .and_then(|s| pick(s, &e.sesiones))
                    .map(|s| rid(&s.id)),
            };
            escuela::agregar_acuerdo(doc, &ctx, &id, &a).inspect(|_| {
                creados.acuerdos.insert(id.to_string());
            })
        }
        Op::EditarTextoAcuerdo { k, splice, .. } => match pick(k, &e.acuerdos) {
            Some(a) => {
                escuela::editar_texto_acuerdo(doc, &ctx, &rid(&a.id), &splice.aplicar(&a.texto))
            }
            None => Ok(()),
        },
        Op::EstadoAcuerdo {
            k,
            estado,
            revision,
            ..
        } => match pick(k, &e.acuerdos) {
            Some(a) => {
                let rev = revision
                    .as_ref()
                    .and_then(|s| pick(s, &e.sesiones))
                    .map(|s| rid(&s.id));
                escuela::estado_acuerdo(
                    doc,
                    &ctx,
                    &rid(&a.id),
                    *estado.get(EstadoAcuerdo::TODOS),
                    rev.as_ref(),
                )
            }
            None => Ok(()),
        },
        Op::AgregarObjetivo { texto, ambitos, .. } => {
            let id = fresco();
            let o = NuevoObjetivo {
                texto: texto.clone(),
                para_que: "para que aprendan".into(),
                ambitos: ambitos.iter().map(|a| a.get(AMBITOS).to_string()).collect(),
            };
            escuela::agregar_objetivo(doc, &ctx, &id, &o).inspect(|_| {
                creados.objetivos.insert(id.to_string());
            })
        }
        Op::AgregarMeta {
            objetivo,
            linea_base,
            valor_meta,
            ..
        } => match pick(objetivo, &e.objetivos) {
            Some(o) => {
                let id = fresco();
                let m = NuevaMeta {
                    objetivo: rid(&o.id),
                    descripcion: format!("meta {id}"),
                    indicador: "% de alumnos".into(),
                    linea_base: linea_base.map(f64::from),
                    valor_meta: valor_meta.map(f64::from),
                    unidad: "%".into(),
                    fecha_limite: Some(fecha(280)),
                };
                escuela::agregar_meta(doc, &ctx, &id, &m).inspect(|_| {
                    creados.metas.insert(id.to_string());
                })
            }
            None => Ok(()),
        },
        Op::AgregarAccion {
            meta, responsables, ..
        } => match pick(meta, &e.metas) {
            Some(m) => {
                let id = fresco();
                let a = NuevaAccion {
                    meta: rid(&m.id),
                    descripcion: format!("acción {id}"),
                    responsables: nombres(responsables),
                    recursos: "libros".into(),
                    costo: Some(150.5),
                    inicio: Some(fecha(10)),
                    fin: Some(fecha(40)),
                };
                escuela::agregar_accion(doc, &ctx, &id, &a).inspect(|_| {
                    creados.acciones.insert(id.to_string());
                })
            }
            None => Ok(()),
        },
        Op::EstadoAccion { a, estado, .. } => match pick(a, &e.acciones) {
            Some(a) => {
                escuela::estado_accion(doc, &ctx, &rid(&a.id), *estado.get(EstadoAccion::TODOS))
            }
            None => Ok(()),
        },
        Op::RegistrarLogro {
            meta, nivel, dias, ..
        } => match pick(meta, &e.metas) {
            Some(m) => {
                let id = fresco();
                escuela::registrar_logro(
                    doc,
                    &ctx,
                    &id,
                    &rid(&m.id),
                    *nivel.get(NivelLogro::TODOS),
                    "evidencia",
                    fecha(*dias),
                )
                .inspect(|_| {
                    creados.seguimiento.insert(id.to_string());
                })
            }
            None => Ok(()),
        },
        Op::Diagnostico {
            ambito,
            splice,
            prioridad,
            ..
        } => {
            let ambito = *ambito.get(AMBITOS);
            let actual = e
                .diagnostico
                .iter()
                .find(|d| d.ambito == ambito)
                .map(|d| d.texto.clone())
                .unwrap_or_default();
            let nuevo = splice.as_ref().map(|s| s.aplicar(&actual));
            escuela::diagnostico(doc, &ctx, ambito, nuevo.as_deref(), *prioridad)
        }
        Op::Concentrado {
            grado,
            grupo,
            corte,
            inscritos,
            conteos,
            ..
        } => {
            // Counts consistent with the enrolment this step uses (the one it writes, else the
            // one the replica holds): each outcome category at most a sixth of it, each other
            // count at most all of it. They can still be refused when merged data disagrees.
            let grupo = *grupo.get(&["A", "B"]);
            let corte = *corte.get(Corte::TODOS);
            let registrado = e
                .concentrado
                .iter()
                .find(|c| c.grado == *grado as u64 && c.grupo == grupo && c.corte == corte.as_str())
                .and_then(|c| c.total_alumnos())
                .unwrap_or(0);
            let total = inscritos.map(|(_, n)| n).unwrap_or(registrado);
            let mut valores: Vec<(&str, i64)> = Vec::new();
            if let Some((fin, n)) = inscritos {
                valores.push((
                    if *fin {
                        "inscritos_fin"
                    } else {
                        "inscritos_inicio"
                    },
                    *n as i64,
                ));
            }
            for (campo, frac) in conteos {
                let campo = campo.get(&CAMPOS_CONCENTRADO[2..]).0;
                let tope = if campo.starts_with("promedio") || campo.contains("promovidos") {
                    total / 6
                } else {
                    total
                };
                let v = (tope * u64::from(*frac) / 255) as i64;
                if !valores.iter().any(|(k, _)| *k == campo) {
                    valores.push((campo, v));
                }
            }
            escuela::concentrado_set(doc, &ctx, *grado, grupo, corte, &valores).map(|_| ())
        }
        Op::Archivar {
            tipo, k, archivado, ..
        } => {
            let tipo = *tipo.get(&[
                "objetivo",
                "meta",
                "accion",
                "seguimiento",
                "sesion",
                "acuerdo",
            ]);
            let ids: Vec<&str> = match tipo {
                "objetivo" => e.objetivos.iter().map(|x| x.id.as_str()).collect(),
                "meta" => e.metas.iter().map(|x| x.id.as_str()).collect(),
                "accion" => e.acciones.iter().map(|x| x.id.as_str()).collect(),
                "seguimiento" => e.seguimiento.iter().map(|x| x.id.as_str()).collect(),
                "sesion" => e.sesiones.iter().map(|x| x.id.as_str()).collect(),
                _ => e.acuerdos.iter().map(|x| x.id.as_str()).collect(),
            };
            match pick(k, &ids) {
                Some(id) => escuela::archivar_registro(doc, &ctx, tipo, &rid(id), *archivado),
                None => Ok(()),
            }
        }
        Op::AgregarSesion {
            fase,
            numero,
            asistentes,
            ..
        } => {
            let id = fresco();
            let fase = *fase.get(Fase::TODOS);
            let numero = if fase == Fase::Intensiva {
                (numero - 1) % 5 + 1
            } else {
                *numero
            };
            let s = NuevaSesion {
                fase,
                numero,
                fecha: fecha(numero as u16 * 30),
                asistentes: nombres(asistentes),
                proposito: "revisar avances".into(),
                productos: String::new(),
                practicas: String::new(),
            };
            escuela::agregar_sesion(doc, &ctx, &id, &s).inspect(|_| {
                creados.sesiones.insert(id.to_string());
            })
        }
        Op::EditarSesion { s, splice, .. } => match pick(s, &e.sesiones) {
            Some(s) => escuela::editar_sesion(
                doc,
                &ctx,
                &rid(&s.id),
                Some(&splice.aplicar(&s.productos)),
                None,
            ),
            None => Ok(()),
        },
        Op::Resolver { c, opcion, .. } => {
            let lista = conflictos::listar(doc);
            match pick(c, &lista) {
                Some(conf) => conflictos::resolver(doc, &ctx, &conf.ruta, *opcion),
                None => Ok(()),
            }
        }
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.is_bad_input() => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!(
            "{op:?} on replica {r}: unexpected error {e:?}"
        ))),
    }
}

/// A whole case: the replicas' actors, whether they plan together first, the steps, and the
/// order of the final merges.
#[derive(Debug, Clone)]
pub struct Escenario {
    pub actores: Vec<[u8; 16]>,
    pub preludio: bool,
    pub ops: Vec<Op>,
    /// Chain of merges that gathers everything in the last replica of `orden`...
    pub orden: Vec<usize>,
    /// ...and the order in which the others then merge it.
    pub vuelta: Vec<usize>,
}

pub fn escenario() -> impl Strategy<Value = Escenario> {
    (2..=4usize).prop_flat_map(|n| {
        (
            proptest::collection::vec(proptest::array::uniform16(any::<u8>()), n),
            proptest::bool::weighted(0.8),
            proptest::collection::vec(op(), 8..64),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
            .prop_map(|(actores, preludio, ops, orden, vuelta)| Escenario {
                actores,
                preludio,
                ops,
                orden,
                vuelta,
            })
    })
}

/// The replicas of a scenario: each initialises the school's document offline and writes as
/// its own device (distinct actors).
pub fn replicas(actores: &[[u8; 16]]) -> Vec<AutoCommit> {
    let cct = Cct::parse("07DPR0123X").unwrap();
    let ciclo = CicloEscolar::parse("2025-2026").unwrap();
    actores
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let mut doc = escuela::genesis_escuela(&cct, ciclo).unwrap();
            let mut bytes = *bytes;
            bytes[0] = i as u8; // distinct actors
            doc.set_actor(ActorId::from(bytes));
            doc
        })
        .collect()
}

/// Runs a scenario's steps (and its prelude, if any) on fresh replicas; the final merges are
/// the caller's. Returns the replicas and the records created.
pub fn ejecutar(esc: &Escenario) -> Result<(Vec<AutoCommit>, Creados), TestCaseError> {
    let mut reps = replicas(&esc.actores);
    let mut nuevo_id = 0;
    let mut creados = Creados::default();
    if esc.preludio {
        // Usually the staff plans together first (one of each record, on replica 0, seen by
        // everyone), so that later offline edits target the same records.
        let preludio = [
            Op::AgregarSesion {
                r: Ix(0),
                fase: Ix(0),
                numero: 1,
                asistentes: vec![],
            },
            Op::AgregarAcuerdo {
                r: Ix(0),
                texto: "Leer veinte minutos diarios".into(),
                dias: Some(60),
                sesion: Some(Ix(0)),
            },
            Op::AgregarObjetivo {
                r: Ix(0),
                texto: "Mejorar la lectura".into(),
                ambitos: vec![Ix(0)],
            },
            Op::AgregarMeta {
                r: Ix(0),
                objetivo: Ix(0),
                linea_base: Some(40),
                valor_meta: Some(70),
            },
            Op::AgregarAccion {
                r: Ix(0),
                meta: Ix(0),
                responsables: vec![Ix(0)],
            },
        ];
        for op in &preludio {
            aplicar(&mut reps, 0, op, &mut nuevo_id, &mut creados)?;
        }
        for i in 1..reps.len() {
            merge(&mut reps, i, 0);
        }
    }
    for (paso, op) in esc.ops.iter().enumerate() {
        aplicar(&mut reps, paso, op, &mut nuevo_id, &mut creados)?;
    }
    Ok((reps, creados))
}
