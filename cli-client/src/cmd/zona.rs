//! `bitacora zona practica …`: buenas prácticas shared in the zone document.

use super::*;

pub(super) async fn cmd_practica(app: &App, p: PracticaCmd, json: bool) -> Result<()> {
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
