//! `bitacora bundle …`: changes carried on a USB stick, or through the server's bundle endpoint.

use super::*;

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

pub(super) async fn cmd_bundle(app: &App, b: BundleCmd, json: bool) -> Result<()> {
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
