//! Errors of the document model: what a person typed wrong, what does not exist, what the
//! document itself cannot answer. Messages are Spanish because they reach teachers verbatim;
//! the variants are precise so developers and the server can match on them.

use thiserror::Error;

/// An error from the document model or a domain newtype.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// A value typed by a person (or received from elsewhere) is not of the accepted form.
    #[error("{campo}: «{valor}» no es válido; {esperado}")]
    Invalid {
        campo: &'static str,
        valor: String,
        esperado: String,
    },
    /// Values that are each valid but do not add up together (e.g. more students needing
    /// support than enrolled).
    #[error("datos inconsistentes: {0}")]
    Inconsistent(String),
    /// A record id that the document does not hold.
    #[error("no existe {tipo} con id «{id}»")]
    NotFound { tipo: &'static str, id: String },
    /// The document does not have the shape this version expects (a bug or a foreign writer).
    #[error("el documento no tiene la forma esperada: {0}")]
    Shape(String),
    /// An error reported by automerge itself.
    #[error("error de automerge: {0}")]
    Automerge(String),
}

impl ModelError {
    /// Shorthand for [`ModelError::Invalid`].
    pub fn invalid(
        campo: &'static str,
        valor: impl Into<String>,
        esperado: impl Into<String>,
    ) -> Self {
        ModelError::Invalid {
            campo,
            valor: valor.into(),
            esperado: esperado.into(),
        }
    }

    /// True when the error is the caller's input (exit code 2 in the CLI, 400 on the server).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ModelError::Invalid { .. } | ModelError::Inconsistent(_) | ModelError::NotFound { .. }
        )
    }
}

impl From<automerge::AutomergeError> for ModelError {
    fn from(e: automerge::AutomergeError) -> Self {
        ModelError::Automerge(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_se_lee_igual_para_campos_femeninos_y_masculinos() {
        let e = ModelError::invalid("fecha", "2026-02-30", "se espera una fecha real");
        assert_eq!(
            e.to_string(),
            "fecha: «2026-02-30» no es válido; se espera una fecha real"
        );
        let e = ModelError::invalid("CCT", "x", "10 caracteres");
        assert_eq!(e.to_string(), "CCT: «x» no es válido; 10 caracteres");
    }
}
