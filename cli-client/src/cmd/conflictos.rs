//! `bitacora conflictos …`: values two people set differently at the same time, and choosing one.

use super::*;

pub(super) async fn cmd_conflictos(app: &mut App, c: ConflictosCmd, json: bool) -> Result<()> {
    match c {
        ConflictosCmd::List => {
            let v = model_conflictos::listar(&app.doc);
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
            app.escribir(|doc, ctx| model_conflictos::resolver(doc, ctx, &ruta, opcion as usize))
                .await?;
            println!("Conflicto {ruta} resuelto con la opción {opcion}.");
        }
    }
    Ok(())
}
