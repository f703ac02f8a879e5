//! The commands: parse the arguments with the domain newtypes, apply one model operation
//! through [`App::escribir`], print Spanish text or `--json`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use bitacora_core::ModelError;
use bitacora_core::bundle::{self, Bundle};
use bitacora_core::catalogo::Catalogo;
use bitacora_core::engine;
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId, ZonaClave};
use bitacora_core::model::escuela::{
    self, Acuerdo, Corte, EstadoAccion, EstadoAcuerdo, Fase, NivelLogro,
};
use bitacora_core::model::{DocKind, conflictos, historial};
use bitacora_core::resumen;
use bitacora_core::store::{DocInfo, Store};
use serde::Serialize;

use crate::app::{self, App, ahora, claves, nuevo_id, uso};
use crate::cli::*;

pub async fn run(cli: Cli) -> Result<()> {
    let dir = app::data_dir(cli.data_dir.as_deref())?;
    let json = cli.json;
    if let Comando::Init(init) = &cli.comando {
        return cmd_init(&dir, init, cli.ciclo.as_deref(), json).await;
    }
    let mut app = App::abrir(&dir, cli.ciclo.as_deref()).await?;
    match cli.comando {
        Comando::Init(_) => unreachable!("handled above"),
        Comando::Pemc(p) => cmd_pemc(&mut app, p, json).await,
        Comando::Sesion(s) => cmd_sesion(&mut app, s, json).await,
        Comando::Acuerdo(a) => cmd_acuerdo(&mut app, a, json).await,
        Comando::Grupo(GrupoCmd::Concentrado(c)) => cmd_concentrado(&mut app, c, json).await,
        Comando::Conflictos(c) => cmd_conflictos(&mut app, c, json).await,
        Comando::Historial(h) => cmd_historial(&mut app, h, json),
        Comando::Resumen(r) => cmd_resumen(&app, r, json),
        Comando::Export(ExportCmd::Json { salida }) => cmd_export_json(&app, salida.as_deref()),
        Comando::Bundle(b) => cmd_bundle(&app, b, json).await,
        Comando::Zona(ZonaCmd::Practica(p)) => cmd_practica(&app, p, json).await,
        Comando::Login { servidor, token } => cmd_login(&app, &servidor, &token, json).await,
        Comando::Sync { watch: false } => cmd_sync(&app, json).await,
        Comando::Sync { watch: true } => cmd_sync_watch(&app).await,
        Comando::Estado => cmd_estado(&app, json).await,
    }
}

fn imprimir_json<T: Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn id(s: &str) -> Result<RecordId> {
    Ok(RecordId::parse(s)?)
}

/// Makes a model error about a typed value name the field as the person knows it (e.g.
/// "fecha compromiso" rather than the model's "fecha"); other errors pass through.
fn rotular(campo: &'static str) -> impl Fn(ModelError) -> ModelError {
    move |e| match e {
        ModelError::Invalid {
            valor, esperado, ..
        } => ModelError::Invalid {
            campo,
            valor,
            esperado,
        },
        otro => otro,
    }
}

/// A date typed in the option that `campo` names.
fn fecha(s: &str, campo: &'static str) -> Result<Fecha> {
    Ok(Fecha::parse(s).map_err(rotular(campo))?)
}

fn fecha_opt(s: Option<&str>, campo: &'static str) -> Result<Option<Fecha>> {
    s.map(|s| fecha(s, campo)).transpose()
}

/// A model error about a count names the option that sets it (`--apoyo-lectura`), not the
/// model's key (`apoyo_lectura`).
fn rotular_conteo(e: ModelError) -> ModelError {
    match &e {
        ModelError::Invalid { campo, .. } => match Conteos::opcion(campo) {
            Some(opcion) => rotular(opcion)(e),
            None => e,
        },
        _ => e,
    }
}

fn hoy() -> Fecha {
    Fecha::from_naive(chrono::Local::now().date_naive())
}

fn corto(s: &str, n: usize) -> String {
    let una_linea = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if una_linea.chars().count() <= n {
        una_linea
    } else {
        format!("{}…", una_linea.chars().take(n - 1).collect::<String>())
    }
}

fn o_guion(s: Option<&str>) -> &str {
    s.unwrap_or("—")
}

// ---------------------------------------------------------------------------------------------

