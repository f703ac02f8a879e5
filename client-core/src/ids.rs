//! Domain newtypes, parsed once at the edge: a value of these types is valid by construction,
//! so nothing inside the model re-checks a CCT, a ciclo or a date.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ModelError;

/// Clave de Centro de Trabajo: 2-digit state (01-32), 3-letter type, 4 digits, 1 check letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cct(String);

/// Educational level of a school, read from the type letters of its CCT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Nivel {
    Preescolar,
    Primaria,
    Secundaria,
    Otro,
}

impl Nivel {
    pub fn as_str(self) -> &'static str {
        match self {
            Nivel::Preescolar => "preescolar",
            Nivel::Primaria => "primaria",
            Nivel::Secundaria => "secundaria",
            Nivel::Otro => "otro",
        }
    }
}

impl Cct {
    const ESPERADO: &'static str = "se esperan 10 caracteres: 2 dígitos de entidad (01 a 32), 3 letras de tipo, \
         4 dígitos y 1 letra verificadora, p. ej. 07DPR0123X";

    pub fn parse(s: &str) -> Result<Cct, ModelError> {
        let t = s.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        let ok = b.len() == 10
            && b[..2].iter().all(u8::is_ascii_digit)
            && b[2..5].iter().all(u8::is_ascii_uppercase)
            && b[5..9].iter().all(u8::is_ascii_digit)
            && b[9].is_ascii_uppercase();
        let entidad: u32 = if ok { t[..2].parse().unwrap_or(0) } else { 0 };
        if !ok || !(1..=32).contains(&entidad) {
            return Err(ModelError::invalid("CCT", s, Self::ESPERADO));
        }
        Ok(Cct(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two-digit state (entidad federativa) code.
    pub fn entidad(&self) -> &str {
        &self.0[..2]
    }

    /// Best-effort level from the CCT's type letters (JN preescolar, PR/PB primaria,
    /// ES/ST/TV secundaria).
    pub fn nivel(&self) -> Nivel {
        match &self.0[3..5] {
            "JN" | "CC" | "IN" => Nivel::Preescolar,
            "PR" | "PB" => Nivel::Primaria,
            "ES" | "ST" | "TV" | "SN" => Nivel::Secundaria,
            _ => Nivel::Otro,
        }
    }
}

/// A zone's state-assigned key (e.g. `07FIZ0014`): 4 to 20 letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZonaClave(String);

impl ZonaClave {
    pub fn parse(s: &str) -> Result<ZonaClave, ModelError> {
        let t = s.trim().to_ascii_uppercase();
        if !(4..=20).contains(&t.len()) || !t.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ModelError::invalid(
                "clave de zona",
                s,
                "se esperan de 4 a 20 letras y dígitos, p. ej. 07FIZ0014",
            ));
        }
        Ok(ZonaClave(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ciclo escolar `AAAA-AAAA` with consecutive years, e.g. `2025-2026`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CicloEscolar {
    inicio: u16,
}

impl CicloEscolar {
    pub fn parse(s: &str) -> Result<CicloEscolar, ModelError> {
        let err = || {
            ModelError::invalid(
                "ciclo escolar",
                s,
                "se espera AAAA-AAAA con años consecutivos entre 2000 y 2100, p. ej. 2025-2026",
            )
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(err)?;
        if a.len() != 4 || b.len() != 4 {
            return Err(err());
        }
        let a: u16 = a.parse().map_err(|_| err())?;
        let b: u16 = b.parse().map_err(|_| err())?;
        if !(2000..2100).contains(&a) || b != a + 1 {
            return Err(err());
        }
        Ok(CicloEscolar { inicio: a })
    }

    /// The first calendar year of the cycle.
    pub fn inicio(self) -> u16 {
        self.inicio
    }

    /// The ciclo that contains a date: a cycle runs from August to July.
    pub fn que_contiene(fecha: Fecha) -> CicloEscolar {
        let d = fecha.0;
        let y = if d.month() >= 8 {
            d.year()
        } else {
            d.year() - 1
        };
        CicloEscolar {
            inicio: y.clamp(2000, 2099) as u16,
        }
    }
}

impl fmt::Display for CicloEscolar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.inicio, self.inicio + 1)
    }
}

/// A calendar date. Accepts `AAAA-MM-DD` and the Mexican `DD/MM/AAAA`; stored as `AAAA-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fecha(NaiveDate);

impl Fecha {
    pub fn parse(s: &str) -> Result<Fecha, ModelError> {
        let t = s.trim();
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(t, "%d/%m/%Y"))
            .ok()
            .filter(|d| (2000..2100).contains(&d.year()))
            .map(Fecha)
            .ok_or_else(|| {
                ModelError::invalid(
                    "fecha",
                    s,
                    "se espera una fecha real en formato AAAA-MM-DD o DD/MM/AAAA, p. ej. 2026-03-27",
                )
            })
    }

    pub fn from_naive(d: NaiveDate) -> Fecha {
        Fecha(d)
    }

    pub fn naive(self) -> NaiveDate {
        self.0
    }

    /// Whole days from `self` to `other` (positive when `other` is later).
    pub fn dias_hasta(self, other: Fecha) -> i64 {
        (other.0 - self.0).num_days()
    }
}

impl fmt::Display for Fecha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// The id of a record inside a collection (acuerdo, objetivo, meta, ...). Generated from
/// randomness supplied by the caller, 10 characters of lowercase base32. Ids written by other
/// clients are accepted if they are 1-64 characters of letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(String);

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

impl RecordId {
    /// A new id from 50 random bits supplied by the caller (the model does no I/O).
    pub fn from_random(bits: u64) -> RecordId {
        let s = (0..10)
            .map(|i| BASE32[((bits >> (i * 5)) & 31) as usize] as char)
            .collect();
        RecordId(s)
    }

    pub fn parse(s: &str) -> Result<RecordId, ModelError> {
        let t = s.trim();
        if t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(ModelError::invalid(
                "id",
                s,
                "se espera el id que muestran los listados (letras y dígitos)",
            ));
        }
        Ok(RecordId(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An automerge-repo document id: 16 bytes, shown as bs58check (URLs `automerge:<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    pub fn from_bytes(b: [u8; 16]) -> DocumentId {
        DocumentId(b)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Deterministic id of a school's document for a ciclo.
    pub fn escuela(cct: &Cct, ciclo: CicloEscolar) -> DocumentId {
        Self::derive(&format!("bitacora/escuela/v1/{}/{}", cct.as_str(), ciclo))
    }

    /// Deterministic id of a zone's document for a ciclo.
    pub fn zona(zona: &ZonaClave, ciclo: CicloEscolar) -> DocumentId {
        Self::derive(&format!("bitacora/zona/v1/{}/{}", zona.as_str(), ciclo))
    }

    fn derive(name: &str) -> DocumentId {
        let digest = Sha256::digest(name.as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        // Shape it as an RFC 9562 version-8 (custom) UUID, as automerge-repo ids are UUIDs.
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        DocumentId(b)
    }

    pub fn parse(s: &str) -> Result<DocumentId, ModelError> {
        let t = s.trim();
        let t = t.strip_prefix("automerge:").unwrap_or(t);
        let bytes = bs58::decode(t).with_check(None).into_vec().ok();
        match bytes.as_deref().map(<[u8; 16]>::try_from) {
            Some(Ok(b)) => Ok(DocumentId(b)),
            _ => Err(ModelError::invalid(
                "id de documento",
                s,
                "se espera un id de automerge-repo (bs58check de 16 bytes)",
            )),
        }
    }

    pub fn url(&self) -> String {
        format!("automerge:{self}")
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).with_check().into_string())
    }
}

macro_rules! string_newtype_impls {
    ($($t:ty),*) => {$(
        impl FromStr for $t {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, ModelError> {
                <$t>::parse(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = ModelError;
            fn try_from(s: String) -> Result<Self, ModelError> {
                <$t>::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}
string_newtype_impls!(Cct, ZonaClave, CicloEscolar, Fecha, RecordId, DocumentId);

impl fmt::Display for Cct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for ZonaClave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cct_accepts_valid_and_normalises_case() {
        let c = Cct::parse(" 07dpr0123x ").unwrap();
        assert_eq!(c.as_str(), "07DPR0123X");
        assert_eq!(c.nivel(), Nivel::Primaria);
        assert_eq!(Cct::parse("07DJN0001A").unwrap().nivel(), Nivel::Preescolar);
    }

    #[test]
    fn cct_rejects_bad_forms() {
        for bad in [
            "",
            "07DPR0123",
            "07DPR0123XX",
            "33DPR0123X",
            "00DPR0123X",
            "07D1R0123X",
            "07DPR01A3X",
            "07DPR01234",
        ] {
            let e = Cct::parse(bad).unwrap_err();
            assert!(
                matches!(e, ModelError::Invalid { campo: "CCT", .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn ciclo_requires_consecutive_years() {
        assert_eq!(
            CicloEscolar::parse("2025-2026").unwrap().to_string(),
            "2025-2026"
        );
        for bad in [
            "2025-2027",
            "2025",
            "25-26",
            "2026-2025",
            "abcd-efgh",
            "1999-2000",
        ] {
            assert!(CicloEscolar::parse(bad).is_err(), "{bad}");
        }
        let f = Fecha::parse("2026-03-01").unwrap();
        assert_eq!(CicloEscolar::que_contiene(f).to_string(), "2025-2026");
    }

    #[test]
    fn fechas_in_both_forms() {
        assert_eq!(
            Fecha::parse("27/03/2026").unwrap().to_string(),
            "2026-03-27"
        );
        assert_eq!(
            Fecha::parse("2026-03-27").unwrap().to_string(),
            "2026-03-27"
        );
        for bad in ["2026-02-30", "30/02/2026", "mañana", "2026/03/27", ""] {
            assert!(Fecha::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn document_ids_are_deterministic_and_roundtrip() {
        let c = Cct::parse("07DPR0123X").unwrap();
        let y = CicloEscolar::parse("2025-2026").unwrap();
        let a = DocumentId::escuela(&c, y);
        assert_eq!(a, DocumentId::escuela(&c, y));
        assert_ne!(
            a,
            DocumentId::escuela(&c, CicloEscolar::parse("2026-2027").unwrap())
        );
        assert_eq!(DocumentId::parse(&a.url()).unwrap(), a);
        assert!(DocumentId::parse("abc").is_err());
    }

    #[test]
    fn record_ids() {
        let id = RecordId::from_random(0x1234_5678_9abc);
        assert_eq!(id.as_str().len(), 10);
        assert_eq!(RecordId::parse(id.as_str()).unwrap(), id);
        assert!(RecordId::parse("a/b").is_err());
        assert!(RecordId::parse("").is_err());
    }
}
