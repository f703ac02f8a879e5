//! `bitacora-server demo`: a believable zone on this machine, for a first look at Bitácora.
//!
//! One zona escolar of 24 schools in Los Altos de Chiapas (preescolar, primaria, telesecundaria,
//! secundaria) with its supervisor, its ATP, each school's director and one to three teachers,
//! and the school cycle's work up to today: PEMCs complete, half done or barely started,
//! sesiones de CTE (some missing), acuerdos in every state (some overdue), metas with their nivel
//! de logro, the concentrado por grupo, two schools with an unresolved conflict, and prácticas in
//! the zone document.
//!
//! Nothing is written into the database behind the server's back. The registry goes through
//! [`admin`] (as `bitacora-server admin …` does); every teacher and director is a device with its
//! own client store ([`Store`], in a temporary directory) that edits its school's document with
//! the model operations the CLI uses, enrols its actor and syncs with the real server, started
//! in-process, through [`engine::sync_once`], exactly like `bitacora sync`. A school works in up to
//! three rounds (after the first ordinary session, halfway, and at its last contact); in each
//! round the director writes and syncs first, then each teacher. Schools that have not synced
//! for weeks did their last round with the server's clock ([`Reloj`]) set to that day.
//!
//! Reproducible: the plan of the zone (profiles, people, counts, texts, record ids) comes from
//! one seed (`--semilla`), and dates are relative to today, or to the reference date `--hoy`
//! (then the server's clock stays on that day while it serves, so the dashboard agrees with the
//! data; tests use it not to depend on the calendar). Actor ids, tokens and change hashes differ
//! between runs. A data directory that already holds the demo is served again as is.
//!
//! The sessions follow the dashboard's reference calendar ([`proyeccion::Calendario`]): the
//! fase intensiva in the week that ends on the last Friday of August, ordinary sessions on the
//! last Friday of September to June (none in December, April, July).

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bitacora_core::ModelError;
use bitacora_core::automerge::{AutoCommit, ChangeHash};
use bitacora_core::bundle::genesis_de;
use bitacora_core::engine;
use bitacora_core::ids::{Cct, CicloEscolar, Fecha, Nivel, RecordId};
use bitacora_core::model::escuela::{
    self, Corte, EstadoAccion, EstadoAcuerdo, Fase, NivelLogro, NuevaAccion, NuevaMeta,
    NuevaSesion, NuevoAcuerdo, NuevoObjetivo,
};
use bitacora_core::model::{Ctx, zona};
use bitacora_core::proyeccion;
use bitacora_core::store::{DocInfo, Store};
use chrono::{Datelike, Days, NaiveDate, TimeZone};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminError};
use crate::auth::Keys;
use crate::config::Config;
use crate::db::Database;
use crate::{Reloj, open_database, run_with_clock};

/// Where the demo keeps its data when `--data-dir` is not given.
pub const DATA_DIR: &str = "bitacora-demo";
/// The default listen address of the demo.
pub const LISTEN: &str = "127.0.0.1:8787";
/// The seed when `--semilla` is not given.
pub const SEMILLA: u64 = 2019;
/// The demo zone's key and name.
pub const ZONA: &str = "07FIZ0052W";
pub const NOMBRE_ZONA: &str = "Zona Escolar 052, Los Altos de Chiapas";
/// Database meta key written once the demo is complete: `<zona> <ciclo> <semilla>`.
const MARCA: &str = "demo.generada";
/// Database meta key with the reference date the demo was generated for, when `--hoy` was given.
const MARCA_HOY: &str = "demo.hoy";
const USUARIO_SUPERVISION: &str = "supervision.052";
const USUARIO_ATP: &str = "atp.052";
const LIMITE: Duration = Duration::from_secs(60);

/// Parses `--semilla`: a non-negative integer. Bad input, exit code 2.
pub fn semilla(s: Option<&str>) -> Result<u64, AdminError> {
    match s {
        None => Ok(SEMILLA),
        Some(t) => t.trim().parse().map_err(|_| {
            AdminError::Invalid(format!(
                "semilla inválida «{t}»: se espera un número entero de 0 a {}, p. ej. --semilla 7",
                u64::MAX
            ))
        }),
    }
}

/// Parses `--hoy`, the demo's reference date. Bad input, exit code 2.
pub fn hoy(s: Option<&str>) -> Result<Option<NaiveDate>, AdminError> {
    s.map(|t| {
        Fecha::parse(t)
            .map(Fecha::naive)
            .map_err(|e| AdminError::Invalid(format!("--hoy: {e}")))
    })
    .transpose()
}

/// Serves the demo: generates it first when the data directory does not hold it yet, prints
/// the dashboard address and the sign-in tokens on stdout, then serves until `shutdown`.
/// `hoy` is the reference date (`None`: today, or the one the data directory was generated
/// for). `config.database_url` must be unset (the demo lives in SQLite in `config.data_dir`).
pub async fn run(
    config: Config,
    semilla: u64,
    hoy: Option<NaiveDate>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let db = open_database(&config).await?;
    let hoy = match hoy {
        Some(h) => Some(h),
        None => db
            .get_meta(MARCA_HOY)
            .await?
            .and_then(|h| Fecha::parse(&h).ok())
            .map(Fecha::naive),
    };
    let real = chrono::Local::now().date_naive();
    let reloj = Reloj::default();
    // Seconds between the real clock and the demo's: whole days, so the time of day is real.
    let desplazamiento = hoy.map_or(0, |h| (h - real).num_days() * 86_400);
    let hoy = hoy.unwrap_or(real);
    let mut ciclo = CicloEscolar::que_contiene(Fecha::from_naive(hoy));
    let base = Base {
        reloj: reloj.clone(),
        desplazamiento,
    };
    let generar = match db.get_meta(MARCA).await? {
        Some(marca) => {
            eprintln!(
                "demo: {} ya tiene la demo ({marca}); no se genera de nuevo.",
                config.data_dir.display()
            );
            let generado = marca.split_whitespace().nth(1).map(CicloEscolar::parse);
            if let Some(Ok(c)) = generado
                && c != ciclo
            {
                eprintln!(
                    "demo: aviso: la demo es del ciclo {c} y hoy corre el ciclo {ciclo}; el tablero muestra por omisión el ciclo en curso. Bórrela para generar la del ciclo {ciclo}, o use --hoy."
                );
                ciclo = c;
            }
            false
        }
        None if db.zona_existe(ZONA).await? => bail!(
            "{} tiene una demo a medio generar (¿se interrumpió?); bórrelo y vuelva a ejecutar `bitacora-server demo`",
            config.data_dir.display()
        ),
        None if !db.documents().await?.is_empty() => {
            return Err(AdminError::Invalid(format!(
                "{} ya tiene datos que no son de la demo; use otro --data-dir",
                config.data_dir.display()
            ))
            .into());
        }
        None => true,
    };
    let keys = Keys::from_config(&config.jwt, &config.data_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("no se pudo escuchar en {}", config.listen))?;
    let addr = direccion_local(listener.local_addr()?);
    let url = format!("http://{addr}");

    base.volver();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let senal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = senal.send(true);
    });
    let mut stop_srv = stop_rx.clone();
    let server = tokio::spawn(run_with_clock(
        listener,
        config.clone(),
        db.clone(),
        reloj.clone(),
        async move {
            let _ = stop_srv.wait_for(|s| *s).await;
        },
    ));

    if generar {
        let inicio = Instant::now();
        let mut interrupcion = stop_rx.clone();
        let r = tokio::select! {
            r = generar_zona(&db, &keys, &url, &base, hoy, semilla) => r,
            _ = interrupcion.wait_for(|s| *s) => Err(anyhow::anyhow!(
                "generación interrumpida; borre {} antes de volver a ejecutar la demo",
                config.data_dir.display()
            )),
        };
        base.volver();
        if let Err(e) = r {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Err(e);
        }
        if desplazamiento != 0 {
            db.set_meta(MARCA_HOY, &hoy.to_string()).await?;
        }
        eprintln!(
            "demo: zona generada en {:.1} s.",
            inicio.elapsed().as_secs_f64()
        );
    }
    if desplazamiento != 0 {
        eprintln!("demo: el reloj del servidor marca {hoy} (fecha de referencia de la demo).");
    }

    let (t_sup, _) = admin::token_emitir(&db, &keys, USUARIO_SUPERVISION, 30).await?;
    let (t_atp, _) = admin::token_emitir(&db, &keys, USUARIO_ATP, 30).await?;
    let sup = db.usuario(USUARIO_SUPERVISION).await?.map(|u| u.nombre);
    let atp = db.usuario(USUARIO_ATP).await?.map(|u| u.nombre);
    let (sup, atp) = (sup.unwrap_or_default(), atp.unwrap_or_default());
    let escuelas = db.escuelas_de_zona(ZONA).await?.len();
    println!("Demo de Bitácora: {NOMBRE_ZONA} ({ZONA}), ciclo {ciclo}, {escuelas} escuelas.");
    println!(
        "Datos en {} (bórrelo para generar la demo de nuevo).",
        config.data_dir.display()
    );
    println!();
    println!("Supervisión ({sup}): entre en {url}/entrar con este token (vale 30 días):");
    println!("token de supervisión: {t_sup}");
    println!("ATP ({atp}), solo lectura:");
    println!("token de ATP: {t_atp}");
    println!();
    println!("Tablero de la zona: {url}/zonas/{ZONA}");
    println!("Servidor en {url}; Ctrl-C para detenerlo.");
    server.await.context("la tarea del servidor falló")?
}

