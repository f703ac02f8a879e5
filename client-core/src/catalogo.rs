//! The catalogue of ámbitos (areas of school management a diagnóstico covers), versioned per
//! ciclo. Documents store the ámbito *key* and the catalogue *version*, never an enum, so a
//! document written under an older catalogue keeps its meaning when the catalogue changes.
//!
//! A published catalogue version is frozen: its keys are part of the deterministic genesis of
//! every school document of the cycles it covers. A new SEP catalogue is a new version with a new
//! range of cycles, never an edit of an existing one.

use serde::Serialize;

use crate::error::ModelError;
use crate::ids::CicloEscolar;

/// One ámbito: a stable key and the name shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ambito {
    pub clave: &'static str,
    pub nombre: &'static str,
}

/// A frozen catalogue version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Catalogo {
    pub version: &'static str,
    /// First ciclo (its starting year) the version applies to.
    pub desde: u16,
    pub ambitos: &'static [Ambito],
}

/// Ruta de Mejora Escolar (2014-2019): the four priorities of the Sistema Básico de Mejora
/// (seed 004).
const RME_2014: &[Ambito] = &[
    Ambito {
        clave: "normalidad_minima",
        nombre: "Normalidad mínima de operación escolar",
    },
    Ambito {
        clave: "mejora_aprendizajes",
        nombre: "Mejora de los aprendizajes",
    },
    Ambito {
        clave: "rezago_abandono",
        nombre: "Rezago y abandono escolar",
    },
    Ambito {
        clave: "convivencia_escolar",
        nombre: "Convivencia escolar sana, pacífica y formativa",
    },
];

/// Programa Escolar de Mejora Continua (2019 onwards): the eight ámbitos of the diagnóstico.
const PEMC_2019: &[Ambito] = &[
    Ambito {
        clave: "aprovechamiento_asistencia",
        nombre: "Aprovechamiento académico y asistencia de los alumnos",
    },
    Ambito {
        clave: "practicas_docentes",
        nombre: "Prácticas docentes y directivas",
    },
    Ambito {
        clave: "formacion_docente",
        nombre: "Formación docente",
    },
    Ambito {
        clave: "planes_programas",
        nombre: "Avance de los planes y programas educativos",
    },
    Ambito {
        clave: "participacion_comunidad",
        nombre: "Participación de la comunidad",
    },
    Ambito {
        clave: "autoridad_escolar",
        nombre: "Desempeño de la autoridad escolar",
    },
    Ambito {
        clave: "infraestructura",
        nombre: "Infraestructura y equipamiento",
    },
    Ambito {
        clave: "carga_administrativa",
        nombre: "Carga administrativa",
    },
];

/// Every published version, oldest first.
pub const CATALOGOS: &[Catalogo] = &[
    Catalogo {
        version: "rme-2014",
        desde: 2014,
        ambitos: RME_2014,
    },
    Catalogo {
        version: "pemc-2019",
        desde: 2019,
        ambitos: PEMC_2019,
    },
];

impl Catalogo {
    /// The catalogue in force for a ciclo (the newest whose `desde` is not after it).
    pub fn para_ciclo(ciclo: CicloEscolar) -> &'static Catalogo {
        CATALOGOS
            .iter()
            .rev()
            .find(|c| c.desde <= ciclo.inicio())
            .unwrap_or(&CATALOGOS[0])
    }

    /// A catalogue by its version key, as stored in a document.
    pub fn por_version(version: &str) -> Option<&'static Catalogo> {
        CATALOGOS.iter().find(|c| c.version == version)
    }

    /// Validates an ámbito key typed by a person against this catalogue.
    pub fn ambito(&self, clave: &str) -> Result<&'static Ambito, ModelError> {
        let t = clave.trim();
        self.ambitos.iter().find(|a| a.clave == t).ok_or_else(|| {
            let claves: Vec<_> = self.ambitos.iter().map(|a| a.clave).collect();
            ModelError::invalid(
                "ámbito",
                clave,
                format!("el catálogo {} acepta: {}", self.version, claves.join(", ")),
            )
        })
    }

    /// The display name of a key, or the key itself when unknown (a newer writer's key).
    pub fn nombre(&self, clave: &str) -> String {
        self.ambitos
            .iter()
            .find(|a| a.clave == clave)
            .map(|a| a.nombre.to_string())
            .unwrap_or_else(|| clave.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_cycle() {
        let c = |s| Catalogo::para_ciclo(CicloEscolar::parse(s).unwrap()).version;
        assert_eq!(c("2016-2017"), "rme-2014");
        assert_eq!(c("2019-2020"), "pemc-2019");
        assert_eq!(c("2025-2026"), "pemc-2019");
        assert_eq!(c("2005-2006"), "rme-2014");
    }

    #[test]
    fn unknown_ambito_names_the_accepted_keys() {
        let cat = Catalogo::por_version("pemc-2019").unwrap();
        let e = cat.ambito("lectura").unwrap_err().to_string();
        assert!(e.contains("carga_administrativa"), "{e}");
        assert!(cat.ambito("formacion_docente").is_ok());
    }
}
