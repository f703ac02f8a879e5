//! `bitacora sesion …`: the CTE sessions (Cuaderno de Bitácora).

use super::*;

pub(super) async fn cmd_sesion(app: &mut App, s: SesionCmd, json: bool) -> Result<()> {
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
