//! A school's year of work, for benchmarks and the load generator: deterministic sequences of
//! the document model's real operations (acuerdos written and rewritten, sessions and their
//! products, the PEMC with its seguimiento, the concentrado), each one change, with Spanish
//! text of realistic length.
//!
//! [`escuela_tras_ciclo`] builds the document of a school after a full cycle (5,000 operations
//! give about 200 KB of text); an [`Escritor`] continues any school document with more
//! operations, as a teacher's laptop does offline. Everything is drawn from a seeded generator
//! (no `rand`, no clock), so the same seed gives byte-identical changes on every run and every
//! machine: the workload sent to two servers is the same.

use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, Value};
use bitacora_core::ModelError;
use bitacora_core::automerge;
use bitacora_core::ids::{Cct, CicloEscolar, Fecha, RecordId};
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{
    self, Corte, EstadoAccion, EstadoAcuerdo, Fase, NivelLogro, NuevaAccion, NuevaMeta,
    NuevaSesion, NuevoAcuerdo, NuevoObjetivo,
};

use crate::AMBITOS;

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Azar(u64);

impl Azar {
    pub fn new(semilla: u64) -> Azar {
        Azar(semilla ^ 0x5EED_B17A_C0A5_0001)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn entre(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn elegir<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    /// Mostly one of the most recent items (people keep working on what they just wrote).
    fn reciente<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        if self.below(4) == 0 {
            self.elegir(v)
        } else {
            let k = v.len().min(8);
            &v[v.len() - 1 - self.below(k)]
        }
    }
}

/// Who writes, in the documents the scenarios build.
pub const DOCENTES: &[&str] = &[
    "Mtra. Guadalupe Hernández",
    "Mtro. José María López",
    "Mtra. Ñusta Pérez",
    "Director Iván Gómez",
    "Mtra. Rosa Elena Díaz",
    "Mtro. Chema Ruiz",
];

const PALABRAS: &[&str] = &[
    "alumnos",
    "lectura",
    "escritura",
    "matemáticas",
    "comunidad",
    "padres",
    "familia",
    "asistencia",
    "evaluación",
    "diagnóstico",
    "estrategia",
    "actividad",
    "semana",
    "grupo",
    "aprendizaje",
    "comprensión",
    "lectora",
    "cálculo",
    "mental",
    "fracciones",
    "biblioteca",
    "escolar",
    "receso",
    "convivencia",
    "acuerdo",
    "seguimiento",
    "registro",
    "cuaderno",
    "proyecto",
    "consejo",
    "técnico",
    "zona",
    "supervisión",
    "material",
    "didáctico",
    "rúbrica",
    "portafolio",
    "evidencias",
    "tutoría",
    "rezago",
    "inclusión",
    "huerto",
    "salud",
    "higiene",
    "agua",
    "limpieza",
    "mantenimiento",
    "aula",
    "patio",
    "cooperativa",
    "el",
    "la",
    "los",
    "las",
    "de",
    "del",
    "con",
    "para",
    "en",
    "por",
    "cada",
    "todos",
    "se",
    "y",
    "que",
    "una",
    "un",
    "realizar",
    "revisar",
    "organizar",
    "entregar",
    "presentar",
    "acompañar",
    "reforzar",
    "registrar",
    "compartir",
    "planear",
    "mejorar",
    "viernes",
    "lunes",
    "mes",
    "bimestre",
    "docentes",
    "directivo",
    "maestra",
    "maestro",
    "niñas",
    "niños",
];

/// A Spanish-looking sentence of about `largo` bytes, ending in a period and a space.
pub fn frase(az: &mut Azar, largo: usize) -> String {
    let mut s = String::with_capacity(largo + 16);
    while s.len() < largo {
        let p = az.elegir(PALABRAS);
        if s.is_empty() {
            let mut c = p.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(p);
        }
    }
    s.push_str(". ");
    s
}

fn insertar_en_frontera(az: &mut Azar, texto: &str, nuevo: &str) -> String {
    // At the end, or after a space (a word boundary), like a person typing.
    let fronteras: Vec<usize> = texto
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .map(|(i, _)| i + 1)
        .collect();
    let at = if fronteras.is_empty() || az.below(3) == 0 {
        texto.len()
    } else {
        *az.elegir(&fronteras)
    };
    format!("{}{}{}", &texto[..at], nuevo, &texto[at..])
}

/// Replaces one word of `texto` by another, or deletes one.
fn corregir(az: &mut Azar, texto: &str) -> String {
    let palabras: Vec<&str> = texto.split(' ').collect();
    if palabras.len() < 4 {
        return format!("{texto}{}", frase(az, 10));
    }
    let k = az.below(palabras.len() - 1);
    let mut out: Vec<&str> = palabras.clone();
    if az.below(2) == 0 {
        out[k] = *az.elegir(PALABRAS);
    } else {
        out.remove(k);
    }
    out.join(" ")
}

fn texto_de(doc: &AutoCommit, coleccion: &[&str], id: &RecordId, campo: &str) -> String {
    let mut obj = ROOT;
    for seg in coleccion.iter().copied().chain([id.as_str()]) {
        obj = match doc.get(&obj, seg) {
            Ok(Some((Value::Object(ObjType::Map), o))) => o,
            _ => return String::new(),
        };
    }
    match doc.get(&obj, campo) {
        Ok(Some((Value::Object(ObjType::Text), t))) => doc.text(&t).unwrap_or_default(),
        _ => String::new(),
    }
}

fn ids_de(doc: &AutoCommit, coleccion: &[&str]) -> Vec<RecordId> {
    let mut obj = ROOT;
    for seg in coleccion {
        obj = match doc.get(&obj, *seg) {
            Ok(Some((Value::Object(ObjType::Map), o))) => o,
            _ => return Vec::new(),
        };
    }
    let mut ids: Vec<RecordId> = doc
        .keys(&obj)
        .filter_map(|k| RecordId::parse(&k).ok())
        .collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids
}

/// The start of the cycle the documents are dated in (a Monday, 2025-08-25, 08:00 UTC-6).
pub const INICIO_CICLO: i64 = 1_756_130_400;

/// One person writing into a school document: remembers the records it knows so that each step
/// is one model operation and one change, without reading the whole document.
#[derive(Debug, Clone)]
pub struct Escritor {
    az: Azar,
    autor: String,
    /// Seconds since the epoch of the next operation; advances with each step.
    pub ahora: i64,
    acuerdos: Vec<RecordId>,
    sesiones: Vec<RecordId>,
    objetivos: Vec<RecordId>,
    metas: Vec<RecordId>,
    acciones: Vec<RecordId>,
    /// Sessions already held per fase, to number new ones.
    intensivas: u64,
    ordinarias: u64,
    extraordinarias: u64,
}

impl Escritor {
    /// A writer that knows the records already in `doc` (read once).
    pub fn nuevo(doc: &AutoCommit, semilla: u64, autor: &str) -> Escritor {
        let sesiones = ids_de(doc, &["sesiones"]);
        let n = sesiones.len() as u64;
        Escritor {
            az: Azar::new(semilla),
            autor: autor.to_string(),
            ahora: INICIO_CICLO,
            acuerdos: ids_de(doc, &["acuerdos"]),
            objetivos: ids_de(doc, &["pemc", "objetivos"]),
            metas: ids_de(doc, &["pemc", "metas"]),
            acciones: ids_de(doc, &["pemc", "acciones"]),
            // Enough to keep numbering plausible; numbers may repeat across devices, as in
            // life.
            intensivas: n.min(5),
            ordinarias: n.saturating_sub(5).min(8),
            extraordinarias: n.saturating_sub(13),
            sesiones,
        }
    }

