//! `bitacora pemc …`: the diagnóstico, objetivos, metas, acciones and seguimiento of the PEMC.

use super::*;

pub(super) async fn cmd_pemc(app: &mut App, p: Pemc, json: bool) -> Result<()> {
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
