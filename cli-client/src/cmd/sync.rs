//! `bitacora login`, `sync [--watch]` and `estado`: online sync with the zone server.

use super::*;

#[derive(Serialize)]
struct EstadoDoc {
    documento: String,
    tipo: &'static str,
    owner: String,
    cambios_sin_confirmar: usize,
}

/// The server and token `bitacora login` saved, or a usage error saying how to log in.
pub(super) async fn credenciales(app: &App) -> Result<(String, String)> {
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

pub(super) async fn cmd_login(app: &App, servidor: &str, token: &str, json: bool) -> Result<()> {
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

pub(super) async fn cmd_sync(app: &App, json: bool) -> Result<()> {
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

pub(super) async fn cmd_sync_watch(app: &App) -> Result<()> {
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

pub(super) async fn cmd_estado(app: &App, json: bool) -> Result<()> {
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