/// The demo's "now": the real clock shifted by whole days to the reference date.
struct Base {
    reloj: Reloj,
    desplazamiento: i64,
}

impl Base {
    fn ahora(&self) -> i64 {
        crate::db::now() + self.desplazamiento
    }

    /// Sets the server's clock to the demo's now.
    fn volver(&self) {
        if self.desplazamiento == 0 {
            self.reloj.real();
        } else {
            self.reloj.fijar(self.ahora());
        }
    }
}

/// The address to print and to dial: an unspecified bind address (`0.0.0.0`) is reached on the
/// loopback interface.
fn direccion_local(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        let ip = if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, a.port())
    } else {
        a
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness: SplitMix64, so a seed means the same zone whatever the `rand` version.

struct Azar(u64);

impl Azar {
    fn sig(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `a..=b`.
    fn rango(&mut self, a: u64, b: u64) -> u64 {
        a + self.sig() % (b - a + 1)
    }

    fn real(&mut self) -> f64 {
        (self.sig() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn prob(&mut self, p: f64) -> bool {
        self.real() < p
    }

    fn entre(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.real()
    }

    fn elegir<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.sig() as usize % v.len()]
    }

    fn barajar<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.sig() as usize % (i + 1);
            v.swap(i, j);
        }
    }

    fn id(&mut self) -> RecordId {
        RecordId::from_random(self.sig())
    }
}

// ---------------------------------------------------------------------------------------------
// The calendar of the cycle.

struct Calendario {
    intensiva: [NaiveDate; 5],
    ordinarias: [NaiveDate; 8],
    /// When teachers record the concentrado of the diagnóstico.
    diagnostico: NaiveDate,
    /// When some record an intermediate concentrado (after the first evaluation period).
    intermedio: NaiveDate,
    fin_ciclo: NaiveDate,
}

fn fecha(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid literal date")
}

fn mas(d: NaiveDate, dias: u64) -> NaiveDate {
    d.checked_add_days(Days::new(dias)).unwrap_or(d)
}

fn menos(d: NaiveDate, dias: u64) -> NaiveDate {
    d.checked_sub_days(Days::new(dias)).unwrap_or(d)
}

impl Calendario {
    /// The dashboard's reference calendar, plus the days the demo's teachers record their
    /// concentrado: the diagnóstico in the second week of classes, the intermedio two weeks
    /// before the November session.
    fn de(ciclo: CicloEscolar) -> Calendario {
        let r = proyeccion::Calendario::de(ciclo);
        let viernes = r.fin_intensiva.naive();
        let intensiva = [4, 3, 2, 1, 0].map(|i| menos(viernes, i));
        let mut ordinarias = [viernes; 8];
        for (o, f) in ordinarias.iter_mut().zip(&r.ordinarias) {
            *o = f.naive();
        }
        let clases = mas(viernes, 3);
        Calendario {
            intensiva,
            diagnostico: mas(clases, 11),
            intermedio: menos(ordinarias[2], 14),
            ordinarias,
            fin_ciclo: fecha(i32::from(ciclo.inicio()) + 1, 7, 10),
        }
    }
}

/// Seconds since the epoch of a local date and time, never after `tope`.
fn instante(d: NaiveDate, h: u32, m: u32, tope: i64) -> i64 {
    let naive = d.and_hms_opt(h, m, 0).expect("valid time");
    let t = chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
        .unwrap_or_else(|| naive.and_utc().timestamp());
    t.min(tope)
}

