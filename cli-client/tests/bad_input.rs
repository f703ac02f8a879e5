//! Bad input is refused with exit code 2, a Spanish message that names the field and the
//! accepted form, and nothing written. Each test runs the real `bitacora` binary in its own
//! temporary data directory and compares the school before and after (`export json` plus the
//! length of `historial`). A damaged database is "other failure" (exit code 1) and is left
//! byte for byte as it was.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use bitacora_core::bundle::Bundle;
use serde_json::Value;
use tempfile::TempDir;

const CCT: &str = "07DPR0123X";
const OTRA_CCT: &str = "07DPR0999Z";
const CICLO: &str = "2025-2026";
const FORMA_FECHA: &str = "AAAA-MM-DD o DD/MM/AAAA";

// ---------------------------------------------------------------------------------------------
// Helpers

/// The real binary, pointed at `dir`, never opening an interactive editor.
fn bitacora(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("bitacora").expect("the bitacora binary is built");
    c.arg("--data-dir")
        .arg(dir)
        .env_remove("BITACORA_DATA_DIR")
        .env("EDITOR", "false")
        .env("VISUAL", "false");
    c
}

fn init_cct(dir: &Path, cct: &str) {
    bitacora(dir)
        .args([
            "--ciclo",
            CICLO,
            "init",
            "--cct",
            cct,
            "--nombre",
            "Escuela Benito Juárez",
        ])
        .args(["--zona", "07FIZ0014", "--autor", "Ana"])
        .assert()
        .success();
}

fn init(dir: &Path) {
    init_cct(dir, CCT);
}

/// A fresh data directory with the school `CCT` initialised.
fn escuela() -> TempDir {
    let t = tempfile::tempdir().unwrap();
    init(t.path());
    t
}

/// Runs a command that must succeed and returns its standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = bitacora(dir)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// Runs a command with `--json` and parses what it prints.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = ok(dir, &[&["--json"], args].concat());
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?} --json printed invalid JSON ({e}):\n{out}"))
}

/// The id of the last record of a `--json` listing.
fn ultimo_id(dir: &Path, listado: &[&str]) -> String {
    let v = json(dir, listado);
    v.as_array()
        .and_then(|a| a.last())
        .expect("a non-empty listing")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Everything a command could have written: the whole document and the number of changes.
#[derive(Debug, PartialEq)]
struct Estado {
    documento: Value,
    cambios: usize,
}

fn estado(dir: &Path) -> Estado {
    Estado {
        documento: json(dir, &["export", "json"]),
        cambios: json(dir, &["historial"]).as_array().unwrap().len(),
    }
}

/// Runs `args`, which must fail with `codigo` and print nothing on stdout and every one of
/// `frases` on stderr. Returns stderr.
fn falla(dir: &Path, args: &[&str], codigo: i32, frases: &[&str]) -> String {
    let out = bitacora(dir)
        .args(args)
        .assert()
        .code(codigo)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    for f in frases {
        assert!(
            stderr.contains(f),
            "{args:?}: stderr does not say «{f}»:\n{stderr}"
        );
    }
    stderr
}

/// Like [`falla`] with exit code 2, on an initialised school, checking that nothing changed.
fn rechaza(dir: &Path, args: &[&str], frases: &[&str]) {
    let antes = estado(dir);
    falla(dir, args, 2, frases);
    assert_eq!(estado(dir), antes, "{args:?} changed the school");
}

/// A school with one record of each kind, and the ids to refer to them.
struct Datos {
    dir: TempDir,
    acuerdo: String,
    sesion: String,
    objetivo: String,
    meta: String,
    accion: String,
}

impl Datos {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn escuela_con_datos() -> Datos {
    let dir = escuela();
    let d = dir.path();
    let acuerdo = json(
        d,
        &[
            "acuerdo",
            "add",
            "--texto",
            "Leer 20 minutos diarios",
            "--responsable",
            "Ana",
        ],
    );
    let acuerdo = acuerdo["id"].as_str().unwrap().to_string();
    ok(
        d,
        &[
            "sesion",
            "add",
            "--fase",
            "ordinaria",
            "--numero",
            "1",
            "--fecha",
            "2025-09-26",
        ],
    );
    let sesion = ultimo_id(d, &["sesion", "list"]);
    ok(
        d,
        &[
            "pemc",
            "objetivo",
            "add",
            "--texto",
            "Mejorar la lectura",
            "--ambito",
            "aprovechamiento_asistencia",
        ],
    );
    let objetivo = ultimo_id(d, &["pemc", "objetivo", "list"]);
    ok(
        d,
        &[
            "pemc",
            "meta",
            "add",
            "--objetivo",
            &objetivo,
            "--descripcion",
            "90 % lee con fluidez",
        ],
    );
    let meta = ultimo_id(d, &["pemc", "meta", "list"]);
    ok(
        d,
        &[
            "pemc",
            "accion",
            "add",
            "--meta",
            &meta,
            "--descripcion",
            "Círculo de lectura",
        ],
    );
    let accion = ultimo_id(d, &["pemc", "accion", "list"]);
    Datos {
        dir,
        acuerdo,
        sesion,
        objetivo,
        meta,
        accion,
    }
}

/// `grupo concentrado set` of a group at the diagnóstico cut, with these counts.
fn concentrado<'a>(grado: &'a str, grupo: &'a str, conteos: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "grupo",
        "concentrado",
        "set",
        "--grado",
        grado,
        "--grupo",
        grupo,
    ];
    v.extend(["--corte", "diagnostico"]);
    v.extend(conteos);
    v
}