    fn nuevo_id(&mut self) -> RecordId {
        RecordId::from_random(self.az.next_u64())
    }

    fn fecha(&self) -> Fecha {
        let dias = (self.ahora - INICIO_CICLO).max(0) / 86_400;
        crate::fecha(dias.min(u16::MAX as i64) as u16)
    }

    /// Applies `n` operations.
    pub fn pasos(&mut self, doc: &mut AutoCommit, n: usize) -> Result<(), ModelError> {
        for _ in 0..n {
            self.paso(doc)?;
        }
        Ok(())
    }

    /// One model operation (one change). An operation the model refuses as bad input (counts
    /// that would no longer add up) is replaced by another; any other error is returned.
    pub fn paso(&mut self, doc: &mut AutoCommit) -> Result<(), ModelError> {
        // About 95 minutes of school time between two operations: 5,000 fill a cycle.
        self.ahora += 5_400 + self.az.below(1_200) as i64;
        loop {
            match self.intento(doc) {
                Ok(true) => return Ok(()),
                Ok(false) => continue,
                Err(e) if e.is_bad_input() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Ok(false): nothing applicable (e.g. no acuerdo to edit yet); draw again.
    fn intento(&mut self, doc: &mut AutoCommit) -> Result<bool, ModelError> {
        let autor = self.autor.clone();
        let ctx = Ctx {
            ahora: self.ahora,
            autor: Some(&autor),
        };
        let tirada = self.az.below(100);
        match tirada {
            0..=6 => {
                let id = self.nuevo_id();
                let n = self.az.entre(1, 2);
                let a = NuevoAcuerdo {
                    texto: {
                        let l = 60 + self.az.below(120);
                        frase(&mut self.az, l)
                    },
                    responsables: (0..n)
                        .map(|_| self.az.elegir(DOCENTES).to_string())
                        .collect(),
                    fecha_compromiso: Some(crate::fecha(
                        ((self.ahora - INICIO_CICLO) / 86_400 + 30).clamp(0, 330) as u16,
                    )),
                    sesion_origen: (!self.sesiones.is_empty() && self.az.below(2) == 0)
                        .then(|| self.az.reciente(&self.sesiones).clone()),
                };
                escuela::agregar_acuerdo(doc, &ctx, &id, &a)?;
                self.acuerdos.push(id);
            }
            7..=36 => {
                if self.acuerdos.is_empty() {
                    return Ok(false);
                }
                let id = self.az.reciente(&self.acuerdos).clone();
                let actual = texto_de(doc, &["acuerdos"], &id, "texto");
                let nuevo = if self.az.below(4) == 0 {
                    corregir(&mut self.az, &actual)
                } else {
                    let f = {
                        let l = 8 + self.az.below(22);
                        frase(&mut self.az, l)
                    };
                    insertar_en_frontera(&mut self.az, &actual, &f)
                };
                if nuevo.trim().is_empty() {
                    return Ok(false);
                }
                escuela::editar_texto_acuerdo(doc, &ctx, &id, &nuevo)?;
            }
            37..=44 => {
                if self.acuerdos.is_empty() {
                    return Ok(false);
                }
                let id = self.az.elegir(&self.acuerdos).clone();
                let estado = *self.az.elegir(EstadoAcuerdo::TODOS);
                let rev = (!self.sesiones.is_empty() && self.az.below(3) == 0)
                    .then(|| self.az.reciente(&self.sesiones).clone());
                escuela::estado_acuerdo(doc, &ctx, &id, estado, rev.as_ref())?;
            }
            45..=58 => {
                if self.sesiones.is_empty() {
                    return Ok(false);
                }
                let id = self.az.reciente(&self.sesiones).clone();
                let campo = if self.az.below(3) == 0 {
                    "practicas"
                } else {
                    "productos"
                };
                let actual = texto_de(doc, &["sesiones"], &id, campo);
                let f = {
                    let l = 15 + self.az.below(35);
                    frase(&mut self.az, l)
                };
                let nuevo = insertar_en_frontera(&mut self.az, &actual, &f);
                let (p, q) = if campo == "productos" {
                    (Some(nuevo.as_str()), None)
                } else {
                    (None, Some(nuevo.as_str()))
                };
                escuela::editar_sesion(doc, &ctx, &id, p, q)?;
            }
            59..=61 => {
                let (fase, numero) = if self.intensivas < 5 {
                    self.intensivas += 1;
                    (Fase::Intensiva, self.intensivas)
                } else if self.ordinarias < 8 {
                    self.ordinarias += 1;
                    (Fase::Ordinaria, self.ordinarias)
                } else if self.extraordinarias < 20 {
                    self.extraordinarias += 1;
                    (Fase::Extraordinaria, self.extraordinarias)
                } else {
                    return Ok(false);
                };
                let id = self.nuevo_id();
                let s = NuevaSesion {
                    fase,
                    numero,
                    fecha: self.fecha(),
                    asistentes: DOCENTES.iter().map(|d| d.to_string()).collect(),
                    proposito: frase(&mut self.az, 80),
                    productos: frase(&mut self.az, 120),
                    practicas: frase(&mut self.az, 60),
                };
                escuela::agregar_sesion(doc, &ctx, &id, &s)?;
                self.sesiones.push(id);
            }
            62..=67 => {
                let ambito = *self.az.elegir(AMBITOS);
                let id = RecordId::parse(ambito).expect("ámbito keys are valid ids");
                let actual = texto_de(doc, &["pemc", "diagnostico"], &id, "texto");
                let f = {
                    let l = 20 + self.az.below(40);
                    frase(&mut self.az, l)
                };
                let nuevo = insertar_en_frontera(&mut self.az, &actual, &f);
                let prioridad = (self.az.below(5) == 0).then(|| self.az.entre(1, 8) as u64);
                escuela::diagnostico(doc, &ctx, ambito, Some(&nuevo), prioridad)?;
            }
            68..=69 => {
                let id = self.nuevo_id();
                let n = self.az.entre(1, 2);
                let o = NuevoObjetivo {
                    texto: frase(&mut self.az, 60),
                    para_que: frase(&mut self.az, 50),
                    ambitos: (0..n)
                        .map(|_| self.az.elegir(AMBITOS).to_string())
                        .collect(),
                };
                escuela::agregar_objetivo(doc, &ctx, &id, &o)?;
                self.objetivos.push(id);
            }
            70..=72 => {
                if self.objetivos.is_empty() {
                    return Ok(false);
                }
                let id = self.nuevo_id();
                let m = NuevaMeta {
                    objetivo: self.az.reciente(&self.objetivos).clone(),
                    descripcion: frase(&mut self.az, 60),
                    indicador: "porcentaje de alumnos".into(),
                    linea_base: Some(self.az.below(60) as f64),
                    valor_meta: Some(60.0 + self.az.below(40) as f64),
                    unidad: "%".into(),
                    fecha_limite: Some(crate::fecha(300)),
                };
                escuela::agregar_meta(doc, &ctx, &id, &m)?;
                self.metas.push(id);
            }
            73..=76 => {
                if self.metas.is_empty() {
                    return Ok(false);
                }
                let id = self.nuevo_id();
                let a = NuevaAccion {
                    meta: self.az.reciente(&self.metas).clone(),
                    descripcion: frase(&mut self.az, 60),
                    responsables: vec![self.az.elegir(DOCENTES).to_string()],
                    recursos: frase(&mut self.az, 30),
                    costo: (self.az.below(2) == 0).then(|| self.az.below(2_000) as f64),
                    inicio: Some(self.fecha()),
                    fin: None,
                };
                escuela::agregar_accion(doc, &ctx, &id, &a)?;
                self.acciones.push(id);
            }
            77..=80 => {
                if self.acciones.is_empty() {
                    return Ok(false);
                }
                let id = self.az.elegir(&self.acciones).clone();
                let estado = *self.az.elegir(EstadoAccion::TODOS);
                escuela::estado_accion(doc, &ctx, &id, estado)?;
            }
            81..=86 => {
                if self.metas.is_empty() {
                    return Ok(false);
                }
                let id = self.nuevo_id();
                let meta = self.az.elegir(&self.metas).clone();
                let nivel = *self.az.elegir(NivelLogro::TODOS);
                let evidencia = {
                    let l = 40 + self.az.below(60);
                    frase(&mut self.az, l)
                };
                escuela::registrar_logro(doc, &ctx, &id, &meta, nivel, &evidencia, self.fecha())?;
            }
            87..=95 => {
                let grado = self.az.entre(1, 6) as i64;
                let grupo = ["A", "B"][self.az.below(2)];
                let corte = *self.az.elegir(Corte::TODOS);
                let total = self.az.entre(20, 35) as i64;
                let campos = [
                    "apoyo_lectura",
                    "apoyo_escritura",
                    "apoyo_matematicas",
                    "faltan_constantemente",
                    "no_se_involucran",
                    "dificultad_relacionarse",
                ];
                let mut valores = vec![("inscritos_inicio", total)];
                for _ in 0..self.az.entre(1, 3) {
                    valores.push((*self.az.elegir(&campos), self.az.below(8) as i64));
                }
                escuela::concentrado_set(doc, &ctx, grado, grupo, corte, &valores)?;
            }
            _ => {
                if self.acuerdos.len() < 10 {
                    return Ok(false);
                }
                let id = self.az.elegir(&self.acuerdos).clone();
                let archivar = self.az.below(4) != 0;
                escuela::archivar_registro(doc, &ctx, "acuerdo", &id, archivar)?;
            }
        }
        Ok(true)
    }
}

/// The document of school `cct` after `pasos` operations by one device (`actor`), starting
/// from the deterministic genesis, as one laptop holds it after a cycle offline. 5,000 steps
/// make a full cycle: about 200 KB of text.
pub fn escuela_tras_ciclo(
    cct: &Cct,
    ciclo: CicloEscolar,
    actor: ActorId,
    pasos: usize,
    semilla: u64,
) -> Result<AutoCommit, ModelError> {
    let mut doc = escuela::genesis_escuela(cct, ciclo)?.with_actor(actor);
    let mut e = Escritor::nuevo(&doc, semilla, DOCENTES[(semilla % 6) as usize]);
    e.pasos(&mut doc, pasos)?;
    Ok(doc)
}

/// Bytes of text people wrote in a school document (every text field, as read).
pub fn bytes_de_texto(doc: &AutoCommit) -> Result<usize, ModelError> {
    let e = escuela::leer(doc)?;
    let mut n = 0;
    n += e.diagnostico.iter().map(|d| d.texto.len()).sum::<usize>();
    n += e
        .objetivos
        .iter()
        .map(|o| o.texto.len() + o.para_que.len())
        .sum::<usize>();
    n += e.metas.iter().map(|m| m.descripcion.len()).sum::<usize>();
    n += e
        .acciones
        .iter()
        .map(|a| a.descripcion.len() + a.recursos.len())
        .sum::<usize>();
    n += e
        .seguimiento
        .iter()
        .map(|s| s.evidencia.len())
        .sum::<usize>();
    n += e
        .sesiones
        .iter()
        .map(|s| s.proposito.len() + s.productos.len() + s.practicas.len())
        .sum::<usize>();
    n += e.acuerdos.iter().map(|a| a.texto.len()).sum::<usize>();
    Ok(n)
}
