//! `bitacora acuerdo …`: the council's agreements (acuerdos y compromisos).

use super::*;

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

pub(super) async fn cmd_acuerdo(app: &mut App, a: AcuerdoCmd, json: bool) -> Result<()> {
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