/// Every file of a directory with its bytes, to show a failed command touched nothing.
fn archivos(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

/// A bundle exported from `dir`, as bytes.
fn exportar_paquete(dir: &Path) -> Vec<u8> {
    let salida = dir.join("paquete.bitacora");
    ok(
        dir,
        &["bundle", "export", "--salida", salida.to_str().unwrap()],
    );
    std::fs::read(salida).unwrap()
}

/// Writes `bytes` as a file in a fresh place and returns its path (kept alive by the TempDir).
fn archivo(bytes: &[u8]) -> (TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("recibido.bitacora");
    std::fs::write(&p, bytes).unwrap();
    (t, p)
}

// ---------------------------------------------------------------------------------------------
// init: CCT and ciclo

#[test]
fn init_rechaza_cct_invalido_sin_crear_el_directorio() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("datos");
    for cct in [
        "07DPR0123",
        "07DPR0123XX",
        "33DPR0123X",
        "00DPR0123X",
        "07D1R0123X",
        "07DPR01A3X",
        "07DPR01234",
        "",
    ] {
        let args = [
            "--ciclo",
            CICLO,
            "init",
            "--cct",
            cct,
            "--nombre",
            "Escuela",
            "--zona",
            "07FIZ0014",
        ];
        falla(
            &dir,
            &args,
            2,
            &[
                &format!("CCT: «{cct}» no es válido;"),
                "10 caracteres",
                "p. ej. 07DPR0123X",
            ],
        );
        assert!(
            !dir.exists(),
            "init --cct {cct:?} created the data directory"
        );
    }
}

#[test]
fn init_rechaza_ciclo_invalido_sin_crear_el_directorio() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("datos");
    for ciclo in [
        "2025-2027",
        "2026-2025",
        "2025",
        "25-26",
        "basura",
        "1999-2000",
    ] {
        let args = [
            "--ciclo",
            ciclo,
            "init",
            "--cct",
            CCT,
            "--nombre",
            "Escuela",
            "--zona",
            "07FIZ0014",
        ];
        falla(
            &dir,
            &args,
            2,
            &[
                &format!("ciclo escolar: «{ciclo}» no es válido;"),
                "AAAA-AAAA",
                "años consecutivos",
            ],
        );
        assert!(
            !dir.exists(),
            "init --ciclo {ciclo:?} created the data directory"
        );
    }
    falla(
        &dir,
        &[
            "init",
            "--cct",
            CCT,
            "--nombre",
            "Escuela",
            "--zona",
            "07FIZ0014",
        ],
        2,
        &["falta --ciclo", "2025-2026"],
    );
    assert!(!dir.exists());
}

#[test]
fn ciclo_global_invalido_en_una_escuela() {
    let t = escuela();
    rechaza(
        t.path(),
        &["--ciclo", "2025-2027", "acuerdo", "list"],
        &["ciclo escolar: «2025-2027» no es válido", "AAAA-AAAA"],
    );
    rechaza(
        t.path(),
        &["--ciclo", "2024-2025", "acuerdo", "add", "--texto", "x"],
        &["no tiene el ciclo 2024-2025", "bitacora init"],
    );
}