async fn cmd_init(dir: &Path, init: &Init, ciclo: Option<&str>, json: bool) -> Result<()> {
    let cct = Cct::parse(&init.cct)?;
    let zona = ZonaClave::parse(&init.zona)?;
    let ciclo =
        CicloEscolar::parse(ciclo.ok_or_else(|| uso("falta --ciclo (p. ej. --ciclo 2025-2026)"))?)?;
    if init.nombre.trim().is_empty() {
        return Err(uso("el nombre de la escuela no puede estar vacío"));
    }
    if init.autor.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(uso("el nombre del autor no puede estar vacío"));
    }
    let store = Store::open(dir).await?;
    if let Some(otra) = store.get_meta(claves::CCT).await?
        && otra != cct.as_str()
    {
        return Err(uso(format!(
            "este directorio de datos ya pertenece a la escuela {otra}; use otro --data-dir para la escuela {cct}"
        )));
    }
    let info = DocInfo {
        id: DocumentId::escuela(&cct, ciclo),
        kind: DocKind::Escuela,
        owner: cct.to_string(),
        ciclo: ciclo.to_string(),
    };
    let mut genesis = escuela::genesis_escuela(&cct, ciclo)?;
    store.create(&info, &mut genesis, ahora()).await?;
    store.set_meta(claves::CCT, cct.as_str()).await?;
    store.set_meta(claves::ZONA, zona.as_str()).await?;
    store.set_meta(claves::CICLO, &ciclo.to_string()).await?;
    if let Some(a) = &init.autor {
        store.set_meta(claves::AUTOR, a.trim()).await?;
    }
    let mut app = App::abrir(dir, Some(&ciclo.to_string())).await?;
    let (nombre, zona_s) = (init.nombre.clone(), zona.to_string());
    app.escribir(|doc, ctx| escuela::registrar(doc, ctx, &nombre, &zona_s))
        .await?;
    if json {
        return imprimir_json(&serde_json::json!({
            "cct": cct, "zona": zona, "ciclo": ciclo, "documento": info.id.to_string(),
            "data_dir": dir,
        }));
    }
    println!(
        "Escuela {cct} ({}) lista para el ciclo {ciclo}.",
        init.nombre.trim()
    );
    println!("Documento: {}", info.id.url());
    println!("Datos en: {}", dir.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn cmd_pemc(app: &mut App, p: Pemc, json: bool) -> Result<()> {
    let cat = Catalogo::para_ciclo(app.ciclo);
    match p {
        Pemc::Ambitos => {
            if json {
                return imprimir_json(cat);
            }
            println!("Catálogo de ámbitos {} (ciclo {}):", cat.version, app.ciclo);
            for a in cat.ambitos {
                println!("  {:<28} {}", a.clave, a.nombre);
            }
        }
        Pemc::Diagnostico(DiagnosticoCmd::Set {
            ambito,
            texto,
            prioridad,
        }) => {
            if texto.is_none() && prioridad.is_none() {
                return Err(uso("indique --texto, --prioridad o ambos"));
            }
            let prioridad = match prioridad {
                Some(p) if p < 1 => {
                    return Err(uso(format!(
                        "prioridad inválida «{p}»: se espera un número de 1 en adelante"
                    )));
                }
                p => p.map(|p| p as u64),
            };
            app.escribir(|doc, ctx| {
                escuela::diagnostico(doc, ctx, &ambito, texto.as_deref(), prioridad)
            })
            .await?;
            println!("Diagnóstico del ámbito {ambito} guardado.");
        }
        Pemc::Diagnostico(DiagnosticoCmd::Show) => {
            let e = escuela::leer(&app.doc)?;
            if json {
                return imprimir_json(&e.diagnostico);
            }
            for d in &e.diagnostico {
                let p = d
                    .prioridad
                    .map(|p| format!("prioridad {p}"))
                    .unwrap_or_else(|| "sin prioridad".into());
                println!("{} [{}] ({p})", d.nombre, d.ambito);
                if d.texto.is_empty() {
                    println!("  (sin diagnóstico)");
                } else {
                    for l in d.texto.lines() {
                        println!("  {l}");
                    }
                }
            }
        }
        Pemc::Objetivo(ObjetivoCmd::Add {
            texto,
            para_que,
            ambitos,
        }) => {
            let id = nuevo_id();
            let o = escuela::NuevoObjetivo {
                texto,
                para_que,
                ambitos,
            };
            app.escribir(|doc, ctx| escuela::agregar_objetivo(doc, ctx, &id, &o))
                .await?;
            if json {
                return imprimir_json(&serde_json::json!({ "id": id }));
            }
            println!("Objetivo {id} agregado.");
        }
        Pemc::Objetivo(ObjetivoCmd::List(l)) => {
            let e = escuela::leer(&app.doc)?;
            let v: Vec<_> = e
                .objetivos
                .iter()
                .filter(|o| l.archivados || !o.archivado)
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay objetivos registrados.");
            }
            for o in v {
                let arch = if o.archivado { " [archivado]" } else { "" };
                println!("{}  {}{arch}", o.id, corto(&o.texto, 70));
                println!("            ámbitos: {}", o.ambitos.join(", "));
            }
        }
        Pemc::Objetivo(ObjetivoCmd::Archivar(a)) => archivar(app, "objetivo", &a.id).await?,
        Pemc::Meta(MetaCmd::Add {
            objetivo,
            descripcion,
            indicador,
            linea_base,
            valor_meta,
            unidad,
            fecha_limite,
        }) => {
            let m = escuela::NuevaMeta {
                objetivo: id(&objetivo)?,
                descripcion,
                indicador,
                linea_base,
                valor_meta,
                unidad,
                fecha_limite: fecha_opt(fecha_limite.as_deref(), "fecha límite")?,
            };
            let nid = nuevo_id();
            app.escribir(|doc, ctx| escuela::agregar_meta(doc, ctx, &nid, &m))
                .await?;
            if json {
                return imprimir_json(&serde_json::json!({ "id": nid }));
            }
            println!("Meta {nid} agregada al objetivo {objetivo}.");
        }
        Pemc::Meta(MetaCmd::List { objetivo, listado }) => {
            let e = escuela::leer(&app.doc)?;
            let v: Vec<_> = e
                .metas
                .iter()
                .filter(|m| listado.archivados || !m.archivado)
                .filter(|m| objetivo.as_deref().is_none_or(|o| m.objetivo == o))
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay metas registradas.");
            }
            for m in v {
                let arch = if m.archivado { " [archivada]" } else { "" };
                println!("{}  {}{arch}", m.id, corto(&m.descripcion, 70));
                let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
                println!(
                    "            objetivo {} · {}: {} → {} {} · fecha límite {} · logro: {}",
                    m.objetivo,
                    if m.indicador.is_empty() {
                        "indicador"
                    } else {
                        &m.indicador
                    },
                    num(m.linea_base),
                    num(m.valor_meta),
                    m.unidad,
                    o_guion(m.fecha_limite.as_deref()),
                    o_guion(m.nivel_logro.as_deref()),
                );
            }
        }
        Pemc::Meta(MetaCmd::Logro {
            id: meta,
            nivel,
            evidencia,
            fecha,
        }) => {
            let meta = id(&meta)?;
            let nivel = NivelLogro::parse(&nivel)?;
            let fecha = fecha_opt(fecha.as_deref(), "fecha")?.unwrap_or_else(hoy);
            let sid = nuevo_id();
            app.escribir(|doc, ctx| {
                escuela::registrar_logro(doc, ctx, &sid, &meta, nivel, &evidencia, fecha)
            })
            .await?;
            println!(
                "Logro de la meta {meta} registrado: {} ({fecha}).",
                nivel.as_str()
            );
        }
        Pemc::Meta(MetaCmd::Archivar(a)) => archivar(app, "meta", &a.id).await?,
        Pemc::Accion(AccionCmd::Add {
            meta,
            descripcion,
            responsables,
            recursos,
            costo,
            inicio,
            fin,
        }) => {
            let a = escuela::NuevaAccion {
                meta: id(&meta)?,
                descripcion,
                responsables,
                recursos,
                costo,
                inicio: fecha_opt(inicio.as_deref(), "fecha de inicio")?,
                fin: fecha_opt(fin.as_deref(), "fecha de fin")?,
            };
            let nid = nuevo_id();
            app.escribir(|doc, ctx| escuela::agregar_accion(doc, ctx, &nid, &a))
                .await?;
            if json {
                return imprimir_json(&serde_json::json!({ "id": nid }));
            }
            println!("Acción {nid} agregada a la meta {meta}.");
        }
        Pemc::Accion(AccionCmd::List { meta, listado }) => {
            let e = escuela::leer(&app.doc)?;
            let v: Vec<_> = e
                .acciones
                .iter()
                .filter(|a| listado.archivados || !a.archivado)
                .filter(|a| meta.as_deref().is_none_or(|m| a.meta == m))
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay acciones registradas.");
            }
            for a in v {
                let arch = if a.archivado { " [archivada]" } else { "" };
                println!(
                    "{}  [{}] {}{arch}",
                    a.id,
                    a.estado,
                    corto(&a.descripcion, 60)
                );
                println!(
                    "            meta {} · responsables: {} · {} a {} · costo: {}",
                    a.meta,
                    if a.responsables.is_empty() {
                        "—".into()
                    } else {
                        a.responsables.join(", ")
                    },
                    o_guion(a.inicio.as_deref()),
                    o_guion(a.fin.as_deref()),
                    a.costo
                        .map(|c| format!("${c:.2}"))
                        .unwrap_or_else(|| "—".into()),
                );
            }
        }
        Pemc::Accion(AccionCmd::Estado { id: aid, estado }) => {
            let aid = id(&aid)?;
            let estado = EstadoAccion::parse(&estado)?;
            app.escribir(|doc, ctx| escuela::estado_accion(doc, ctx, &aid, estado))
                .await?;
            println!("Acción {aid}: {}.", estado.as_str());
        }
        Pemc::Accion(AccionCmd::Archivar(a)) => archivar(app, "accion", &a.id).await?,
    }
    Ok(())
}

