//! `bitacora grupo concentrado …`: the concentrado por grupo (counts per grade, group and corte).

use super::*;

pub(super) async fn cmd_concentrado(app: &mut App, c: ConcentradoCmd, json: bool) -> Result<()> {
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
