//! `bitacora init`: set up this laptop for a school (or a zone) and create its documents.

use super::*;

pub(super) async fn cmd_init(
    dir: &Path,
    init: &Init,
    ciclo: Option<&str>,
    json: bool,
) -> Result<()> {
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