#[test]
fn init_de_otra_escuela_en_un_directorio_ya_iniciado() {
    let t = escuela();
    let args = [
        "--ciclo",
        CICLO,
        "init",
        "--cct",
        OTRA_CCT,
        "--nombre",
        "Otra",
        "--zona",
        "07FIZ0014",
    ];
    rechaza(
        t.path(),
        &args,
        &[
            &format!("ya pertenece a la escuela {CCT}"),
            "--data-dir",
            OTRA_CCT,
        ],
    );
    assert_eq!(json(t.path(), &["resumen"])["cct"], CCT);
}

// ---------------------------------------------------------------------------------------------
// Before init, and a damaged database

#[test]
fn comandos_antes_de_init_piden_ejecutar_init_sin_crear_nada() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("datos");
    let comandos: &[&[&str]] = &[
        &["acuerdo", "list"],
        &["acuerdo", "add", "--texto", "Leer diario"],
        &["export", "json"],
        &["resumen"],
        &["bundle", "import", "paquete.bitacora"],
    ];
    for args in comandos {
        falla(
            &dir,
            args,
            2,
            &["no tiene escuela", "ejecute primero `bitacora init"],
        );
        assert!(!dir.exists(), "{args:?} created the data directory");
    }
    // An existing but empty directory stays empty.
    std::fs::create_dir(&dir).unwrap();
    falla(&dir, &["acuerdo", "list"], 2, &["bitacora init"]);
    assert!(
        archivos(&dir).is_empty(),
        "a database was created in the empty directory"
    );
}