fn dia_de(segundos: i64) -> NaiveDate {
    chrono::Local
        .timestamp_opt(segundos, 0)
        .earliest()
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The zone's plan.

/// The 24 schools: CCT and name. The type letters decide the level.
const ESCUELAS: &[(&str, &str)] = &[
    ("07DJN0412K", "Jardín de Niños Rosario Castellanos"),
    ("07DJN0938Z", "Jardín de Niños Gabriela Mistral"),
    ("07DJN1265B", "Jardín de Niños Federico Froebel"),
    ("07DJN1587R", "Jardín de Niños Estefanía Castañeda"),
    ("07DCC0231M", "Preescolar Indígena Manuel Larráinzar"),
    ("07DCC0874H", "Preescolar Indígena Cuauhtémoc"),
    ("07DPR0317F", "Escuela Primaria Rural Benito Juárez"),
    ("07DPR0452T", "Escuela Primaria Miguel Hidalgo y Costilla"),
    ("07DPR0689C", "Escuela Primaria Josefa Ortiz de Domínguez"),
    ("07DPR0745N", "Escuela Primaria Rural Niños Héroes"),
    ("07DPR1023A", "Escuela Primaria Belisario Domínguez"),
    ("07DPR1178W", "Escuela Primaria Ignacio Manuel Altamirano"),
    ("07DPR1406L", "Escuela Primaria Rural Leona Vicario"),
    ("07DPB0215S", "Escuela Primaria Bilingüe Lázaro Cárdenas"),
    ("07DPB0586J", "Escuela Primaria Bilingüe Jacinto Canek"),
    ("07DPB0932E", "Escuela Primaria Bilingüe Tierra y Libertad"),
    (
        "07DPB1344P",
        "Escuela Primaria Bilingüe Fray Bartolomé de las Casas",
    ),
    ("07DTV0158G", "Telesecundaria Emiliano Zapata"),
    ("07DTV0427U", "Telesecundaria Jaime Sabines"),
    ("07DTV0793D", "Telesecundaria Sor Juana Inés de la Cruz"),
    ("07DTV1052Q", "Telesecundaria Francisco I. Madero"),
    (
        "07DES0064V",
        "Escuela Secundaria General Ángel Albino Corzo",
    ),
    (
        "07DES0119Y",
        "Escuela Secundaria General Fray Matías de Córdova",
    ),
    ("07DST0052H", "Escuela Secundaria Técnica Núm. 52"),
];

const NOMBRES_F: &[&str] = &[
    "Rosa María",
    "Guadalupe",
    "María Elena",
    "Juana",
    "Patricia",
    "Verónica",
    "Leticia",
    "Marisol",
    "Adriana",
    "Claudia",
    "Yolanda",
    "Margarita",
    "Brenda",
    "Araceli",
    "Norma",
    "Micaela",
    "Catalina",
    "Sonia",
];
const NOMBRES_M: &[&str] = &[
    "José Luis",
    "Juan Carlos",
    "Miguel Ángel",
    "Francisco",
    "Manuel",
    "Pedro",
    "Alonso",
    "Rigoberto",
    "Sebastián",
    "Mariano",
    "Andrés",
    "Domingo",
    "Héctor",
    "Rubén",
    "Óscar",
    "Javier",
    "Ernesto",
    "Abelardo",
];
const APELLIDOS: &[&str] = &[
    "Gómez",
    "Hernández",
    "López",
    "Pérez",
    "Díaz",
    "Sántiz",
    "Méndez",
    "Girón",
    "Ruiz",
    "Álvarez",
    "Jiménez",
    "Patishtán",
    "Collazo",
    "Vázquez",
    "Moreno",
    "Cruz",
    "Gutiérrez",
    "Aguilar",
    "Velasco",
    "Culebro",
    "Nucamendi",
    "Espinosa",
    "Domínguez",
    "Morales",
    "Núñez",
    "Solís",
    "Trujillo",
    "Pale",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Avance {
    Completo,
    AMedias,
    Inicial,
}

struct Persona {
    usuario: String,
    nombre: String,
}

struct Grupo {
    /// Index into the school's people (0: the director).
    titular: usize,
    grado: i64,
    letra: &'static str,
    alumnos: u64,
}

struct Plan {
    cct: Cct,
    nombre: &'static str,
    nivel: Nivel,
    /// 0: the director; then the teachers.
    personas: Vec<Persona>,
    grupos: Vec<Grupo>,
    avance: Avance,
    /// Days since the school's last contact with the server (0: today).
    dias_sin_sync: u64,
    conflicto: bool,
    intermedio: bool,
    /// Ordinary sessions the school did not record.
    sin_sesion: Vec<u64>,
    /// Index into [`PRACTICAS`] of the práctica its director shares with the zone.
    practica: Option<usize>,
}

fn persona(az: &mut Azar, usados: &mut HashSet<String>, usuario: String) -> Persona {
    loop {
        let (titulo, nombre) = if az.prob(0.6) {
            ("Mtra.", *az.elegir(NOMBRES_F))
        } else {
            ("Mtro.", *az.elegir(NOMBRES_M))
        };
        let (paterno, materno) = (az.elegir(APELLIDOS), az.elegir(APELLIDOS));
        if paterno == materno {
            continue;
        }
        let n = format!("{titulo} {nombre} {paterno} {materno}");
        if usados.insert(n.clone()) {
            return Persona { usuario, nombre: n };
        }
    }
}

fn planear(az: &mut Azar) -> Result<(Vec<Plan>, Persona, Persona)> {
    let mut usados = HashSet::new();
    let n = ESCUELAS.len();
    let mut orden: Vec<usize> = (0..n).collect();
    az.barajar(&mut orden);
    let avance = |pos: usize| match pos {
        p if p < 10 => Avance::Completo,
        p if p < 19 => Avance::AMedias,
        _ => Avance::Inicial,
    };
    let mut avances = vec![Avance::Completo; n];
    for (pos, &i) in orden.iter().enumerate() {
        avances[i] = avance(pos);
    }
    // Staleness: five schools silent for weeks, five for a few days, the rest synced today.
    az.barajar(&mut orden);
    let mut dias = vec![0u64; n];
    for (k, &i) in orden.iter().enumerate() {
        dias[i] = match k {
            0..5 => [22, 29, 36, 44, 58][k] + az.rango(0, 3),
            5..10 => az.rango(1, 9),
            _ => 0,
        };
    }
    // Two schools synced today hold a real conflict; five directors share a práctica.
    let frescas: Vec<usize> = orden[10..].to_vec();
    let conflictos: BTreeSet<usize> = frescas[..2].iter().copied().collect();
    let mut practicantes = orden.clone();
    az.barajar(&mut practicantes);
    let mut planes = Vec::new();
    for (i, (cct, nombre)) in ESCUELAS.iter().enumerate() {
        let cct = Cct::parse(cct)?;
        let nivel = cct.nivel();
        let tipo = &cct.as_str()[2..5];
        let docentes = match tipo {
            "DES" | "DST" => 3,
            "DTV" => az.rango(2, 3),
            "DJN" | "DCC" => az.rango(1, 2),
            _ => az.rango(1, 3),
        } as usize;
        let base = cct.as_str().to_lowercase();
        let mut personas = vec![persona(az, &mut usados, format!("dir.{base}"))];
        for k in 1..=docentes {
            personas.push(persona(az, &mut usados, format!("doc{k}.{base}")));
        }
        let grupos = grupos(az, tipo, docentes);
        let sin_sesion = if az.prob(0.35) {
            vec![az.rango(1, 3)]
        } else {
            Vec::new()
        };
        planes.push(Plan {
            cct,
            nombre,
            nivel,
            personas,
            grupos,
            avance: avances[i],
            dias_sin_sync: dias[i],
            conflicto: conflictos.contains(&i),
            intermedio: az.prob(0.5),
            sin_sesion,
            practica: practicantes[..PRACTICAS.len()].iter().position(|&p| p == i),
        });
    }
    let sup = persona(az, &mut usados, USUARIO_SUPERVISION.into());
    let atp = persona(az, &mut usados, USUARIO_ATP.into());
    Ok((planes, sup, atp))
}

/// Grades and groups of a school and who teaches each: multigrade in small rural schools (the
/// director teaches too when there are few teachers), one group per grade in telesecundaria,
/// two groups per grade in secundarias generales and técnicas.
fn grupos(az: &mut Azar, tipo: &str, docentes: usize) -> Vec<Grupo> {
    let (grados, letras, alumnos): (i64, &[&'static str], (u64, u64)) = match tipo {
        "DJN" | "DCC" => (3, &["A"], (7, 22)),
        "DPR" | "DPB" => (6, &["A"], (5, 19)),
        "DTV" => (3, &["A"], (11, 27)),
        _ => (3, &["A", "B"], (24, 36)),
    };
    let mut titulares: Vec<usize> = (1..=docentes).collect();
    let preescolar = tipo == "DJN" || tipo == "DCC";
    if (grados == 6 && docentes <= 2) || (preescolar && docentes == 1) {
        titulares.push(0);
    }
    let mut out = Vec::new();
    let total = grados as usize * letras.len();
    let mut k = 0;
    for grado in 1..=grados {
        for letra in letras {
            let titular = titulares[k * titulares.len() / total];
            out.push(Grupo {
                titular,
                grado,
                letra,
                alumnos: az.rango(alumnos.0, alumnos.1),
            });
            k += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What people write. Ámbitos are the keys of the pemc-2019 catalogue.

/// Diagnóstico per ámbito; `{n}` is replaced by a percentage.
const DIAGNOSTICO: &[(&str, &[&str])] = &[
    (
        "aprovechamiento_asistencia",
        &[
            "En la evaluación diagnóstica, {n}% de los alumnos no alcanzó lo esperado en lenguajes y más de la mitad tiene dificultad en pensamiento matemático. La asistencia baja en la temporada de corte de café (octubre a diciembre) y en las fiestas del pueblo.",
            "La inasistencia se concentra en los grados mayores: varios alumnos acompañan a sus padres al trabajo en el campo. En la evaluación diagnóstica {n}% de los alumnos mostró rezago en lenguaje oral y escrito.",
        ],
    ),
    (
        "practicas_docentes",
        &[
            "Predomina la clase expositiva y el dictado; pocas veces se trabaja por proyectos. Cada docente planea por separado y no se comparten materiales.",
            "En los grupos multigrado se da la misma actividad a todos los grados. Se usan poco los libros en lengua tsotsil y el material del rincón de lectura.",
        ],
    ),
    (
        "formacion_docente",
        &[
            "El colectivo pide formación en evaluación formativa y en el trabajo con grupos multigrado. Los cursos en línea no se pueden tomar por la falta de conexión en la comunidad.",
            "Dos docentes son de nuevo ingreso y no han recibido acompañamiento; {n}% del colectivo no ha tomado ningún curso en los dos últimos ciclos.",
        ],
    ),
    (
        "planes_programas",
        &[
            "Al cierre del ciclo pasado no se cubrieron los contenidos de matemáticas de los grados superiores. Falta articular los proyectos comunitarios con los campos formativos.",
            "Se avanzó {n}% de lo planeado en el ciclo anterior; la suspensión de clases por lluvias y bloqueos carreteros retrasó el programa.",
        ],
    ),
    (
        "participacion_comunidad",
        &[
            "Las madres y los padres asisten a las reuniones, pero participan poco en las actividades de aprendizaje. El comité de participación escolar se reúne de manera irregular.",
            "Solo {n}% de las familias asistió a la entrega de boletas. Muchas madres hablan solo tsotsil y los avisos se envían en español.",
        ],
    ),
    (
        "autoridad_escolar",
        &[
            "La dirección dedica la mayor parte del tiempo a trámites y el acompañamiento a las aulas es esporádico. No se lleva un registro de los acuerdos del CTE.",
            "Los acuerdos del CTE se toman pero no se revisan en la sesión siguiente; la rendición de cuentas a la comunidad no se hizo el ciclo pasado.",
        ],
    ),
    (
        "infraestructura",
        &[
            "Dos aulas tienen goteras; no hay agua entubada todo el año y la conexión a internet es intermitente. Los sanitarios necesitan reparación.",
            "La barda perimetral está caída en un tramo y el aula de usos múltiples no tiene mobiliario suficiente. La luz se va varias veces por semana.",
        ],
    ),
    (
        "carga_administrativa",
        &[
            "Los informes que piden la supervisión y los programas de apoyo ocupan varias horas a la semana y restan tiempo de clase.",
            "La dirección con grupo atiende trámites durante la jornada; {n}% del tiempo de la directora se va en formatos y estadísticas.",
        ],
    ),
];

/// Objetivo per ámbito: (¿qué queremos lograr?, ¿para qué?).
const OBJETIVOS: &[(&str, &str, &str)] = &[
    (
        "aprovechamiento_asistencia",
        "Mejorar la comprensión lectora y el cálculo mental de todos los alumnos",
        "Que puedan aprender en todos los campos formativos y continuar sus estudios",
    ),
    (
        "practicas_docentes",
        "Diversificar las estrategias de enseñanza en los grupos, con atención a cada nivel de avance",
        "Que cada alumno trabaje con actividades adecuadas a lo que sabe",
    ),
    (
        "formacion_docente",
        "Formar al colectivo en evaluación formativa",
        "Que la evaluación sirva para ajustar la enseñanza y no solo para calificar",
    ),
    (
        "planes_programas",
        "Cubrir los contenidos del programa con proyectos comunitarios",
        "Que los alumnos aprendan lo que les corresponde a partir de la vida de su comunidad",
    ),
    (
        "participacion_comunidad",
        "Involucrar a las familias en el aprendizaje de sus hijas e hijos",
        "Que la lectura y el estudio continúen en casa",
    ),
    (
        "autoridad_escolar",
        "Dar seguimiento sistemático a los acuerdos del Consejo Técnico",
        "Que los compromisos del colectivo se cumplan y se rinda cuentas a la comunidad",
    ),
    (
        "infraestructura",
        "Rehabilitar aulas y sanitarios con apoyo de la comunidad y del programa La Escuela es Nuestra",
        "Que los alumnos estudien en espacios seguros y dignos",
    ),
    (
        "carga_administrativa",
        "Organizar la carga administrativa para proteger el tiempo de clase",
        "Que el tiempo escolar se dedique al aprendizaje",
    ),
];

/// Metas per ámbito: (descripción, indicador, línea base, meta, unidad). A unit of `docentes`
/// takes the school's number of people as its target.
const METAS: &[(&str, &str, &str, f64, f64, &str)] = &[
    (
        "aprovechamiento_asistencia",
        "Reducir el porcentaje de alumnos que requieren apoyo en lectura",
        "% de alumnos que requieren apoyo en lectura",
        38.0,
        20.0,
        "%",
    ),
    (
        "aprovechamiento_asistencia",
        "Aumentar la asistencia promedio mensual",
        "asistencia promedio mensual",
        84.0,
        95.0,
        "%",
    ),
    (
        "practicas_docentes",
        "Que cada docente aplique al menos una estrategia diferenciada por semana",
        "docentes que aplican estrategias diferenciadas",
        0.0,
        0.0,
        "docentes",
    ),
    (
        "formacion_docente",
        "Que todo el colectivo concluya un taller de evaluación formativa",
        "docentes que concluyen el taller",
        0.0,
        0.0,
        "docentes",
    ),
    (
        "planes_programas",
        "Cubrir el 90% de los contenidos planeados en cada periodo",
        "% de contenidos cubiertos",
        70.0,
        90.0,
        "%",
    ),
    (
        "participacion_comunidad",
        "Que al menos 60% de las familias participe en las jornadas de lectura",
        "% de familias participantes",
        25.0,
        60.0,
        "%",
    ),
    (
        "autoridad_escolar",
        "Revisar todos los acuerdos en cada sesión ordinaria",
        "% de acuerdos revisados",
        30.0,
        100.0,
        "%",
    ),
    (
        "infraestructura",
        "Reparar el techo de dos aulas y los sanitarios",
        "espacios rehabilitados",
        0.0,
        3.0,
        "espacios",
    ),
    (
        "carga_administrativa",
        "Reducir a 2 horas semanales el tiempo de la dirección en trámites",
        "horas semanales en trámites",
        8.0,
        2.0,
        "horas",
    ),
];

/// Acciones per ámbito: (descripción, recursos, costo).
const ACCIONES: &[(&str, &str, &str, f64)] = &[
    (
        "aprovechamiento_asistencia",
        "Círculos de lectura los viernes con los libros de la biblioteca escolar",
        "Biblioteca escolar y de aula",
        0.0,
    ),
    (
        "aprovechamiento_asistencia",
        "Tutoría entre pares para los alumnos que requieren apoyo en lectura",
        "Fichas de lectura impresas",
        350.0,
    ),
    (
        "aprovechamiento_asistencia",
        "Registro diario de asistencia y visita a las familias de los alumnos que faltan tres días seguidos",
        "Formato de asistencia",
        0.0,
    ),
    (
        "aprovechamiento_asistencia",
        "Cálculo mental diez minutos al inicio de cada jornada",
        "Tarjetas de cálculo",
        200.0,
    ),
    (
        "practicas_docentes",
        "Planeación conjunta por ciclo cada dos semanas",
        "Tiempo del CTE",
        0.0,
    ),
    (
        "practicas_docentes",
        "Observación entre pares de una clase al mes",
        "Guía de observación",
        0.0,
    ),
    (
        "formacion_docente",
        "Taller de evaluación formativa con el ATP de la zona",
        "Materiales del ATP",
        0.0,
    ),
    (
        "formacion_docente",
        "Círculo de estudio sobre el trabajo en grupos multigrado",
        "Antología impresa",
        450.0,
    ),
    (
        "planes_programas",
        "Dosificar los contenidos por periodo y revisarlos en cada CTE",
        "Programa sintético",
        0.0,
    ),
    (
        "planes_programas",
        "Proyecto comunitario del huerto escolar",
        "Semillas y herramientas",
        1200.0,
    ),
    (
        "participacion_comunidad",
        "Jornadas de lectura con madres y padres el último viernes de cada mes",
        "Libros del rincón",
        0.0,
    ),
    (
        "participacion_comunidad",
        "Asamblea con el comité de participación escolar para presentar el PEMC en tsotsil y en español",
        "Traducción con apoyo de la comunidad",
        0.0,
    ),
    (
        "autoridad_escolar",
        "Bitácora de acuerdos del CTE revisada al inicio de cada sesión",
        "Bitácora digital",
        0.0,
    ),
    (
        "autoridad_escolar",
        "Visitas de acompañamiento de la dirección a cada grupo",
        "Guía de acompañamiento",
        0.0,
    ),
    (
        "infraestructura",
        "Gestionar la reparación del techo con el programa La Escuela es Nuestra",
        "Recursos del programa",
        35000.0,
    ),
    (
        "infraestructura",
        "Faena con madres y padres para pintar e impermeabilizar las aulas",
        "Pintura e impermeabilizante",
        4800.0,
    ),
    (
        "carga_administrativa",
        "Calendario de entrega de informes acordado con la supervisión",
        "Calendario impreso",
        0.0,
    ),
    (
        "carga_administrativa",
        "Distribuir las comisiones administrativas en el colectivo",
        "Tiempo del CTE",
        0.0,
    ),
];

/// Sessions of the fase intensiva: (propósito, productos).
const INTENSIVA: [(&str, &str); 5] = [
    (
        "Bienvenida, organización del ciclo escolar y de las comisiones",
        "Comisiones, horarios y guardias acordados. Calendario de sesiones del CTE.",
    ),
    (
        "Análisis de los resultados del ciclo anterior",
        "Tabla de resultados por grado. Alumnos que terminaron con rezago y sus necesidades.",
    ),
    (
        "Diagnóstico de la escuela por ámbitos y priorización de problemáticas",
        "Diagnóstico por ámbito con prioridades.",
    ),
    (
        "Objetivos y metas del Programa Escolar de Mejora Continua",
        "Objetivos y metas del PEMC.",
    ),
    (
        "Acciones del PEMC, responsables y calendario; plan de la primera semana de clases",
        "Acciones con responsables y fechas. Actividades de bienvenida y evaluación diagnóstica.",
    ),
];

/// Ordinary sessions: (propósito, productos).
const ORDINARIAS: [(&str, &str); 8] = [
    (
        "Resultados de la evaluación diagnóstica por grupo y ajuste del PEMC",
        "Concentrado por grupo de la evaluación diagnóstica. Ajustes a las metas.",
    ),
    (
        "Seguimiento de acuerdos y de las estrategias de lectura",
        "Revisión de acuerdos. Estrategias de lectura que funcionaron en cada grupo.",
    ),
    (
        "Balance del primer periodo de evaluación",
        "Alumnos en riesgo por grupo y apoyos acordados.",
    ),
    (
        "Valoración intermedia del PEMC",
        "Nivel de logro de cada meta a medio ciclo. Acciones que se reprograman.",
    ),
    (
        "Aprendizaje entre escuelas: buenas prácticas para compartir",
        "Prácticas seleccionadas para la sesión de zona.",
    ),
    (
        "Seguimiento de los alumnos que requieren apoyo",
        "Lista de apoyos por grupo (sin nombres fuera de la escuela).",
    ),
    (
        "Preparación del cierre del ciclo",
        "Calendario de evaluación final y de entrega de documentación.",
    ),
    (
        "Evaluación del PEMC y rendición de cuentas",
        "Balance de metas y acuerdos. Informe para la comunidad.",
    ),
];

/// Práctica mentioned in a session's record.
const PRACTICAS_SESION: &[&str] = &[
    "Lectura en voz alta de diez minutos al inicio del día: los alumnos eligen el libro.",
    "Tarjetas de cálculo mental por niveles, que los alumnos llevan a casa.",
    "Registro de asistencia con las madres vocales: avisan a la escuela cuando un alumno sale con su familia al corte de café.",
    "Proyecto del huerto: medición, registro y venta de lo cosechado.",
    "Rincón de lectura con libros en tsotsil elaborados por los propios alumnos.",
];

const ACUERDOS: &[&str] = &[
    "Revisar la asistencia de cada grupo todos los viernes y avisar a las familias de los alumnos con tres faltas",
    "Entregar a la dirección la ficha descriptiva de cada grupo",
    "Organizar la jornada de lectura con madres y padres",
    "Elaborar el cronograma de la comisión de higiene y seguridad",
    "Aplicar la evaluación de fluidez lectora en todos los grupos",
    "Reunir al comité de participación escolar para presentar el PEMC",
    "Solicitar a la supervisión el taller de evaluación formativa",
    "Actualizar el inventario de la biblioteca escolar",
    "Preparar los materiales de cálculo mental para cada grupo",
    "Registrar en la bitácora los avances del proyecto comunitario",
    "Gestionar con el comisariado ejidal el apoyo para la faena de limpieza",
    "Compartir en la próxima sesión una estrategia que haya funcionado en el aula",
    "Entregar las planeaciones del siguiente periodo",
    "Dar tutorías por la tarde a los alumnos que requieren apoyo en matemáticas",
    "Revisar con cada familia el reporte de evaluación del primer periodo",
    "Elaborar el periódico mural sobre el cuidado del agua",
    "Solicitar al DIF municipal la revisión de peso y talla de los alumnos",
    "Traducir al tsotsil los avisos para las familias",
    "Revisar el avance de cada meta del PEMC antes de la siguiente sesión",
    "Acordar con el comité de alimentación el horario del desayuno para no cortar la clase",
];

const RESPONSABLES_COLECTIVOS: &[&str] = &[
    "Dirección",
    "Colectivo docente",
    "Comité de Participación Escolar",
];

const EVIDENCIAS: &[(NivelLogro, &[&str])] = &[
    (
        NivelLogro::Cumplida,
        &[
            "Registros de todos los grupos: la meta se alcanzó antes de la fecha prevista.",
            "Constancias del taller y listas firmadas de todo el colectivo.",
            "Fotografías y acta de entrega de los trabajos terminados.",
        ],
    ),
    (
        NivelLogro::AvanceSignificativo,
        &[
            "Listas de asistencia y registros de lectura: se avanzó, pero aún faltan grupos por alcanzar la meta.",
            "La mitad de las acciones se realizó; las demás están en proceso.",
            "Registro de fluidez lectora: mejoró en cuatro de seis grupos.",
        ],
    ),
    (
        NivelLogro::EscasoONulo,
        &[
            "No se aplicaron las actividades previstas por la suspensión de clases; se reprograman.",
            "Sin registros todavía: las acciones iniciaron tarde.",
            "La asistencia bajó en la temporada de corte de café; se ajustará la estrategia.",
        ],
    ),
];

/// Prácticas that directors share with the zone: (título, descripción, ámbito).
const PRACTICAS: &[(&str, &str, &str)] = &[
    (
        "Cálculo mental en diez minutos",
        "Cada mañana los alumnos resuelven tarjetas de cálculo por niveles; cada viernes se registra cuántas resolvió cada grupo. En dos meses bajó a la mitad el número de alumnos con apoyo en matemáticas.",
        "aprovechamiento_asistencia",
    ),
    (
        "Lectura en voz alta con madres y padres",
        "El último viernes de cada mes las familias leen con sus hijos en el patio, en tsotsil y en español. Asisten más madres cuando se avisa por la radio comunitaria.",
        "participacion_comunidad",
    ),
    (
        "Rincón de lectura en tsotsil",
        "Los alumnos de los grados superiores escriben e ilustran cuentos de la comunidad en tsotsil para los pequeños; los libros se quedan en el rincón de lectura.",
        "practicas_docentes",
    ),
    (
        "Seguimiento de asistencia con la comunidad",
        "Las vocales del comité avisan cuando una familia sale al corte de café; el docente prepara un cuadernillo para que el alumno no pierda el ritmo.",
        "aprovechamiento_asistencia",
    ),
    (
        "Planeación multigrado por proyectos",
        "Un proyecto común para todo el grupo multigrado con actividades por nivel; la planeación se comparte en el CTE cada dos semanas.",
        "planes_programas",
    ),
];

/// Sessions of the zone council: (propósito, productos).
const CTZ: &[(&str, &str)] = &[
    (
        "Balance de los diagnósticos de las escuelas de la zona",
        "Problemáticas comunes: comprensión lectora, asistencia en la temporada de corte de café, carga administrativa. Escuelas que requieren acompañamiento.",
    ),
    (
        "Compartir buenas prácticas entre escuelas de la microrregión",
        "Prácticas presentadas por las direcciones; acuerdos para llevarlas a los PEMC.",
    ),
    (
        "Seguimiento de los acuerdos de los CTE de las escuelas",
        "Acuerdos vencidos por escuela y apoyos de la supervisión.",
    ),
    (
        "Valoración intermedia de los PEMC de la zona",
        "Ámbitos con avance y ámbitos por fortalecer.",
    ),
];

const ACUERDOS_CTZ: &[(&str, &str)] = &[
    (
        "Cada dirección enviará a la supervisión su PEMC con metas y responsables",
        "Directores de la zona",
    ),
    (
        "Visitas de acompañamiento del ATP a las telesecundarias",
        "ATP de la zona",
    ),
    (
        "Organizar el intercambio de buenas prácticas entre escuelas de la microrregión",
        "Supervisión",
    ),
    (
        "Revisar en cada CTE los acuerdos vencidos y reportarlos en la bitácora",
        "Directores de la zona",
    ),
];

fn texto_de<'a>(
    tabla: &'a [(&'a str, &'a [&'a str])],
    ambito: &str,
    az: &mut Azar,
) -> Option<&'a str> {
    tabla
        .iter()
        .find(|(a, _)| *a == ambito)
        .map(|(_, v)| *az.elegir(v))
}

// ---------------------------------------------------------------------------------------------
// A device: one person's laptop with its own client store, as the CLI keeps it.

struct Doc {
    info: DocInfo,
    doc: AutoCommit,
    /// Heads already in the local store.
    guardado: Vec<ChangeHash>,
}

struct Equipo {
    nombre: String,
    token: String,
    store: Store,
    actor: bitacora_core::automerge::ActorId,
    docs: Vec<Doc>,
    enrolado: bool,
    cambios: usize,
}

impl Equipo {
    /// Opens a fresh store in `dir` holding `infos` from their deterministic genesis, as
    /// `bitacora init` does.
    async fn nuevo(dir: &Path, nombre: &str, token: &str, infos: &[DocInfo]) -> Result<Equipo> {
        let store = Store::open(dir).await?;
        let actor = store.actor().await?;
        let mut docs = Vec::new();
        for info in infos {
            let mut g = genesis_de(info)?;
            store.create(info, &mut g, crate::db::now()).await?;
            let mut doc = store
                .load(&info.id)
                .await?
                .context("el documento recién creado no está en el almacén")?
                .with_actor(actor.clone());
            let guardado = doc.get_heads();
            docs.push(Doc {
                info: info.clone(),
                doc,
                guardado,
            });
        }
        Ok(Equipo {
            nombre: nombre.to_string(),
            token: token.to_string(),
            store,
            actor,
            docs,
            enrolado: false,
            cambios: 0,
        })
    }

    /// Applies one model operation to document `i` at time `ahora`, as this person.
    fn op<T>(
        &mut self,
        i: usize,
        ahora: i64,
        f: impl FnOnce(&mut AutoCommit, &Ctx<'_>) -> Result<T, ModelError>,
    ) -> Result<T> {
        let ctx = Ctx {
            ahora,
            autor: Some(&self.nombre),
        };
        let r = f(&mut self.docs[i].doc, &ctx)
            .with_context(|| format!("{} en {}", self.nombre, self.docs[i].info.owner))?;
        self.cambios += 1;
        Ok(r)
    }

    fn escuela(&self) -> Result<escuela::Escuela> {
        Ok(escuela::leer(&self.docs[0].doc)?)
    }

    /// Stores what is new, enrols the device the first time, syncs every document with the
    /// server, and reloads them with what arrived.
    async fn sincronizar(&mut self, url: &str) -> Result<engine::Informe> {
        for d in &mut self.docs {
            let nuevos = d.doc.save_after(&d.guardado);
            if !nuevos.is_empty() {
                self.store.append(&d.info.id, &nuevos).await?;
            }
        }
        if !self.enrolado {
            engine::enrolar(url, &self.token, &self.actor, LIMITE).await?;
            self.enrolado = true;
        }
        let ids: Vec<_> = self.docs.iter().map(|d| d.info.id).collect();
        let informe = engine::sync_once(&self.store, url, &self.token, &ids, LIMITE)
            .await
            .with_context(|| format!("sincronizando el equipo de {}", self.nombre))?;
        for d in &mut self.docs {
            d.doc = self
                .store
                .load(&d.info.id)
                .await?
                .context("el documento desapareció del almacén")?
                .with_actor(self.actor.clone());
            d.guardado = d.doc.get_heads();
        }
        Ok(informe)
    }
}

// ---------------------------------------------------------------------------------------------
// Generation.

/// Removes the devices' temporary directory when dropped.
struct DirTemporal(PathBuf);

impl Drop for DirTemporal {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Gen<'a> {
    url: &'a str,
    base: &'a Base,
    cal: Calendario,
    hoy: NaiveDate,
    az: Azar,
    tmp: PathBuf,
}

/// What a school's simulation keeps between rounds (only its director's own records).
#[derive(Default)]
struct Memoria {
    sesiones: Vec<(RecordId, NaiveDate)>,
    prioridades: Vec<&'static str>,
    metas: Vec<(RecordId, &'static str, NaiveDate)>,
    acuerdos_usados: HashSet<usize>,
    /// The acuerdo two devices will set to different estados concurrently.
    en_conflicto: Option<RecordId>,
    practica_compartida: bool,
}

fn en(d: NaiveDate, desde: Option<NaiveDate>, hasta: NaiveDate) -> bool {
    desde.is_none_or(|x| d > x) && d <= hasta
}

async fn generar_zona(
    db: &Database,
    keys: &Keys,
    url: &str,
    base: &Base,
    hoy: NaiveDate,
    semilla: u64,
) -> Result<()> {
    let ciclo = CicloEscolar::que_contiene(Fecha::from_naive(hoy));
    let mut az = Azar(semilla);
    let (planes, sup, atp) = planear(&mut az)?;

    let zona_info = admin::zona_add(db, ZONA, NOMBRE_ZONA, ciclo).await?;
    admin::usuario_add(
        db,
        &sup.usuario,
        &sup.nombre,
        "supervisor",
        None,
        Some(ZONA),
    )
    .await?;
    admin::usuario_add(db, &atp.usuario, &atp.nombre, "atp", None, Some(ZONA)).await?;
    let mut registradas = Vec::new();
    for p in &planes {
        let info = admin::escuela_add(db, p.cct.as_str(), p.nombre, ZONA, ciclo).await?;
        let mut tokens = Vec::new();
        for (i, persona) in p.personas.iter().enumerate() {
            let rol = if i == 0 { "director" } else { "docente" };
            admin::usuario_add(
                db,
                &persona.usuario,
                &persona.nombre,
                rol,
                Some(p.cct.as_str()),
                None,
            )
            .await?;
            tokens.push(admin::token_emitir(db, keys, &persona.usuario, 30).await?.0);
        }
        registradas.push((info, tokens));
    }
    eprintln!(
        "demo: zona {ZONA} y {} escuelas registradas (ciclo {ciclo}); generando el trabajo del ciclo…",
        planes.len()
    );

    let tmp = std::env::temp_dir().join(format!(
        "bitacora-demo-equipos-{}-{}",
        std::process::id(),
        crate::db::now()
    ));
    let _limpieza = DirTemporal(tmp.clone());
    let mut g = Gen {
        url,
        base,
        cal: Calendario::de(ciclo),
        hoy,
        az,
        tmp,
    };
    let total = planes.len();
    for (k, (p, (info, tokens))) in planes.iter().zip(&registradas).enumerate() {
        let (cambios, equipos) = g.escuela(p, info, &zona_info, tokens).await?;
        let ultima = match p.dias_sin_sync {
            0 => "hoy".to_string(),
            1 => "ayer".to_string(),
            d => format!("hace {d} días"),
        };
        eprintln!(
            "demo: [{:>2}/{total}] {} {}: {equipos} equipo(s), {cambios} cambio(s); última sincronización {ultima}",
            k + 1,
            p.cct,
            p.nombre
        );
    }
    let token_sup = admin::token_emitir(db, keys, &sup.usuario, 30).await?.0;
    let directores: Vec<&str> = planes
        .iter()
        .map(|p| p.personas[0].nombre.as_str())
        .collect();
    g.supervision(&zona_info, &sup, &atp, &token_sup, &directores)
        .await?;
    base.volver();
    db.set_meta(MARCA, &format!("{ZONA} {ciclo} semilla {semilla}"))
        .await?;
    Ok(())
}

impl Gen<'_> {
    /// The instant of a local date and time, never after the demo's now.
    fn t(&self, d: NaiveDate, h: u32, m: u32) -> i64 {
        instante(d, h, m, self.base.ahora() - 60)
    }

    /// A random day in `(desde, hasta]`, not before `minimo`.
    fn dia(&mut self, desde: NaiveDate, hasta: NaiveDate, minimo: NaiveDate) -> Option<NaiveDate> {
        let a = mas(desde.max(menos(minimo, 1)), 1);
        if a > hasta {
            return None;
        }
        let n = (hasta - a).num_days().max(0) as u64;
        Some(mas(a, self.az.rango(0, n)))
    }

    /// Sync rounds of a school whose last contact was `fin`: after the first ordinary session,
    /// halfway, and at `fin`.
    fn rondas(&self, fin: NaiveDate) -> Vec<NaiveDate> {
        let r1 = fin.min(mas(self.cal.ordinarias[0], 1));
        let mut v = vec![r1];
        let dias = (fin - r1).num_days();
        if dias > 14 {
            v.push(mas(r1, (dias / 2) as u64));
        }
        if fin > r1 {
            v.push(fin);
        }
        v
    }

    /// Sets the server's clock for a round ending on `d` (the demo's now for today).
    fn reloj_a(&self, d: NaiveDate) {
        if d >= self.hoy {
            self.base.volver();
        } else {
            self.base.reloj.fijar(self.t(d, 17, 30));
        }
    }

    /// Simulates one school: its devices, its rounds. Returns (changes written, devices).
    async fn escuela(
        &mut self,
        p: &Plan,
        info: &DocInfo,
        zona: &DocInfo,
        tokens: &[String],
    ) -> Result<(usize, usize)> {
        let fin = menos(self.hoy, p.dias_sin_sync);
        let mut equipos = Vec::new();
        for (i, persona) in p.personas.iter().enumerate() {
            let mut infos = vec![info.clone()];
            if i == 0 && p.practica.is_some() {
                infos.push(zona.clone());
            }
            equipos.push(
                Equipo::nuevo(
                    &self.tmp.join(&persona.usuario),
                    &persona.nombre,
                    &tokens[i],
                    &infos,
                )
                .await?,
            );
        }
        let mut m = Memoria::default();
        let rondas = self.rondas(fin);
        let mut desde = None;
        for (k, &hasta) in rondas.iter().enumerate() {
            let ultima = k + 1 == rondas.len() && k > 0;
            self.reloj_a(hasta);
            let dir = &mut equipos[0];
            self.director(dir, p, &mut m, desde, hasta, ultima)?;
            dir.sincronizar(self.url).await?;
            for (i, e) in equipos.iter_mut().enumerate().skip(1) {
                self.docente(e, p, i, &m, desde, hasta, ultima)?;
                e.sincronizar(self.url).await?;
            }
            desde = Some(hasta);
        }
        let cambios = equipos.iter().map(|e| e.cambios).sum();
        let n = equipos.len();
        for e in equipos {
            e.store.close().await;
        }
        Ok((cambios, n))
    }

    fn asistentes(&mut self, p: &Plan) -> Vec<String> {
        p.personas
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || !self.az.prob(0.1))
            .map(|(_, x)| x.nombre.clone())
            .collect()
    }

    /// Who updates a record's estado: the first teacher among its responsables, else the
    /// director.
    fn dueno(p: &Plan, responsables: &[String]) -> usize {
        p.personas
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, x)| responsables.contains(&x.nombre))
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    fn responsables(&mut self, p: &Plan) -> Vec<String> {
        if p.personas.len() > 1 && self.az.prob(0.6) {
            let i = self.az.rango(1, p.personas.len() as u64 - 1) as usize;
            let mut v = vec![p.personas[i].nombre.clone()];
            if self.az.prob(0.25) {
                v.push("Dirección".into());
            }
            v
        } else {
            vec![self.az.elegir(RESPONSABLES_COLECTIVOS).to_string()]
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn director(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        m: &mut Memoria,
        desde: Option<NaiveDate>,
        hasta: NaiveDate,
        ultima: bool,
    ) -> Result<()> {
        let cal = &self.cal;
        let (intensiva, ordinarias) = (cal.intensiva, cal.ordinarias);
        if desde.is_none() {
            let t = self.t(intensiva[0].min(hasta), 8, 10);
            e.op(0, t, |doc, ctx| {
                escuela::registrar(doc, ctx, p.nombre, ZONA)
            })?;
        }
        for (i, &dia) in intensiva.iter().enumerate() {
            if !en(dia, desde, hasta) {
                continue;
            }
            let numero = i as u64 + 1;
            let (proposito, productos) = INTENSIVA[i];
            let sid = self.sesion(e, p, Fase::Intensiva, numero, dia, proposito, productos, "")?;
            m.sesiones.push((sid.clone(), dia));
            match numero {
                3 => self.diagnostico(e, p, m, dia)?,
                4 => self.objetivos_y_metas(e, p, m, dia)?,
                5 => self.acciones(e, p, m, dia)?,
                _ => {}
            }
            if numero == 1 || numero == 5 {
                let n = self.az.rango(1, 2) as usize;
                self.acuerdos(e, p, m, &sid, dia, n)?;
            }
        }
        for (i, &dia) in ordinarias.iter().enumerate() {
            let numero = i as u64 + 1;
            if !en(dia, desde, hasta) || p.sin_sesion.contains(&numero) {
                continue;
            }
            let (proposito, productos) = ORDINARIAS[i];
            let practicas = if self.az.prob(0.5) {
                *self.az.elegir(PRACTICAS_SESION)
            } else {
                ""
            };
            let sid = self.sesion(
                e,
                p,
                Fase::Ordinaria,
                numero,
                dia,
                proposito,
                productos,
                practicas,
            )?;
            m.sesiones.push((sid.clone(), dia));
            self.revisar(e, p, m, &sid, dia)?;
            self.logros(e, m, dia, numero)?;
            let n = self.az.rango(1, 3) as usize;
            self.acuerdos(e, p, m, &sid, dia, n)?;
            if let Some(k) = p.practica
                && !m.practica_compartida
            {
                let (titulo, descripcion, ambito) = PRACTICAS[k];
                let id = self.az.id();
                e.op(1, self.t(dia, 16, 0), |doc, ctx| {
                    zona::agregar_practica(doc, ctx, &id, &p.cct, titulo, descripcion, Some(ambito))
                })?;
                m.practica_compartida = true;
            }
        }
        self.concentrados(e, p, 0, desde, hasta)?;
        if ultima && let Some(k) = &m.en_conflicto {
            // At the last session the director marks it in progress, offline; a teacher marks it
            // done on her own laptop before seeing that. Both sync: a visible conflict.
            e.op(0, self.t(hasta, 13, 5), |doc, ctx| {
                escuela::estado_acuerdo(doc, ctx, k, EstadoAcuerdo::EnProceso, None)
            })?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn sesion(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        fase: Fase,
        numero: u64,
        dia: NaiveDate,
        proposito: &str,
        productos: &str,
        practicas: &str,
    ) -> Result<RecordId> {
        let sid = self.az.id();
        let s = NuevaSesion {
            fase,
            numero,
            fecha: Fecha::from_naive(dia),
            asistentes: self.asistentes(p),
            proposito: proposito.into(),
            productos: productos.into(),
            practicas: practicas.into(),
        };
        e.op(0, self.t(dia, 9, 0), |doc, ctx| {
            escuela::agregar_sesion(doc, ctx, &sid, &s)
        })?;
        Ok(sid)
    }

    fn diagnostico(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        m: &mut Memoria,
        dia: NaiveDate,
    ) -> Result<()> {
        let mut ambitos: Vec<&'static str> = DIAGNOSTICO.iter().map(|(a, _)| *a).collect();
        self.az.barajar(&mut ambitos);
        let (con_texto, con_prioridad) = match p.avance {
            Avance::Completo => (8, 8),
            Avance::AMedias => (5, 3),
            Avance::Inicial => (2, 0),
        };
        for (k, ambito) in ambitos.iter().take(con_texto).enumerate() {
            let texto = texto_de(DIAGNOSTICO, ambito, &mut self.az)
                .unwrap_or_default()
                .replace("{n}", &self.az.rango(18, 46).to_string());
            let prioridad = (k < con_prioridad).then_some(k as u64 + 1);
            e.op(0, self.t(dia, 10, 30 + k as u32), |doc, ctx| {
                escuela::diagnostico(doc, ctx, ambito, Some(&texto), prioridad)
            })?;
        }
        m.prioridades = ambitos.into_iter().take(con_texto.max(1)).collect();
        Ok(())
    }

    fn objetivos_y_metas(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        m: &mut Memoria,
        dia: NaiveDate,
    ) -> Result<()> {
        let objetivos = match p.avance {
            Avance::Completo => 3,
            Avance::AMedias => 2,
            Avance::Inicial => 1,
        };
        let prioridades = m.prioridades.clone();
        for (k, &ambito) in prioridades.iter().take(objetivos).enumerate() {
            let Some(&(_, texto, para_que)) = OBJETIVOS.iter().find(|o| o.0 == ambito) else {
                continue;
            };
            let mut ambitos = vec![ambito.to_string()];
            if let Some(otro) = prioridades.get(objetivos + k)
                && self.az.prob(0.3)
            {
                ambitos.push(otro.to_string());
            }
            let oid = self.az.id();
            let o = NuevoObjetivo {
                texto: texto.into(),
                para_que: para_que.into(),
                ambitos,
            };
            e.op(0, self.t(dia, 11, 10 * k as u32), |doc, ctx| {
                escuela::agregar_objetivo(doc, ctx, &oid, &o)
            })?;
            let metas: Vec<_> = METAS.iter().filter(|x| x.0 == ambito).collect();
            let n = match p.avance {
                Avance::Completo => metas.len().min(2),
                Avance::AMedias => 1,
                Avance::Inicial => usize::from(self.az.prob(0.5)),
            };
            for (j, &&(_, descripcion, indicador, base, meta, unidad)) in
                metas.iter().take(n).enumerate()
            {
                let (base, meta) = if unidad == "docentes" {
                    (0.0, p.personas.len() as f64)
                } else if unidad == "%" {
                    let d = self.az.entre(-6.0, 6.0).round();
                    ((base + d).max(0.0), meta)
                } else {
                    (base, meta)
                };
                let limite = if self.az.prob(0.3) {
                    fecha(self.cal.intensiva[0].year(), 12, 18)
                } else {
                    menos(self.cal.fin_ciclo, 10)
                };
                let mid = self.az.id();
                let nm = NuevaMeta {
                    objetivo: oid.clone(),
                    descripcion: descripcion.into(),
                    indicador: indicador.into(),
                    linea_base: Some(base),
                    valor_meta: Some(meta),
                    unidad: unidad.into(),
                    fecha_limite: Some(Fecha::from_naive(limite)),
                };
                e.op(0, self.t(dia, 12, 10 * j as u32), |doc, ctx| {
                    escuela::agregar_meta(doc, ctx, &mid, &nm)
                })?;
                m.metas.push((mid, ambito, limite));
            }
        }
        Ok(())
    }

    fn acciones(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        m: &mut Memoria,
        dia: NaiveDate,
    ) -> Result<()> {
        let por_meta = match p.avance {
            Avance::Completo => (2, 3),
            Avance::AMedias => (1, 2),
            Avance::Inicial => return Ok(()),
        };
        for (k, (meta, ambito, limite)) in m.metas.clone().into_iter().enumerate() {
            let mut opciones: Vec<_> = ACCIONES.iter().filter(|a| a.0 == ambito).collect();
            self.az.barajar(&mut opciones);
            let n = self.az.rango(por_meta.0, por_meta.1) as usize;
            for (j, &&(_, descripcion, recursos, costo)) in opciones.iter().take(n).enumerate() {
                let id = self.az.id();
                let a = NuevaAccion {
                    meta: meta.clone(),
                    descripcion: descripcion.into(),
                    responsables: self.responsables(p),
                    recursos: recursos.into(),
                    costo: (costo > 0.0).then_some(costo),
                    inicio: Some(Fecha::from_naive(mas(dia, 7 + 7 * j as u64))),
                    fin: Some(Fecha::from_naive(limite)),
                };
                e.op(
                    0,
                    self.t(dia, 12, 30 + 3 * k as u32 + j as u32),
                    |doc, ctx| escuela::agregar_accion(doc, ctx, &id, &a),
                )?;
            }
        }
        Ok(())
    }

    /// New acuerdos of a session.
    fn acuerdos(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        m: &mut Memoria,
        sesion: &RecordId,
        dia: NaiveDate,
        n: usize,
    ) -> Result<()> {
        for k in 0..n {
            if m.acuerdos_usados.len() >= ACUERDOS.len() {
                return Ok(());
            }
            let mut i = self.az.sig() as usize % ACUERDOS.len();
            while !m.acuerdos_usados.insert(i) {
                i = (i + 1) % ACUERDOS.len();
            }
            let conflicto = p.conflicto && m.en_conflicto.is_none() && p.personas.len() > 1;
            let responsables = if conflicto {
                vec![p.personas[1].nombre.clone(), "Dirección".into()]
            } else {
                self.responsables(p)
            };
            let id = self.az.id();
            let a = NuevoAcuerdo {
                texto: ACUERDOS[i].into(),
                responsables,
                fecha_compromiso: Some(Fecha::from_naive(mas(dia, self.az.rango(10, 45)))),
                sesion_origen: Some(sesion.clone()),
            };
            e.op(0, self.t(dia, 13, 2 * k as u32), |doc, ctx| {
                escuela::agregar_acuerdo(doc, ctx, &id, &a)
            })?;
            if conflicto {
                m.en_conflicto = Some(id);
            }
        }
        Ok(())
    }

    /// At an ordinary session the director reviews the acuerdos and acciones nobody else
    /// answers for.
    fn revisar(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        m: &Memoria,
        sesion: &RecordId,
        dia: NaiveDate,
    ) -> Result<()> {
        let vista = e.escuela()?;
        let t = self.t(dia, 12, 0);
        for a in vista.acuerdos {
            if a.archivado
                || Self::dueno(p, &a.responsables) != 0
                || m.en_conflicto.as_ref().is_some_and(|k| k.as_str() == a.id)
                || dia_de(a.creado) >= dia
            {
                continue;
            }
            let x = self.az.real();
            let nuevo = match a.estado.as_str() {
                "pendiente" if x < 0.6 => EstadoAcuerdo::Cumplido,
                "pendiente" if x < 0.8 => EstadoAcuerdo::EnProceso,
                "pendiente" if x < 0.85 => EstadoAcuerdo::Cancelado,
                "en_proceso" if x < 0.7 => EstadoAcuerdo::Cumplido,
                _ => continue,
            };
            let revision = matches!(nuevo, EstadoAcuerdo::Cumplido | EstadoAcuerdo::Cancelado)
                .then_some(sesion);
            let id = RecordId::parse(&a.id)?;
            e.op(0, t, |doc, ctx| {
                escuela::estado_acuerdo(doc, ctx, &id, nuevo, revision)
            })?;
        }
        for a in vista.acciones {
            if a.archivado || Self::dueno(p, &a.responsables) != 0 || dia_de(a.creado) >= dia {
                continue;
            }
            if let Some(nuevo) = self.avance_accion(&a.estado) {
                let id = RecordId::parse(&a.id)?;
                e.op(0, t, |doc, ctx| {
                    escuela::estado_accion(doc, ctx, &id, nuevo)
                })?;
            }
        }
        Ok(())
    }

    fn avance_accion(&mut self, estado: &str) -> Option<EstadoAccion> {
        let x = self.az.real();
        match estado {
            "pendiente" if x < 0.5 => Some(EstadoAccion::EnProceso),
            "pendiente" if x < 0.56 => Some(EstadoAccion::Cancelada),
            "en_proceso" if x < 0.45 => Some(EstadoAccion::Realizada),
            _ => None,
        }
    }

    /// The nivel de logro of one or two metas, recorded at an ordinary session.
    fn logros(&mut self, e: &mut Equipo, m: &Memoria, dia: NaiveDate, numero: u64) -> Result<()> {
        if m.metas.is_empty() {
            return Ok(());
        }
        let mut metas = m.metas.clone();
        self.az.barajar(&mut metas);
        let n = self.az.rango(1, 2) as usize;
        for (k, (meta, _, limite)) in metas.into_iter().take(n).enumerate() {
            let x = self.az.real();
            let corto_plazo = limite < self.cal.ordinarias[3];
            let nivel = match numero {
                1 if x < 0.6 => NivelLogro::EscasoONulo,
                1 => NivelLogro::AvanceSignificativo,
                _ if x < 0.2 => NivelLogro::EscasoONulo,
                _ if x < 0.6 && !corto_plazo => NivelLogro::AvanceSignificativo,
                _ if x < 0.45 => NivelLogro::AvanceSignificativo,
                _ => NivelLogro::Cumplida,
            };
            let evidencia = EVIDENCIAS
                .iter()
                .find(|(n, _)| *n == nivel)
                .map(|(_, v)| *self.az.elegir(v))
                .unwrap_or_default();
            let id = self.az.id();
            e.op(0, self.t(dia, 14, k as u32), |doc, ctx| {
                escuela::registrar_logro(
                    doc,
                    ctx,
                    &id,
                    &meta,
                    nivel,
                    evidencia,
                    Fecha::from_naive(dia),
                )
            })?;
        }
        Ok(())
    }

    /// The concentrado of person `i`'s groups at the cortes that fall in the window.
    fn concentrados(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        i: usize,
        desde: Option<NaiveDate>,
        hasta: NaiveDate,
    ) -> Result<()> {
        let cortes = [
            (Corte::Diagnostico, self.cal.diagnostico, true),
            (Corte::Intermedio, self.cal.intermedio, p.intermedio),
        ];
        for (corte, dia, aplica) in cortes {
            if !aplica || !en(dia, desde, hasta) {
                continue;
            }
            for (k, g) in p.grupos.iter().filter(|g| g.titular == i).enumerate() {
                let valores = self.conteos(p.nivel, g, corte);
                let v: Vec<(&str, i64)> = valores.iter().map(|(k, v)| (*k, *v as i64)).collect();
                e.op(0, self.t(dia, 15, 3 * k as u32), |doc, ctx| {
                    escuela::concentrado_set(doc, ctx, g.grado, g.letra, corte, &v)
                })?;
            }
        }
        Ok(())
    }

    /// Believable counts of one group (counts only: no student data leaves the school).
    fn conteos(&mut self, nivel: Nivel, g: &Grupo, corte: Corte) -> Vec<(&'static str, u64)> {
        let n = g.alumnos;
        let parte = |a: f64, b: f64, az: &mut Azar| ((n as f64) * az.entre(a, b)).round() as u64;
        let az = &mut self.az;
        let intermedio = corte == Corte::Intermedio;
        let f = if intermedio { 0.75 } else { 1.0 };
        let mut v = vec![
            ("inscritos_inicio", n),
            ("apoyo_lectura", parte(0.15 * f, 0.45 * f, az)),
            ("apoyo_escritura", parte(0.15 * f, 0.5 * f, az)),
            ("apoyo_matematicas", parte(0.2 * f, 0.5 * f, az)),
            ("faltan_constantemente", parte(0.0, 0.15, az)),
            ("no_se_involucran", parte(0.0, 0.2 * f, az)),
            ("dificultad_relacionarse", parte(0.0, 0.12, az)),
        ];
        if intermedio && nivel != Nivel::Preescolar {
            // Averages of the first evaluation period, in bands (below 6: "no promovidos").
            let pesos = [
                az.entre(0.05, 0.18),
                az.entre(0.2, 0.35),
                az.entre(0.25, 0.4),
                az.entre(0.1, 0.25),
                az.entre(0.0, 0.08),
            ];
            let suma: f64 = pesos.iter().sum();
            let mut restantes = n;
            let claves = [
                "promedio_9_10",
                "promedio_8_9",
                "promedio_7_8",
                "promedio_6_7",
                "no_promovidos",
            ];
            for (k, w) in claves.iter().zip(pesos) {
                let c = (((n as f64) * w / suma).floor() as u64).min(restantes);
                restantes -= c;
                v.push((k, c));
            }
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn docente(
        &mut self,
        e: &mut Equipo,
        p: &Plan,
        i: usize,
        m: &Memoria,
        desde: Option<NaiveDate>,
        hasta: NaiveDate,
        ultima: bool,
    ) -> Result<()> {
        self.concentrados(e, p, i, desde, hasta)?;
        let Some(desde) = desde else {
            // First round: the laptop has never synced, so there is nothing else to update yet.
            return Ok(());
        };
        let vista = e.escuela()?;
        for a in vista.acuerdos {
            if a.archivado
                || Self::dueno(p, &a.responsables) != i
                || m.en_conflicto.as_ref().is_some_and(|k| k.as_str() == a.id)
            {
                continue;
            }
            let x = self.az.real();
            let nuevo = match a.estado.as_str() {
                "pendiente" if x < 0.3 => EstadoAcuerdo::EnProceso,
                "pendiente" if x < 0.85 => EstadoAcuerdo::Cumplido,
                "en_proceso" if x < 0.7 => EstadoAcuerdo::Cumplido,
                _ => continue,
            };
            let Some(dia) = self.dia(desde, hasta, mas(dia_de(a.creado), 3)) else {
                continue;
            };
            let id = RecordId::parse(&a.id)?;
            e.op(0, self.t(dia, 17, 0), |doc, ctx| {
                escuela::estado_acuerdo(doc, ctx, &id, nuevo, None)
            })?;
        }
        for a in vista.acciones {
            if a.archivado || Self::dueno(p, &a.responsables) != i {
                continue;
            }
            let Some(nuevo) = self.avance_accion(&a.estado) else {
                continue;
            };
            let Some(dia) = self.dia(desde, hasta, mas(dia_de(a.creado), 7)) else {
                continue;
            };
            let id = RecordId::parse(&a.id)?;
            e.op(0, self.t(dia, 17, 20), |doc, ctx| {
                escuela::estado_accion(doc, ctx, &id, nuevo)
            })?;
        }
        if ultima
            && i == 1
            && let Some(k) = &m.en_conflicto
        {
            e.op(0, self.t(hasta, 11, 40), |doc, ctx| {
                escuela::estado_acuerdo(doc, ctx, k, EstadoAcuerdo::Cumplido, None)
            })?;
        }
        Ok(())
    }

    /// The zone council's own sessions and acuerdos in the zone document, written by the
    /// supervisor and synced with the real clock.
    async fn supervision(
        &mut self,
        zona: &DocInfo,
        sup: &Persona,
        atp: &Persona,
        token: &str,
        directores: &[&str],
    ) -> Result<()> {
        let mut e = Equipo::nuevo(
            &self.tmp.join(&sup.usuario),
            &sup.nombre,
            token,
            std::slice::from_ref(zona),
        )
        .await?;
        let mut previos: Vec<RecordId> = Vec::new();
        let ordinarias = self.cal.ordinarias;
        for (k, base) in ordinarias.iter().enumerate().take(CTZ.len()) {
            let dia = mas(*base, 6);
            if dia > self.hoy {
                break;
            }
            let sid = self.az.id();
            let mut asistentes = vec![sup.nombre.clone(), atp.nombre.clone()];
            asistentes.extend(
                directores
                    .iter()
                    .filter(|_| self.az.prob(0.8))
                    .map(|d| d.to_string()),
            );
            let s = NuevaSesion {
                fase: Fase::Ordinaria,
                numero: k as u64 + 1,
                fecha: Fecha::from_naive(dia),
                asistentes,
                proposito: CTZ[k].0.into(),
                productos: CTZ[k].1.into(),
                practicas: String::new(),
            };
            e.op(0, self.t(dia, 10, 0), |doc, ctx| {
                escuela::agregar_sesion(doc, ctx, &sid, &s)
            })?;
            for a in std::mem::take(&mut previos) {
                if self.az.prob(0.6) {
                    e.op(0, self.t(dia, 10, 30), |doc, ctx| {
                        escuela::estado_acuerdo(doc, ctx, &a, EstadoAcuerdo::Cumplido, Some(&sid))
                    })?;
                }
            }
            let (texto, responsable) = ACUERDOS_CTZ[k % ACUERDOS_CTZ.len()];
            let id = self.az.id();
            let a = NuevoAcuerdo {
                texto: texto.into(),
                responsables: vec![responsable.into()],
                fecha_compromiso: Some(Fecha::from_naive(mas(dia, 21))),
                sesion_origen: Some(sid.clone()),
            };
            e.op(0, self.t(dia, 12, 0), |doc, ctx| {
                escuela::agregar_acuerdo(doc, ctx, &id, &a)
            })?;
            previos.push(id);
        }
        self.base.volver();
        e.sincronizar(self.url).await?;
        e.store.close().await;
        eprintln!(
            "demo: la supervisión registró {} cambio(s) en el documento de la zona.",
            e.cambios
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_valid_and_reproducible() {
        let (a, sup, _) = planear(&mut Azar(7)).unwrap();
        let (b, sup_b, _) = planear(&mut Azar(7)).unwrap();
        assert_eq!(a.len(), 24);
        assert_eq!(sup.nombre, sup_b.nombre);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.personas[0].nombre, y.personas[0].nombre);
            assert_eq!(x.dias_sin_sync, y.dias_sin_sync);
            assert_ne!(x.nivel, Nivel::Otro, "{}", x.cct);
            assert!(x.grupos.iter().all(|g| g.titular < x.personas.len()));
        }
        assert_eq!(a.iter().filter(|p| p.conflicto).count(), 2);
        assert_eq!(a.iter().filter(|p| p.dias_sin_sync >= 20).count(), 5);
        assert_eq!(a.iter().filter(|p| p.practica.is_some()).count(), 5);
        assert!(a.iter().all(|p| !p.conflicto || p.dias_sin_sync == 0));
    }

    #[test]
    fn the_calendar_of_a_cycle() {
        let c = Calendario::de(CicloEscolar::parse("2025-2026").unwrap());
        assert_eq!(c.intensiva[0], fecha(2025, 8, 25));
        assert_eq!(c.intensiva[0].weekday(), chrono::Weekday::Mon);
        assert_eq!(c.intensiva[4], fecha(2025, 8, 29));
        assert_eq!(c.ordinarias[0], fecha(2025, 9, 26));
        assert_eq!(c.ordinarias[7], fecha(2026, 6, 26));
        assert!(c.diagnostico < c.ordinarias[0] && c.intermedio < c.ordinarias[2]);
    }

    #[test]
    fn semilla_and_hoy_are_checked() {
        assert_eq!(semilla(None).unwrap(), SEMILLA);
        assert_eq!(semilla(Some("42")).unwrap(), 42);
        let e = semilla(Some("abc")).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("semilla"), "{e}");
        assert_eq!(hoy(Some("2026-03-20")).unwrap(), Some(fecha(2026, 3, 20)));
        assert!(hoy(Some("2026-02-30")).unwrap_err().is_bad_input());
    }
}