async fn archivar(app: &mut App, tipo: &str, rid: &str) -> Result<()> {
    let rid = id(rid)?;
    app.escribir(|doc, ctx| escuela::archivar_registro(doc, ctx, tipo, &rid, true))
        .await?;
    println!("Archivado {tipo} {rid} (se conserva en el historial y con --archivados).");
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn cmd_sesion(app: &mut App, s: SesionCmd, json: bool) -> Result<()> {
    match s {
        SesionCmd::Add {
            fase,
            numero,
            fecha,
            asistentes,
            proposito,
            productos,
            practicas,
        } => {
            if numero < 1 {
                return Err(uso(format!(
                    "número de sesión inválido «{numero}»: se espera 1 o más"
                )));
            }
            let n = escuela::NuevaSesion {
                fase: Fase::parse(&fase)?,
                numero: numero as u64,
                fecha: self::fecha(&fecha, "fecha")?,
                asistentes,
                proposito,
                productos,
                practicas,
            };
            let sid = nuevo_id();
            app.escribir(|doc, ctx| escuela::agregar_sesion(doc, ctx, &sid, &n))
                .await?;
            if json {
                return imprimir_json(&serde_json::json!({ "id": sid }));
            }
            println!(
                "Sesión {sid} agregada ({} {}, {}).",
                n.fase.as_str(),
                n.numero,
                n.fecha
            );
        }
        SesionCmd::List(l) => {
            let e = escuela::leer(&app.doc)?;
            let v: Vec<_> = e
                .sesiones
                .iter()
                .filter(|s| l.archivados || !s.archivado)
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay sesiones registradas.");
            }
            for s in v {
                println!(
                    "{}  {} {:<14} {}  {} asistentes",
                    s.id,
                    o_guion(s.fecha.as_deref()),
                    s.fase,
                    s.numero.map(|n| n.to_string()).unwrap_or_default(),
                    s.asistentes.len()
                );
            }
        }
        SesionCmd::Show(a) => {
            let e = escuela::leer(&app.doc)?;
            let s = e.sesiones.iter().find(|s| s.id == a.id).ok_or_else(|| {
                bitacora_core::ModelError::NotFound {
                    tipo: "sesión",
                    id: a.id.clone(),
                }
            })?;
            if json {
                return imprimir_json(s);
            }
            println!(
                "Sesión {} · fase {} · número {}",
                s.id,
                s.fase,
                s.numero.map(|n| n.to_string()).unwrap_or_default()
            );
            println!("Fecha: {}", o_guion(s.fecha.as_deref()));
            println!(
                "Asistentes: {}",
                if s.asistentes.is_empty() {
                    "—".into()
                } else {
                    s.asistentes.join(", ")
                }
            );
            println!("Propósito:\n  {}", s.proposito.replace('\n', "\n  "));
            println!("Productos:\n  {}", s.productos.replace('\n', "\n  "));
            println!(
                "Prácticas educativas compartidas:\n  {}",
                s.practicas.replace('\n', "\n  ")
            );
            let acuerdos: Vec<_> = e
                .acuerdos
                .iter()
                .filter(|a| a.sesion_origen.as_deref() == Some(&s.id))
                .collect();
            if !acuerdos.is_empty() {
                println!("Acuerdos de esta sesión:");
                for a in acuerdos {
                    println!("  {}  [{}] {}", a.id, a.estado, corto(&a.texto, 60));
                }
            }
        }
        SesionCmd::Edit {
            id: sid,
            productos,
            practicas,
        } => {
            if productos.is_none() && practicas.is_none() {
                return Err(uso("indique --productos, --practicas o ambos"));
            }
            let sid = id(&sid)?;
            app.escribir(|doc, ctx| {
                escuela::editar_sesion(doc, ctx, &sid, productos.as_deref(), practicas.as_deref())
            })
            .await?;
            println!("Sesión {sid} editada.");
        }
        SesionCmd::Archivar(a) => archivar(app, "sesion", &a.id).await?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn linea_acuerdo(a: &Acuerdo) -> String {
    let marca = if a.en_conflicto.is_empty() {
        ""
    } else {
        " ⚠ en conflicto"
    };
    let arch = if a.archivado { " [archivado]" } else { "" };
    format!(
        "{}  [{}] {}  vence {}  resp.: {}{marca}{arch}",
        a.id,
        a.estado,
        corto(&a.texto, 50),
        o_guion(a.fecha_compromiso.as_deref()),
        if a.responsables.is_empty() {
            "—".into()
        } else {
            a.responsables.join(", ")
        },
    )
}

async fn cmd_acuerdo(app: &mut App, a: AcuerdoCmd, json: bool) -> Result<()> {
    match a {
        AcuerdoCmd::Add {
            texto,
            responsables,
            fecha_compromiso,
            sesion,
        } => {
            let n = escuela::NuevoAcuerdo {
                texto,
                responsables,
                fecha_compromiso: fecha_opt(fecha_compromiso.as_deref(), "fecha compromiso")?,
                sesion_origen: sesion.as_deref().map(id).transpose()?,
            };
            let aid = nuevo_id();
            app.escribir(|doc, ctx| escuela::agregar_acuerdo(doc, ctx, &aid, &n))
                .await?;
            if json {
                return imprimir_json(&serde_json::json!({ "id": aid }));
            }
            println!("Acuerdo {aid} agregado.");
        }
        AcuerdoCmd::List { estado, listado } => {
            let filtro = estado.as_deref().map(EstadoAcuerdo::parse).transpose()?;
            let e = escuela::leer(&app.doc)?;
            let v: Vec<_> = e
                .acuerdos
                .iter()
                .filter(|a| listado.archivados || !a.archivado)
                .filter(|a| filtro.is_none_or(|f| a.estado == f.as_str()))
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay acuerdos registrados.");
            }
            for a in v {
                println!("{}", linea_acuerdo(a));
            }
        }
        AcuerdoCmd::Show(x) => {
            let e = escuela::leer(&app.doc)?;
            let a = e.acuerdos.iter().find(|a| a.id == x.id).ok_or_else(|| {
                bitacora_core::ModelError::NotFound {
                    tipo: "acuerdo",
                    id: x.id.clone(),
                }
            })?;
            if json {
                return imprimir_json(a);
            }
            println!(
                "Acuerdo {}{}",
                a.id,
                if a.archivado { " [archivado]" } else { "" }
            );
            println!("Estado: {}", a.estado);
            println!(
                "Responsables: {}",
                if a.responsables.is_empty() {
                    "—".into()
                } else {
                    a.responsables.join(", ")
                }
            );
            println!(
                "Fecha compromiso: {}",
                o_guion(a.fecha_compromiso.as_deref())
            );
            println!("Sesión de origen: {}", o_guion(a.sesion_origen.as_deref()));
            println!(
                "Revisado en la sesión: {}",
                o_guion(a.sesion_revision.as_deref())
            );
            if !a.en_conflicto.is_empty() {
                println!(
                    "⚠ En conflicto: {} (vea `bitacora conflictos list`)",
                    a.en_conflicto.join(", ")
                );
            }
            println!("Texto:\n  {}", a.texto.replace('\n', "\n  "));
        }
        AcuerdoCmd::Edit {
            id: aid,
            texto,
            responsables,
            fecha_compromiso,
        } => {
            let aid = id(&aid)?;
            let fecha = fecha_opt(fecha_compromiso.as_deref(), "fecha compromiso")?;
            let actual = escuela::leer(&app.doc)?
                .acuerdos
                .into_iter()
                .find(|a| a.id == aid.as_str())
                .ok_or_else(|| bitacora_core::ModelError::NotFound {
                    tipo: "acuerdo",
                    id: aid.to_string(),
                })?;
            let texto = match texto {
                Some(t) => Some(t),
                None if responsables.is_empty() && fecha.is_none() => {
                    Some(editar_en_editor(&actual.texto)?)
                }
                None => None,
            };
            let texto = texto
                .map(|t| t.trim_end().to_string())
                .filter(|t| *t != actual.texto.trim_end());
            let r = (!responsables.is_empty()).then_some(responsables.as_slice());
            let cambios = usize::from(texto.is_some() || r.is_some() || fecha.is_some());
            if cambios > 0 {
                app.escribir(|doc, ctx| {
                    escuela::editar_acuerdo(doc, ctx, &aid, texto.as_deref(), r, fecha)
                })
                .await?;
            }
            if cambios == 0 {
                println!("Sin cambios en el acuerdo {aid}.");
            } else {
                println!("Acuerdo {aid} editado.");
            }
        }
        AcuerdoCmd::Estado {
            id: aid,
            estado,
            sesion_revision,
        } => {
            let aid = id(&aid)?;
            let estado = EstadoAcuerdo::parse(&estado)?;
            let sesion = sesion_revision.as_deref().map(id).transpose()?;
            app.escribir(|doc, ctx| {
                escuela::estado_acuerdo(doc, ctx, &aid, estado, sesion.as_ref())
            })
            .await?;
            println!("Acuerdo {aid}: {}.", estado.as_str());
        }
        AcuerdoCmd::Archivar(x) => archivar(app, "acuerdo", &x.id).await?,
    }
    Ok(())
}

/// Opens `$VISUAL`/`$EDITOR` (or `vi`) on the current text and returns what was saved.
fn editar_en_editor(actual: &str) -> Result<String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_string());
    let mut tmp = tempfile::Builder::new()
        .prefix("acuerdo-")
        .suffix(".txt")
        .tempfile()?;
    tmp.write_all(actual.as_bytes())?;
    tmp.flush()?;
    let mut partes = editor.split_whitespace();
    let programa = partes
        .next()
        .ok_or_else(|| uso("la variable EDITOR está vacía"))?;
    let estado = std::process::Command::new(programa)
        .args(partes)
        .arg(tmp.path())
        .status()
        .with_context(|| {
            format!("no se pudo abrir el editor «{editor}»; use --texto o defina EDITOR")
        })?;
    if !estado.success() {
        return Err(uso(format!(
            "el editor «{editor}» terminó con error; no se guardó nada"
        )));
    }
    let texto = std::fs::read_to_string(tmp.path())
        .context("no se pudo leer el texto editado (¿no es UTF-8?)")?;
    Ok(texto)
}

