//! `bitacora historial`, `resumen` and `export json`: reading the document back.

use super::*;

pub(super) fn cmd_historial(app: &mut App, h: Historial, json: bool) -> Result<()> {
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

pub(super) fn cmd_resumen(app: &App, r: ResumenArgs, json: bool) -> Result<()> {
    let fecha = fecha_opt(r.fecha.as_deref(), "fecha")?.unwrap_or_else(hoy);
    let e = escuela::leer(&app.doc)?;
    let n_conf = model_conflictos::listar(&app.doc).len();
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

pub(super) fn cmd_export_json(app: &App, salida: Option<&Path>) -> Result<()> {
    let v = serde_json::json!({
        "escuela": escuela::leer(&app.doc)?,
        "conflictos": model_conflictos::listar(&app.doc),
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