#[test]
fn base_de_datos_danada_falla_con_1_y_no_se_toca() {
    let basura: &[u8] = b"esto no es una base de datos, son las notas de la maestra";
    let mut sqlite_roto = b"SQLite format 3\0".to_vec();
    sqlite_roto.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    for contenido in [basura, &sqlite_roto] {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("bitacora.db"), contenido).unwrap();
        let antes = archivos(t.path());
        let comandos: &[&[&str]] = &[
            &["acuerdo", "list"],
            &["acuerdo", "add", "--texto", "Leer diario"],
            &[
                "--ciclo",
                CICLO,
                "init",
                "--cct",
                CCT,
                "--nombre",
                "Escuela",
                "--zona",
                "07FIZ0014",
            ],
        ];
        for args in comandos {
            falla(
                t.path(),
                args,
                1,
                &[
                    "bitacora.db",
                    "está dañado",
                    "no se modificó (detalle técnico: ",
                ],
            );
            assert_eq!(
                archivos(t.path()),
                antes,
                "{args:?} touched the damaged database"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

#[test]
fn fecha_compromiso_invalida() {
    let d = escuela_con_datos();
    for f in [
        "2026-02-30",
        "mañana",
        "30/02/2026",
        "2026/03/27",
        "27-03-2026",
    ] {
        let campo = format!("fecha compromiso: «{f}» no es válido;");
        rechaza(
            d.path(),
            &["acuerdo", "add", "--texto", "Leer", "--fecha-compromiso", f],
            &[&campo, FORMA_FECHA],
        );
        rechaza(
            d.path(),
            &["acuerdo", "edit", &d.acuerdo, "--fecha-compromiso", f],
            &[&campo, FORMA_FECHA],
        );
    }
}

#[test]
fn fecha_de_sesion_invalida() {
    let d = escuela_con_datos();
    for f in ["2026-02-30", "mañana", ""] {
        let args = [
            "sesion",
            "add",
            "--fase",
            "ordinaria",
            "--numero",
            "2",
            "--fecha",
            f,
        ];
        rechaza(
            d.path(),
            &args,
            &[&format!("error: fecha: «{f}» no es válido;"), FORMA_FECHA],
        );
    }
}

#[test]
fn fecha_limite_de_meta_invalida() {
    let d = escuela_con_datos();
    for f in ["2026-02-30", "mañana"] {
        let args = [
            "pemc",
            "meta",
            "add",
            "--objetivo",
            &d.objetivo,
            "--descripcion",
            "Meta",
            "--fecha-limite",
            f,
        ];
        rechaza(
            d.path(),
            &args,
            &[&format!("fecha límite: «{f}» no es válido;"), FORMA_FECHA],
        );
    }
}

#[test]
fn fechas_de_accion_logro_y_resumen_nombran_su_campo() {
    let d = escuela_con_datos();
    let accion = |opcion: &'static str| {
        [
            "pemc",
            "accion",
            "add",
            "--meta",
            d.meta.as_str(),
            "--descripcion",
            "Acción",
            opcion,
            "2026-02-30",
        ]
    };
    rechaza(
        d.path(),
        &accion("--inicio"),
        &["fecha de inicio: «2026-02-30» no es válido;", FORMA_FECHA],
    );
    rechaza(
        d.path(),
        &accion("--fin"),
        &["fecha de fin: «2026-02-30» no es válido;", FORMA_FECHA],
    );
    rechaza(
        d.path(),
        &[
            "pemc", "meta", "logro", &d.meta, "--nivel", "cumplida", "--fecha", "mañana",
        ],
        &["error: fecha: «mañana» no es válido;", FORMA_FECHA],
    );
    rechaza(
        d.path(),
        &["resumen", "--fecha", "31/02/2026"],
        &["error: fecha: «31/02/2026» no es válido;", FORMA_FECHA],
    );
}

// ---------------------------------------------------------------------------------------------
// Ids that do not exist

#[test]
fn acuerdo_inexistente() {
    let d = escuela_con_datos();
    let no_existe = ["no existe acuerdo con id «zzzz999999»"];
    rechaza(d.path(), &["acuerdo", "show", "zzzz999999"], &no_existe);
    rechaza(
        d.path(),
        &["acuerdo", "edit", "zzzz999999", "--texto", "Nuevo texto"],
        &no_existe,
    );
    rechaza(d.path(), &["acuerdo", "edit", "zzzz999999"], &no_existe);
    rechaza(
        d.path(),
        &["acuerdo", "estado", "zzzz999999", "cumplido"],
        &no_existe,
    );
    rechaza(d.path(), &["acuerdo", "archivar", "zzzz999999"], &no_existe);
    // An id of another kind of record is not an acuerdo either.
    rechaza(
        d.path(),
        &["acuerdo", "show", &d.sesion],
        &["no existe acuerdo"],
    );
}

#[test]
fn sesion_de_revision_inexistente() {
    let d = escuela_con_datos();
    let args = [
        "acuerdo",
        "estado",
        &d.acuerdo,
        "cumplido",
        "--sesion-revision",
        "zzzz999999",
    ];
    rechaza(d.path(), &args, &["no existe sesión con id «zzzz999999»"]);
}

#[test]
fn meta_con_objetivo_inexistente() {
    let d = escuela_con_datos();
    let args = [
        "pemc",
        "meta",
        "add",
        "--objetivo",
        "zzzz999999",
        "--descripcion",
        "Meta",
    ];
    rechaza(d.path(), &args, &["no existe objetivo con id «zzzz999999»"]);
    // A meta's id is not an objetivo's.
    rechaza(
        d.path(),
        &[
            "pemc",
            "meta",
            "add",
            "--objetivo",
            &d.meta,
            "--descripcion",
            "Meta",
        ],
        &["no existe objetivo"],
    );
}

#[test]
fn accion_con_meta_inexistente() {
    let d = escuela_con_datos();
    let args = [
        "pemc",
        "accion",
        "add",
        "--meta",
        "zzzz999999",
        "--descripcion",
        "Acción",
    ];
    rechaza(d.path(), &args, &["no existe meta con id «zzzz999999»"]);
    rechaza(
        d.path(),
        &["pemc", "accion", "estado", "zzzz999999", "realizada"],
        &["no existe acción"],
    );
    rechaza(
        d.path(),
        &["pemc", "meta", "logro", "zzzz999999", "--nivel", "cumplida"],
        &["no existe meta"],
    );
}

#[test]
fn id_con_caracteres_no_validos() {
    let d = escuela_con_datos();
    rechaza(
        d.path(),
        &["acuerdo", "estado", "../etc", "cumplido"],
        &["id: «../etc» no es válido;", "letras y dígitos"],
    );
}

// ---------------------------------------------------------------------------------------------
// Ámbitos and statuses

#[test]
fn ambito_desconocido() {
    let d = escuela_con_datos();
    let acepta = ["formacion_docente", "carga_administrativa"];
    rechaza(
        d.path(),
        &[
            "pemc",
            "objetivo",
            "add",
            "--texto",
            "Leer más",
            "--ambito",
            "lectura",
        ],
        &[&["ámbito: «lectura» no es válido;", "acepta:"], &acepta[..]].concat(),
    );
    // One unknown ámbito among known ones refuses the whole objetivo.
    rechaza(
        d.path(),
        &[
            "pemc",
            "objetivo",
            "add",
            "--texto",
            "Leer más",
            "--ambito",
            "formacion_docente",
            "--ambito",
            "x",
        ],
        &["ámbito: «x» no es válido"],
    );
    rechaza(
        d.path(),
        &[
            "pemc",
            "diagnostico",
            "set",
            "--ambito",
            "x",
            "--texto",
            "Diagnóstico",
        ],
        &[&["ámbito: «x» no es válido;", "acepta:"], &acepta[..]].concat(),
    );
}

#[test]
fn estado_de_acuerdo_invalido() {
    let d = escuela_con_datos();
    rechaza(
        d.path(),
        &["acuerdo", "estado", &d.acuerdo, "bogus"],
        &[
            "estado del acuerdo: «bogus» no es válido;",
            "pendiente en_proceso cumplido cancelado",
        ],
    );
    rechaza(
        d.path(),
        &["acuerdo", "list", "--estado", "hecho"],
        &["estado del acuerdo: «hecho» no es válido"],
    );
}

#[test]
fn estado_de_accion_invalido() {
    let d = escuela_con_datos();
    rechaza(
        d.path(),
        &["pemc", "accion", "estado", &d.accion, "terminada"],
        &[
            "estado de la acción: «terminada» no es válido;",
            "pendiente en_proceso realizada cancelada",
        ],
    );
}

#[test]
fn nivel_de_logro_invalido() {
    let d = escuela_con_datos();
    rechaza(
        d.path(),
        &["pemc", "meta", "logro", &d.meta, "--nivel", "excelente"],
        &[
            "nivel de logro: «excelente» no es válido;",
            "cumplida avance_significativo escaso_o_nulo",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Concentrado por grupo

#[test]
fn concentrado_conteos_negativos() {
    let d = escuela_con_datos();
    // The message names the option as typed, not the model's key (apoyo_lectura).
    let casos: [(&str, &[&str]); 3] = [
        ("--inscritos-inicio", &["--inscritos-inicio", "-5"]),
        (
            "--inscritos-fin",
            &["--inscritos-inicio", "20", "--inscritos-fin", "-1"],
        ),
        (
            "--apoyo-lectura",
            &["--inscritos-inicio", "20", "--apoyo-lectura", "-1"],
        ),
    ];
    for (opcion, conteos) in casos {
        let args = concentrado("3", "A", conteos);
        let antes = estado(d.path());
        let err = falla(
            d.path(),
            &args,
            2,
            &[
                &format!("error: {opcion}: «-"),
                "» no es válido;",
                "0 o mayor",
            ],
        );
        assert!(!err.contains('_'), "names the model's key: {err}");
        assert_eq!(estado(d.path()), antes, "{args:?} changed the school");
    }
}

#[test]
fn concentrado_apoyo_mayor_que_la_inscripcion() {
    let d = escuela_con_datos();
    // In the same command.
    let args = concentrado(
        "3",
        "A",
        &["--inscritos-inicio", "20", "--apoyo-lectura", "21"],
    );
    rechaza(
        d.path(),
        &args,
        &[
            "datos inconsistentes",
            "21 alumnos",
            "más que los 20 alumnos del grupo 3A",
        ],
    );
    // Against an enrolment recorded before.
    ok(
        d.path(),
        &concentrado(
            "3",
            "A",
            &["--inscritos-inicio", "20", "--apoyo-lectura", "8"],
        ),
    );
    let args = concentrado("3", "A", &["--apoyo-matematicas", "25"]);
    rechaza(
        d.path(),
        &args,
        &["datos inconsistentes", "más que los 20 alumnos"],
    );
    // Lowering the enrolment below a count already recorded.
    let args = concentrado("3", "A", &["--inscritos-inicio", "5"]);
    rechaza(
        d.path(),
        &args,
        &["datos inconsistentes", "8 alumnos", "más que los 5 alumnos"],
    );
}

#[test]
fn concentrado_categorias_suman_mas_que_la_inscripcion() {
    let d = escuela_con_datos();
    let args = concentrado(
        "3",
        "A",
        &[
            "--inscritos-fin",
            "20",
            "--promedio-9-10",
            "10",
            "--promedio-8-9",
            "8",
            "--no-promovidos",
            "5",
        ],
    );
    rechaza(
        d.path(),
        &args,
        &["datos inconsistentes", "suman 23", "más que los 20 alumnos"],
    );
}

#[test]
fn concentrado_conteos_sin_inscripcion() {
    let d = escuela_con_datos();
    let args = concentrado("4", "B", &["--apoyo-lectura", "4"]);
    rechaza(
        d.path(),
        &args,
        &[
            "datos inconsistentes",
            "registre primero el número de alumnos",
            "--inscritos-inicio",
        ],
    );
    let antes = estado(d.path());
    let err = falla(d.path(), &concentrado("4", "B", &[]), 2, &[]);
    assert_eq!(
        err,
        "error: indique al menos un conteo (p. ej. --inscritos-inicio 30)\n"
    );
    assert_eq!(estado(d.path()), antes);
}

#[test]
fn concentrado_grado_y_grupo_invalidos() {
    let d = escuela_con_datos();
    let args = concentrado("tres", "A", &["--inscritos-inicio", "20"]);
    rechaza(
        d.path(),
        &args,
        &[
            "valor inválido «tres» para --grado",
            "se espera un número entero",
        ],
    );
    let args = concentrado("9", "A", &["--inscritos-inicio", "20"]);
    rechaza(d.path(), &args, &["grado: «9» no es válido;", "de 1 a 6"]);
    let args = concentrado("3", "A1", &["--inscritos-inicio", "20"]);
    rechaza(
        d.path(),
        &args,
        &["grupo: «A1» no es válido;", "la letra del grupo"],
    );
    let args = concentrado("3", "A", &["--apoyo-lectura", "dos"]);
    rechaza(
        d.path(),
        &args,
        &["valor inválido «dos» para --apoyo-lectura", "número entero"],
    );
    let args = [
        "grupo",
        "concentrado",
        "set",
        "--grado",
        "3",
        "--grupo",
        "A",
        "--corte",
        "final",
        "--inscritos-inicio",
        "20",
    ];
    rechaza(
        d.path(),
        &args,
        &[
            "corte: «final» no es válido;",
            "diagnostico intermedio cierre",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Empty texts

#[test]
fn acuerdo_con_texto_vacio() {
    let d = escuela_con_datos();
    for texto in ["", "   ", "\n\t"] {
        rechaza(
            d.path(),
            &["acuerdo", "add", "--texto", texto],
            &[
                "texto del acuerdo: «",
                "» no es válido; no puede estar vacío",
            ],
        );
        rechaza(
            d.path(),
            &["acuerdo", "edit", &d.acuerdo, "--texto", texto],
            &[
                "texto del acuerdo: «",
                "» no es válido; no puede estar vacío",
            ],
        );
    }
    rechaza(
        d.path(),
        &["acuerdo", "add", "--texto", "Leer", "--responsable", " "],
        &["responsable: « » no es válido;", "de 1 a 120 caracteres"],
    );
}

// ---------------------------------------------------------------------------------------------
// Bundles

#[test]
fn paquete_danado_o_truncado() {
    let d = escuela_con_datos();
    // A bundle of this same school, from a second device, so that applying it would change
    // something.
    let otro_equipo = escuela();
    ok(
        otro_equipo.path(),
        &["acuerdo", "add", "--texto", "Llegó por USB"],
    );
    let bueno = exportar_paquete(otro_equipo.path());

    let mut volteado = bueno.clone();
    let mitad = volteado.len() / 2;
    volteado[mitad] ^= 0x40;
    let casos: Vec<(&str, Vec<u8>, &str)> = vec![
        ("vacío", Vec::new(), "no es un paquete de Bitácora"),
        (
            "texto",
            b"hola, soy un archivo de texto".to_vec(),
            "no es un paquete de Bitácora",
        ),
        (
            "solo la cabecera mágica",
            bueno[..20].to_vec(),
            "incompleto o dañado",
        ),
        (
            "truncado a la mitad",
            bueno[..bueno.len() / 2].to_vec(),
            "incompleto o dañado",
        ),
        (
            "sin el último byte",
            bueno[..bueno.len() - 1].to_vec(),
            "incompleto o dañado",
        ),
        ("un byte cambiado", volteado, "incompleto o dañado"),
    ];
    for (nombre, bytes, frase) in casos {
        let (_t, p) = archivo(&bytes);
        let antes = estado(d.path());
        let err = falla(
            d.path(),
            &["bundle", "import", p.to_str().unwrap()],
            2,
            &[frase],
        );
        assert_eq!(
            estado(d.path()),
            antes,
            "bundle {nombre} changed the school: {err}"
        );
    }

    // The intact bundle does apply: the cases above would have been seen.
    let (_t, p) = archivo(&bueno);
    ok(d.path(), &["bundle", "import", p.to_str().unwrap()]);
    assert!(ok(d.path(), &["acuerdo", "list"]).contains("Llegó por USB"));
}

/// A bundle whose envelope is intact (valid checksum, sizes that add up) but whose automerge
/// payload is damaged, as a buggy writer could produce.
#[test]
fn paquete_con_suma_valida_pero_datos_danados() {
    let d = escuela_con_datos();
    let otro_equipo = escuela();
    ok(
        otro_equipo.path(),
        &["acuerdo", "add", "--texto", "Llegó por USB"],
    );
    let bueno = Bundle::decode(&exportar_paquete(otro_equipo.path())).unwrap();

    let mut truncado = bueno.clone();
    let n = truncado.payloads[0].len();
    truncado.payloads[0].truncate(n - n / 3);
    truncado.header.documentos[0].bytes = truncado.payloads[0].len() as u64;
    let mut volteado = bueno.clone();
    let n = volteado.payloads[0].len();
    volteado.payloads[0][n - 10] ^= 0x40;

    for b in [truncado, volteado] {
        let (_t, p) = archivo(&b.encode());
        rechaza(
            d.path(),
            &["bundle", "import", p.to_str().unwrap()],
            &["incompleto o dañado"],
        );
    }
}

#[test]
fn paquete_que_no_existe_o_no_es_un_archivo() {
    let d = escuela_con_datos();
    let t = tempfile::tempdir().unwrap();
    let no_existe = t.path().join("no-existe.bitacora");
    let err = falla(
        d.path(),
        &["bundle", "import", no_existe.to_str().unwrap()],
        2,
        &[&format!("no existe el archivo {}", no_existe.display())],
    );
    assert!(!err.contains("os error"), "English OS message: {err}");
    let err = falla(
        d.path(),
        &["bundle", "import", t.path().to_str().unwrap()],
        2,
        &["no se pudo leer", "es un directorio"],
    );
    assert!(!err.contains("os error"), "English OS message: {err}");
    // Neither created anything.
    assert!(archivos(t.path()).is_empty());
    rechaza(
        d.path(),
        &["bundle", "import", no_existe.to_str().unwrap()],
        &["no existe el archivo"],
    );
}

#[test]
fn paquete_de_otra_escuela() {
    let d = escuela_con_datos();
    let otra = tempfile::tempdir().unwrap();
    init_cct(otra.path(), OTRA_CCT);
    ok(
        otra.path(),
        &["acuerdo", "add", "--texto", "Acuerdo de la otra escuela"],
    );
    let (_t, p) = archivo(&exportar_paquete(otra.path()));
    rechaza(
        d.path(),
        &["bundle", "import", p.to_str().unwrap()],
        &[
            OTRA_CCT,
            "no corresponde a este equipo",
            "no se aplicó nada",
        ],
    );
}

#[test]
fn paquete_mixto_con_un_documento_ajeno_no_aplica_nada() {
    let d = escuela_con_datos();
    let otro_equipo = escuela();
    ok(
        otro_equipo.path(),
        &["acuerdo", "add", "--texto", "Llegó por USB"],
    );
    let otra = tempfile::tempdir().unwrap();
    init_cct(otra.path(), OTRA_CCT);
    // This school's document first, then another school's: the first must not be applied.
    let mut b = Bundle::decode(&exportar_paquete(otro_equipo.path())).unwrap();
    let ajeno = Bundle::decode(&exportar_paquete(otra.path())).unwrap();
    b.header.documentos.extend(ajeno.header.documentos);
    b.payloads.extend(ajeno.payloads);
    let (_t, p) = archivo(&b.encode());
    rechaza(
        d.path(),
        &["bundle", "import", p.to_str().unwrap()],
        &[OTRA_CCT, "no se aplicó nada"],
    );
}

#[test]
fn paquete_ajeno_disfrazado_de_esta_escuela() {
    let d = escuela_con_datos();
    let otra = tempfile::tempdir().unwrap();
    init_cct(otra.path(), OTRA_CCT);
    let mut b = Bundle::decode(&exportar_paquete(otra.path())).unwrap();
    b.header.documentos[0].owner = CCT.to_string();
    let (_t, p) = archivo(&b.encode());
    rechaza(
        d.path(),
        &["bundle", "import", p.to_str().unwrap()],
        &[
            "incompleto o dañado",
            "el id no corresponde a su escuela o zona y ciclo",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Usage errors found by clap, said in Spanish

#[test]
fn opcion_repetida() {
    let d = escuela_con_datos();
    for (args, opcion) in [
        (
            &["acuerdo", "add", "--texto", "Leer", "--texto", "Escribir"][..],
            "--texto",
        ),
        (&["--json", "--json", "acuerdo", "list"][..], "--json"),
    ] {
        let antes = estado(d.path());
        let err = falla(
            d.path(),
            args,
            2,
            &[
                &format!("la opción {opcion} se indicó más de una vez"),
                "--help",
            ],
        );
        assert!(!err.contains("cannot be used"), "English: {err}");
        assert!(!err.contains('<'), "shows clap's placeholder: {err}");
        assert_eq!(estado(d.path()), antes, "{args:?} changed the school");
    }
}

// ---------------------------------------------------------------------------------------------
// Happy path: --json on the query commands

#[test]
fn json_de_consultas_es_valido() {
    let d = escuela_con_datos();
    let p = d.path();
    ok(
        p,
        &concentrado(
            "3",
            "A",
            &["--inscritos-inicio", "20", "--apoyo-lectura", "3"],
        ),
    );
    ok(
        p,
        &[
            "pemc",
            "meta",
            "logro",
            &d.meta,
            "--nivel",
            "avance_significativo",
            "--fecha",
            "2026-01-15",
        ],
    );

    let listas: &[(&[&str], &str)] = &[
        (&["acuerdo", "list"], &d.acuerdo),
        (&["sesion", "list"], &d.sesion),
        (&["pemc", "objetivo", "list"], &d.objetivo),
        (&["pemc", "meta", "list"], &d.meta),
        (&["pemc", "accion", "list"], &d.accion),
    ];
    for (args, id) in listas {
        let v = json(p, args);
        let ids: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [*id], "{args:?}");
    }

    let a = json(p, &["acuerdo", "show", &d.acuerdo]);
    assert_eq!(a["texto"], "Leer 20 minutos diarios");
    assert_eq!(a["estado"], "pendiente");
    assert_eq!(a["responsables"], serde_json::json!(["Ana"]));
    let s = json(p, &["sesion", "show", &d.sesion]);
    assert_eq!(
        (s["fase"].as_str(), s["fecha"].as_str()),
        (Some("ordinaria"), Some("2025-09-26"))
    );
    assert_eq!(
        json(p, &["pemc", "meta", "list"])[0]["nivel_logro"],
        "avance_significativo"
    );

    assert_eq!(
        json(p, &["pemc", "diagnostico", "show"])
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert!(json(p, &["pemc", "ambitos"])["ambitos"].is_array());
    let c = json(p, &["grupo", "concentrado", "show"]);
    assert_eq!(c[0]["conteos"]["apoyo_lectura"], 3);
    assert_eq!(json(p, &["conflictos", "list"]), serde_json::json!([]));
    assert!(!json(p, &["historial"]).as_array().unwrap().is_empty());
    let r = json(p, &["resumen", "--fecha", "2026-03-27"]);
    assert_eq!(
        (r["cct"].as_str(), r["ciclo"].as_str()),
        (Some(CCT), Some(CICLO))
    );
    let e = json(p, &["export", "json"]);
    assert_eq!(e["escuela"]["nombre"], "Escuela Benito Juárez");
    assert_eq!(e["escuela"]["acuerdos"][0]["id"], d.acuerdo.as_str());
}

#[test]
fn editar_acuerdo_con_un_dato_invalido_no_escribe_nada() {
    // Text and responsables in one command are one change: a bad responsable must not leave
    // the new text saved.
    let d = escuela_con_datos();
    rechaza(
        d.path(),
        &[
            "acuerdo",
            "edit",
            &d.acuerdo,
            "--texto",
            "Texto nuevo",
            "--responsable",
            "  ",
        ],
        &["responsable"],
    );
    let antes = json(d.path(), &["historial"]).as_array().unwrap().len();
    ok(
        d.path(),
        &[
            "acuerdo",
            "edit",
            &d.acuerdo,
            "--texto",
            "Texto nuevo",
            "--responsable",
            "Ana",
        ],
    );
    let despues = json(d.path(), &["historial"]).as_array().unwrap().len();
    assert_eq!(
        despues,
        antes + 1,
        "text and responsables are saved as one change"
    );
}