// ---------------------------------------------------------------------------------------------

async fn cmd_concentrado(app: &mut App, c: ConcentradoCmd, json: bool) -> Result<()> {
    match c {
        ConcentradoCmd::Set(s) => {
            let corte = Corte::parse(&s.corte)?;
            let pares = s.conteos.pares();
            if pares.is_empty() {
                return Err(uso(
                    "indique al menos un conteo (p. ej. --inscritos-inicio 30)",
                ));
            }
            let r = app
                .escribir(|doc, ctx| {
                    escuela::concentrado_set(doc, ctx, s.grado, &s.grupo, corte, &pares)
                        .map_err(rotular_conteo)
                })
                .await?;
            if json {
                return imprimir_json(&r);
            }
            println!(
                "Concentrado de {}{} ({}) guardado.",
                r.grado, r.grupo, r.corte
            );
        }
        ConcentradoCmd::Show { corte } => {
            let corte = corte.as_deref().map(Corte::parse).transpose()?;
            let e = escuela::leer(&app.doc)?;
            let v: Vec<_> = e
                .concentrado
                .iter()
                .filter(|g| corte.is_none_or(|c| g.corte == c.as_str()))
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay concentrados registrados.");
            }
            for g in v {
                println!("Grupo {}{} · corte {}", g.grado, g.grupo, g.corte);
                let total = g.total_alumnos();
                for (k, nombre) in escuela::CAMPOS_CONCENTRADO {
                    if let Some(n) = g.get(k) {
                        let pct = match total {
                            Some(t) if !k.starts_with("inscritos") => {
                                format!("  ({:.1} %)", resumen::porcentaje(n, t))
                            }
                            _ => String::new(),
                        };
                        println!("  {nombre:<48} {n:>4}{pct}");
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn cmd_conflictos(app: &mut App, c: ConflictosCmd, json: bool) -> Result<()> {
    match c {
        ConflictosCmd::List => {
            let v = conflictos::listar(&app.doc);
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!("No hay conflictos.");
            }
            for c in &v {
                println!("{}", c.ruta);
                for (i, val) in c.valores.iter().enumerate() {
                    let quien = val
                        .autor
                        .clone()
                        .unwrap_or_else(|| "autor desconocido".into());
                    println!(
                        "  {}) {}  — {} (equipo {})",
                        i + 1,
                        val.valor,
                        quien,
                        &val.actor[..val.actor.len().min(8)]
                    );
                }
            }
            if !v.is_empty() {
                println!("Resuelva con: bitacora conflictos resolve RUTA --opcion N");
            }
        }
        ConflictosCmd::Resolve { ruta, opcion } => {
            if opcion < 1 {
                return Err(uso(format!(
                    "opción inválida «{opcion}»: se espera 1 o más"
                )));
            }
            app.escribir(|doc, ctx| conflictos::resolver(doc, ctx, &ruta, opcion as usize))
                .await?;
            println!("Conflicto {ruta} resuelto con la opción {opcion}.");
        }
    }
    Ok(())
}

fn cmd_historial(app: &mut App, h: Historial, json: bool) -> Result<()> {
    let mut v = historial::historial(&mut app.doc);
    if let Some(n) = h.limite {
        if n < 1 {
            return Err(uso(format!("límite inválido «{n}»: se espera 1 o más")));
        }
        let quitar = v.len().saturating_sub(n as usize);
        v.drain(..quitar);
    }
    if json {
        return imprimir_json(&v);
    }
    for e in v {
        let fecha = if e.fecha == 0 {
            "—".to_string()
        } else {
            chrono::DateTime::from_timestamp(e.fecha, 0)
                .map(|d| {
                    d.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_else(|| e.fecha.to_string())
        };
        let quien = if e.fecha == 0 {
            "—".to_string()
        } else {
            e.autor
                .unwrap_or_else(|| format!("equipo {}", &e.actor[..e.actor.len().min(8)]))
        };
        println!("{fecha:<16}  {quien:<24}  {}", e.mensaje);
    }
    Ok(())
}

fn cmd_resumen(app: &App, r: ResumenArgs, json: bool) -> Result<()> {
    let fecha = fecha_opt(r.fecha.as_deref(), "fecha")?.unwrap_or_else(hoy);
    let e = escuela::leer(&app.doc)?;
    let n_conf = conflictos::listar(&app.doc).len();
    let s = resumen::resumir(&e, n_conf, fecha);
    if json {
        return imprimir_json(&s);
    }
    println!(
        "{} · {} · ciclo {} · al {}",
        s.cct,
        o_guion(s.nombre.as_deref()),
        s.ciclo,
        s.fecha
    );
    let p = &s.pemc;
    println!("\nPEMC: {} % completo", p.porcentaje);
    println!(
        "  ámbitos con diagnóstico: {} de {} · priorizados: {}",
        p.ambitos_con_diagnostico, p.ambitos_total, p.ambitos_priorizados
    );
    println!(
        "  objetivos: {} ({} con metas) · metas: {} ({} con acciones) · acciones: {}",
        p.objetivos, p.objetivos_con_meta, p.metas, p.metas_con_accion, p.acciones
    );
    println!("\nMetas por nivel de logro:");
    for (k, n) in &s.metas_por_logro {
        println!("  {k:<22} {n}");
    }
    if !s.acciones_por_estado.is_empty() {
        println!("\nAcciones por estado:");
        for (k, n) in &s.acciones_por_estado {
            println!("  {k:<22} {n}");
        }
    }
    println!("\nAcuerdos por estado:");
    if s.acuerdos_por_estado.is_empty() {
        println!("  (sin acuerdos)");
    }
    for (k, n) in &s.acuerdos_por_estado {
        println!("  {k:<22} {n}");
    }
    if !s.acuerdos_vencidos.is_empty() {
        println!("\nAcuerdos vencidos:");
        for a in &s.acuerdos_vencidos {
            println!(
                "  {}  venció {} (hace {} días)  {}",
                a.id,
                a.fecha_compromiso,
                a.dias_vencido,
                corto(&a.texto, 50)
            );
        }
    }
    println!("\nSesiones registradas: {}", s.sesiones);
    match &s.apoyo {
        None => println!("\nAlumnos que requieren apoyo: sin concentrado registrado."),
        Some(a) => {
            println!(
                "\nAlumnos que requieren apoyo (corte {}, {} grupos, {} alumnos):",
                a.corte, a.grupos, a.total_alumnos
            );
            for i in &a.indicadores {
                if i.grupos_con_registro == 0 {
                    println!("  {:<48}    —  sin registro", i.nombre);
                } else {
                    println!(
                        "  {:<48} {:>4}  {:>5.1} %",
                        i.nombre, i.alumnos, i.porcentaje
                    );
                }
            }
            println!("  (porcentaje = alumnos / total de alumnos × 100)");
        }
    }
    if s.conflictos > 0 {
        println!(
            "\n⚠ {} conflicto(s) sin resolver: bitacora conflictos list",
            s.conflictos
        );
    }
    Ok(())
}

fn cmd_export_json(app: &App, salida: Option<&Path>) -> Result<()> {
    let v = serde_json::json!({
        "escuela": escuela::leer(&app.doc)?,
        "conflictos": conflictos::listar(&app.doc),
    });
    match salida {
        None => imprimir_json(&v),
        Some(p) => {
            escribir_atomico(p, &serde_json::to_vec_pretty(&v)?)?;
            println!("Exportado a {}.", p.display());
            Ok(())
        }
    }
}

/// Writes a file completely or not at all: a temporary file beside it, then a rename.
fn escribir_atomico(destino: &Path, datos: &[u8]) -> Result<()> {
    if destino.is_dir() {
        return Err(uso(format!(
            "{} es un directorio; indique un nombre de archivo",
            destino.display()
        )));
    }
    let dir = destino
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("no se puede escribir en {}", dir.display()))?;
    tmp.write_all(datos)?;
    tmp.as_file().sync_all()?;
    tmp.persist(destino)
        .with_context(|| format!("no se pudo escribir {}", destino.display()))?;
    Ok(())
}

/// The bytes of a bundle file. A path that names no readable file is the person's input
/// (exit code 2); any other read failure is not.
fn leer_paquete(archivo: &Path) -> Result<Vec<u8>> {
    use std::io::ErrorKind;
    std::fs::read(archivo).map_err(|e| match e.kind() {
        ErrorKind::NotFound => uso(format!("no existe el archivo {}", archivo.display())),
        ErrorKind::IsADirectory => uso(format!(
            "no se pudo leer {}: es un directorio; indique el archivo del paquete",
            archivo.display()
        )),
        ErrorKind::PermissionDenied => uso(format!(
            "no se pudo leer {}: no tiene permiso para leer el archivo",
            archivo.display()
        )),
        _ => anyhow::anyhow!(
            "no se pudo leer {} (detalle técnico: {e})",
            archivo.display()
        ),
    })
}

async fn cmd_bundle(app: &App, b: BundleCmd, json: bool) -> Result<()> {
    match b {
        BundleCmd::Export { salida } => {
            // Only what the server is not known to have: the changes after the heads it last
            // confirmed (online, or through its last return bundle).
            let mut docs = Vec::new();
            for d in app
                .store
                .documents()
                .await?
                .into_iter()
                .filter(|d| app.permitido(d))
            {
                let desde = app
                    .store
                    .get_meta(&format!("{}{}", claves::CONFIRMADO, d.id))
                    .await?
                    .map(|h| bitacora_core::store::parse_heads(&h))
                    .unwrap_or_default();
                docs.push((d, desde));
            }
            let bundle = bundle::exportar(&app.store, &docs, app.cct.as_str(), ahora()).await?;
            let bytes = bundle.encode();
            escribir_atomico(&salida, &bytes)?;
            if json {
                return imprimir_json(&bundle.header);
            }
            println!(
                "Paquete escrito en {} ({} documento(s), {} bytes).",
                salida.display(),
                bundle.header.documentos.len(),
                bytes.len()
            );
        }
        BundleCmd::Subir { archivo } => {
            let (servidor, token) = credenciales(app).await?;
            let bytes = leer_paquete(&archivo)?;
            Bundle::decode(&bytes)?;
            let r = engine::subir_paquete(&servidor, &token, bytes, LIMITE_SYNC).await?;
            if json {
                return imprimir_json(&r);
            }
            for d in r.as_array().into_iter().flatten() {
                println!(
                    "{}: {} cambio(s) nuevo(s) en el servidor.",
                    d["owner"].as_str().unwrap_or("?"),
                    d["cambios_nuevos"]
                );
            }
        }
        BundleCmd::Bajar { salida } => {
            let (servidor, token) = credenciales(app).await?;
            let bytes =
                engine::bajar_paquete(&servidor, &token, app.cct.as_str(), LIMITE_SYNC).await?;
            Bundle::decode(&bytes)?;
            escribir_atomico(&salida, &bytes)?;
            println!(
                "Paquete de regreso escrito en {} ({} bytes); aplíquelo con `bitacora bundle import`.",
                salida.display(),
                bytes.len()
            );
        }
        BundleCmd::Import { archivo } => {
            let bytes = leer_paquete(&archivo)?;
            let bundle = Bundle::decode(&bytes)?;
            let r = bundle::importar(&app.store, &bundle, ahora(), |d| app.permitido(d)).await?;
            // A return bundle from the zone server says which heads the server holds.
            if bundle.header.origen.starts_with(bundle::ORIGEN_SERVIDOR) {
                for d in &bundle.header.documentos {
                    let heads = d.heads.join(",");
                    app.store
                        .set_meta(&format!("{}{}", claves::CONFIRMADO, d.id), &heads)
                        .await?;
                }
            }
            if json {
                return imprimir_json(&r);
            }
            for d in &r {
                let espera = if d.cambios_en_espera > 0 {
                    format!(
                        " ({} esperan cambios anteriores que este equipo aún no tiene)",
                        d.cambios_en_espera
                    )
                } else {
                    String::new()
                };
                println!(
                    "{}: {} cambio(s) nuevo(s){espera}.",
                    d.owner, d.cambios_nuevos
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Online sync.

const LIMITE_HTTP: std::time::Duration = std::time::Duration::from_secs(30);
const LIMITE_SYNC: std::time::Duration = std::time::Duration::from_secs(300);

async fn credenciales(app: &App) -> Result<(String, String)> {
    let servidor = app.store.get_meta(claves::SERVIDOR).await?;
    let token = app.store.get_meta(claves::TOKEN).await?;
    match (servidor, token) {
        (Some(s), Some(t)) => Ok((s, t)),
        _ => Err(uso(
            "este equipo no está conectado a un servidor; ejecute `bitacora login --servidor URL --token TOKEN`",
        )),
    }
}

/// Remembers what the server lets this user do with each document, so the CLI can refuse an
/// edit the server would refuse, before it is made.
async fn guardar_accesos(app: &App, docs: &[engine::DocRemoto]) -> Result<()> {
    for d in docs {
        app.store
            .set_meta(&format!("{}{}", claves::ACCESO, d.id), &d.acceso)
            .await?;
    }
    Ok(())
}

async fn cmd_login(app: &App, servidor: &str, token: &str, json: bool) -> Result<()> {
    let servidor = servidor.trim();
    if !(servidor.starts_with("http://")
        || servidor.starts_with("https://")
        || servidor.starts_with("ws://")
        || servidor.starts_with("wss://"))
    {
        return Err(uso(format!(
            "servidor: «{servidor}» no es válido; se espera una dirección como https://zona14.example.mx"
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(uso("el token no puede estar vacío"));
    }
    let docs = engine::documentos(servidor, token, LIMITE_HTTP).await?;
    engine::enrolar(servidor, token, &app.store.actor().await?, LIMITE_HTTP).await?;
    guardar_accesos(app, &docs).await?;
    app.store
        .set_meta(claves::SERVIDOR, &engine::http_url(servidor))
        .await?;
    app.store.set_meta(claves::TOKEN, token).await?;
    let mio = app.info.id.to_string();
    let propio = docs.iter().any(|d| d.id == mio);
    if json {
        return imprimir_json(
            &serde_json::json!({ "servidor": engine::http_url(servidor), "documentos": docs, "escuela_registrada": propio }),
        );
    }
    println!(
        "Conectado a {}. Documentos disponibles: {}.",
        engine::http_url(servidor),
        docs.len()
    );
    if !propio {
        println!(
            "Aviso: el servidor no comparte con este token el documento de la escuela {} ({}).",
            app.cct, app.ciclo
        );
    }
    Ok(())
}

/// The documents to sync: this school's (current ciclo) and, if the server shares it, the
/// zone's (created locally from its deterministic genesis the first time).
async fn documentos_a_sincronizar(
    app: &App,
    remotos: &[engine::DocRemoto],
) -> Result<Vec<DocInfo>> {
    let mut out = Vec::new();
    if !remotos.iter().any(|d| d.id == app.info.id.to_string()) {
        return Err(uso(format!(
            "el servidor no comparte el documento de la escuela {} ({}) con este token; pida a la supervisión que registre la escuela",
            app.cct, app.ciclo
        )));
    }
    out.push(app.info.clone());
    if let Some(z) = &app.zona {
        let id = DocumentId::zona(z, app.ciclo);
        if remotos.iter().any(|d| d.id == id.to_string()) {
            let info = DocInfo {
                id,
                kind: DocKind::Zona,
                owner: z.to_string(),
                ciclo: app.ciclo.to_string(),
            };
            if app.store.document(&id).await?.is_none() {
                let mut g = bitacora_core::model::zona::genesis_zona(z, app.ciclo)?;
                app.store.create(&info, &mut g, ahora()).await?;
            }
            out.push(info);
        }
    }
    Ok(out)
}

async fn cmd_sync(app: &App, json: bool) -> Result<()> {
    let (servidor, token) = credenciales(app).await?;
    let remotos = engine::documentos(&servidor, &token, LIMITE_HTTP).await?;
    guardar_accesos(app, &remotos).await?;
    let docs = documentos_a_sincronizar(app, &remotos).await?;
    if !json {
        println!("Sincronizando {} documento(s) con {servidor}…", docs.len());
    }
    let ids: Vec<DocumentId> = docs.iter().map(|d| d.id).collect();
    // A progress bar on a terminal; plain lines (one per finished document) otherwise.
    let terminal = !json && std::io::stdout().is_terminal();
    let mut listos = 0;
    let informe =
        engine::sync_once_con_progreso(&app.store, &servidor, &token, &ids, LIMITE_SYNC, |p| {
            let mut out = std::io::stdout().lock();
            if terminal {
                let ancho = 20;
                let lleno = (p.sincronizados * ancho)
                    .checked_div(p.documentos)
                    .unwrap_or(ancho);
                let _ = write!(
                    out,
                    "\r[{}{}] {}/{} documento(s) · {} mensaje(s) · {} KB ",
                    "#".repeat(lleno),
                    "-".repeat(ancho - lleno),
                    p.sincronizados,
                    p.documentos,
                    p.mensajes,
                    p.bytes / 1024
                );
                let _ = out.flush();
            } else if !json && p.sincronizados > listos {
                listos = p.sincronizados;
                let _ = writeln!(
                    out,
                    "{}/{} documento(s) al día con el servidor",
                    p.sincronizados, p.documentos
                );
            }
        })
        .await;
    if terminal {
        println!();
    }
    let informe = informe?;
    // What the server holds is confirmed: everything local, except changes to a document the
    // server holds read-only for this user (made before the CLI knew), which it never takes.
    let mut sin_enviar = Vec::new();
    for info in &docs {
        let Some(heads) = informe.confirmados.get(&info.id) else {
            continue;
        };
        app.store
            .set_meta(
                &format!("{}{}", claves::CONFIRMADO, info.id),
                &bitacora_core::store::hex_heads(heads),
            )
            .await?;
        let lectura = remotos
            .iter()
            .any(|r| r.id == info.id.to_string() && r.acceso == "lectura");
        if lectura && let Some(mut d) = app.store.load(&info.id).await? {
            let n = d
                .get_changes(heads)
                .iter()
                .filter(|c| c.timestamp() != 0)
                .count();
            if n > 0 {
                sin_enviar.push((info, n));
            }
        }
    }
    app.store
        .set_meta(claves::ULTIMA_SYNC, &ahora().to_string())
        .await?;
    if json {
        return imprimir_json(&informe);
    }
    println!(
        "Listo: {} documento(s); {} cambio(s) enviados y {} recibidos; {} bytes enviados, {} recibidos; {} mensaje(s); {:.1} s.",
        informe.documentos,
        informe.cambios_enviados,
        informe.cambios_recibidos,
        informe.bytes_enviados,
        informe.bytes_recibidos,
        informe.mensajes,
        informe.duracion_ms as f64 / 1000.0
    );
    for (info, n) in sin_enviar {
        println!(
            "Aviso: su usuario solo puede leer el documento {} {}; {n} cambio(s) de este equipo no se enviarán al servidor.",
            info.kind.as_str(),
            info.owner
        );
    }
    Ok(())
}

async fn cmd_sync_watch(app: &App) -> Result<()> {
    let (servidor, token) = credenciales(app).await?;
    let remotos = engine::documentos(&servidor, &token, LIMITE_HTTP).await?;
    let docs = documentos_a_sincronizar(app, &remotos).await?;
    let ids: Vec<DocumentId> = docs.iter().map(|d| d.id).collect();
    println!(
        "Sincronización continua con {servidor} ({} documento(s)); Ctrl-C para terminar.",
        ids.len()
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let informe = engine::sync_live(&app.store, &servidor, &token, &ids, stop, |ev| {
        let hora = chrono::Local::now().format("%H:%M:%S");
        let linea = match ev {
            engine::Evento::Conectado => format!("[{hora}] conectado"),
            engine::Evento::Recibidos(n) => format!("[{hora}] recibidos {n} cambio(s)"),
            engine::Evento::Sincronizado => format!("[{hora}] al día con el servidor"),
            engine::Evento::Reintento { error, espera } => format!(
                "[{hora}] sin conexión ({error}); reintento en {:.0} s",
                espera.as_secs_f64()
            ),
        };
        // A closed stdout (the reader went away) must not stop the sync.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{linea}").and_then(|_| out.flush());
    })
    .await?;
    // Only what the server held when we stopped is confirmed (never the local heads: a change
    // made a moment ago, or one the server refuses, is not on the server).
    for (id, heads) in &informe.confirmados {
        if let Some(mut d) = app.store.load(id).await? {
            let conocidos: Vec<_> = heads
                .iter()
                .filter(|h| d.get_change_by_hash(h).is_some())
                .copied()
                .collect();
            app.store
                .set_meta(
                    &format!("{}{id}", claves::CONFIRMADO),
                    &bitacora_core::store::hex_heads(&conocidos),
                )
                .await?;
        }
    }
    println!("Sincronización terminada.");
    Ok(())
}

#[derive(Serialize)]
struct EstadoDoc {
    documento: String,
    tipo: &'static str,
    owner: String,
    cambios_sin_confirmar: usize,
}

async fn cmd_estado(app: &App, json: bool) -> Result<()> {
    let servidor = app.store.get_meta(claves::SERVIDOR).await?;
    let ultima: Option<i64> = app
        .store
        .get_meta(claves::ULTIMA_SYNC)
        .await?
        .and_then(|s| s.parse().ok());
    let mut docs = Vec::new();
    for info in app.store.documents().await? {
        let Some(mut d) = app.store.load(&info.id).await? else {
            continue;
        };
        let confirmados = app
            .store
            .get_meta(&format!("{}{}", claves::CONFIRMADO, info.id))
            .await?
            .map(|h| bitacora_core::store::parse_heads(&h))
            .unwrap_or_default();
        // Changes that are not ancestors of the confirmed heads (the genesis is implicit).
        let pendientes = d
            .get_changes(&confirmados)
            .iter()
            .filter(|c| c.timestamp() != 0)
            .count();
        docs.push(EstadoDoc {
            documento: info.id.to_string(),
            tipo: info.kind.as_str(),
            owner: info.owner,
            cambios_sin_confirmar: pendientes,
        });
    }
    let alcanzable = match &servidor {
        Some(s) => Some(engine::alcanzable(s, std::time::Duration::from_secs(5)).await),
        None => None,
    };
    if json {
        return imprimir_json(&serde_json::json!({
            "servidor": servidor, "alcanzable": alcanzable, "ultima_sincronizacion": ultima, "documentos": docs,
        }));
    }
    match &servidor {
        None => println!(
            "Servidor: ninguno (trabajo sin conexión; use `bitacora login` para conectar)."
        ),
        Some(s) => println!(
            "Servidor: {s} ({})",
            if alcanzable == Some(true) {
                "responde"
            } else {
                "no responde"
            }
        ),
    }
    match ultima.and_then(|t| chrono::DateTime::from_timestamp(t, 0)) {
        Some(t) => println!(
            "Última sincronización: {}",
            t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
        ),
        None => println!("Última sincronización: nunca"),
    }
    for d in docs {
        println!(
            "{} {}: {} cambio(s) sin confirmar por el servidor",
            d.tipo, d.owner, d.cambios_sin_confirmar
        );
    }
    Ok(())
}

async fn cmd_practica(app: &App, p: PracticaCmd, json: bool) -> Result<()> {
    let (info, mut doc) = app.documento_zona().await?;
    match p {
        PracticaCmd::Add { .. }
            if app
                .store
                .get_meta(&format!("{}{}", claves::ACCESO, info.id))
                .await?
                .as_deref()
                == Some("lectura") =>
        {
            return Err(uso(
                "su usuario solo puede leer el documento de la zona: compartir prácticas le corresponde a la dirección o a la supervisión",
            ));
        }
        PracticaCmd::Add {
            titulo,
            descripcion,
            ambito,
        } => {
            let pid = nuevo_id();
            let cct = app.cct.clone();
            app.escribir_en(&info, &mut doc, |doc, ctx| {
                bitacora_core::model::zona::agregar_practica(
                    doc,
                    ctx,
                    &pid,
                    &cct,
                    &titulo,
                    &descripcion,
                    ambito.as_deref(),
                )
            })
            .await?;
            if json {
                return imprimir_json(&serde_json::json!({ "id": pid }));
            }
            println!(
                "Práctica {pid} compartida con la zona {}; las demás escuelas la verán al sincronizar.",
                info.owner
            );
        }
        PracticaCmd::List(l) => {
            let z = bitacora_core::model::zona::leer(&doc)?;
            let v: Vec<_> = z
                .practicas
                .iter()
                .filter(|p| l.archivados || !p.archivado)
                .collect();
            if json {
                return imprimir_json(&v);
            }
            if v.is_empty() {
                println!(
                    "No hay prácticas compartidas en la zona {} (sincronice para recibir las de otras escuelas).",
                    info.owner
                );
            }
            for p in v {
                println!(
                    "{}  [{}] {}{}",
                    p.id,
                    p.escuela,
                    p.titulo,
                    p.ambito
                        .as_deref()
                        .map(|a| format!(" · {a}"))
                        .unwrap_or_default()
                );
                if !p.descripcion.is_empty() {
                    println!("            {}", corto(&p.descripcion, 90));
                }
            }
        }
    }
    Ok(())
}
