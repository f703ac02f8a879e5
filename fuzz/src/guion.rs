//! The input of `sync_server`: a script of steps, each a few bytes, so that mutating the input
//! mostly yields another meaningful script (a valid handshake, syncs of real documents with
//! changes by enrolled and foreign actors) instead of frames the decoder refuses at once.
//!
//! Every step starts with an opcode byte (taken modulo the number of steps), then a connection
//! slot byte (modulo 5: the users of [`crate::escena::USUARIOS`]). Missing bytes read as zero, so
//! every byte string is a script. Lengths are one or two bytes (little-endian).

/// A document of the scene, by index into [`crate::escena::documentos`] (byte modulo 4).
pub type Doc = u8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paso {
    /// Any bytes as one binary frame.
    Frame { slot: u8, bytes: Vec<u8> },
    /// A `join` built by the codec. Flags: 1 unsupported version only, 2 with a storage id,
    /// 4 ephemeral, 8 without metadata.
    Join { slot: u8, flags: u8 },
    /// A local edit in the slot's copy of a document, as one change by the chosen actor
    /// (modulo 7: the five users' actors, an unknown actor, the document's genesis actor).
    Editar {
        slot: u8,
        doc: Doc,
        actor: u8,
        ops: Vec<u8>,
    },
    /// The next message of automerge's sync protocol from the slot's copy, as `sync` (or
    /// `request`).
    Sincronizar { slot: u8, doc: Doc, request: bool },
    /// A `sync` that pushes every change of the slot's copy at once, whatever the sync state
    /// says. Flags: 1 one chunk per change instead of one compressed chunk, 2 claim no heads.
    /// Then byte flips (offset modulo the length, xor) applied to the encoded sync message.
    Empujar {
        slot: u8,
        doc: Doc,
        flags: u8,
        flips: Vec<(u16, u8)>,
    },
    /// A `sync` (or `request`) whose data is any bytes.
    Datos {
        slot: u8,
        doc: Doc,
        request: bool,
        data: Vec<u8>,
    },
    /// An `ephemeral` message.
    Efimero { slot: u8, doc: Doc, data: Vec<u8> },
    /// Another message (modulo 8): leave, error, doc-unavailable, remote-subscription-change,
    /// remote-heads-changed, a `sync` from another sender, `peer`, a second `join`.
    Otro { slot: u8, tipo: u8, doc: Doc },
    /// What the connection sends when the hub wakes it up.
    Notificar { slot: u8 },
    /// The peer closes the connection (sync states are persisted); the next step on the slot
    /// opens a new one.
    Cerrar { slot: u8 },
}

const PASOS: u8 = 10;
/// Steps beyond this are ignored, so one input stays fast.
pub const MAX_PASOS: usize = 48;

struct Lector<'a>(&'a [u8]);

impl Lector<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

/// Reads a script; never fails.
pub fn leer(input: &[u8]) -> Vec<Paso> {
    let mut r = Lector(input);
    let mut out = Vec::new();
    while !r.0.is_empty() && out.len() < MAX_PASOS {
        let op = r.u8() % PASOS;
        let slot = r.u8() % 5;
        out.push(match op {
            0 => {
                let n = r.u16() as usize;
                Paso::Frame {
                    slot,
                    bytes: r.bytes(n),
                }
            }
            1 => Paso::Join {
                slot,
                flags: r.u8(),
            },
            2 => {
                let (doc, actor) = (r.u8() % 4, r.u8() % 7);
                let n = r.u8() as usize;
                Paso::Editar {
                    slot,
                    doc,
                    actor,
                    ops: r.bytes(n),
                }
            }
            3 => Paso::Sincronizar {
                slot,
                doc: r.u8() % 4,
                request: r.u8() & 1 == 1,
            },
            4 => {
                let (doc, flags) = (r.u8() % 4, r.u8());
                let n = r.u8() as usize % 8;
                Paso::Empujar {
                    slot,
                    doc,
                    flags,
                    flips: (0..n).map(|_| (r.u16(), r.u8())).collect(),
                }
            }
            5 => {
                let (doc, request) = (r.u8() % 4, r.u8() & 1 == 1);
                let n = r.u16() as usize;
                Paso::Datos {
                    slot,
                    doc,
                    request,
                    data: r.bytes(n),
                }
            }
            6 => {
                let doc = r.u8() % 4;
                let n = r.u8() as usize;
                Paso::Efimero {
                    slot,
                    doc,
                    data: r.bytes(n),
                }
            }
            7 => Paso::Otro {
                slot,
                tipo: r.u8() % 8,
                doc: r.u8() % 4,
            },
            8 => Paso::Notificar { slot },
            _ => Paso::Cerrar { slot },
        });
    }
    out
}

/// Writes a script ([`leer`] reads it back), for the seed corpus.
pub fn escribir(pasos: &[Paso]) -> Vec<u8> {
    let mut o = Vec::new();
    let len16 = |o: &mut Vec<u8>, b: &[u8]| {
        let n = u16::try_from(b.len()).expect("at most 65535 bytes");
        o.extend_from_slice(&n.to_le_bytes());
        o.extend_from_slice(b);
    };
    let len8 = |o: &mut Vec<u8>, b: &[u8]| {
        o.push(u8::try_from(b.len()).expect("at most 255 bytes"));
        o.extend_from_slice(b);
    };
    for p in pasos {
        match p {
            Paso::Frame { slot, bytes } => {
                o.extend([0, *slot]);
                len16(&mut o, bytes);
            }
            Paso::Join { slot, flags } => o.extend([1, *slot, *flags]),
            Paso::Editar {
                slot,
                doc,
                actor,
                ops,
            } => {
                o.extend([2, *slot, *doc, *actor]);
                len8(&mut o, ops);
            }
            Paso::Sincronizar { slot, doc, request } => {
                o.extend([3, *slot, *doc, u8::from(*request)])
            }
            Paso::Empujar {
                slot,
                doc,
                flags,
                flips,
            } => {
                assert!(flips.len() < 8);
                o.extend([4, *slot, *doc, *flags, flips.len() as u8]);
                for (pos, x) in flips {
                    o.extend_from_slice(&pos.to_le_bytes());
                    o.push(*x);
                }
            }
            Paso::Datos {
                slot,
                doc,
                request,
                data,
            } => {
                o.extend([5, *slot, *doc, u8::from(*request)]);
                len16(&mut o, data);
            }
            Paso::Efimero { slot, doc, data } => {
                o.extend([6, *slot, *doc]);
                len8(&mut o, data);
            }
            Paso::Otro { slot, tipo, doc } => o.extend([7, *slot, *tipo, *doc]),
            Paso::Notificar { slot } => o.extend([8, *slot]),
            Paso::Cerrar { slot } => o.extend([9, *slot]),
        }
    }
    o
}

/// One primitive edit of [`Paso::Editar`]'s `ops`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// An acuerdo through the model (`escuela::agregar_acuerdo`), with this text.
    Acuerdo { texto: String },
    /// A scalar at a root key the model reads (`tipo`, `cct`, `schema_version`, …) or any key.
    Escalar { clave: u8, valor: u8 },
    /// A map record under a collection the model reads, with a `texto` field.
    Registro {
        coleccion: u8,
        id: u8,
        texto: String,
    },
    /// A splice into a text object at the root (created if missing).
    Texto { pos: u8, borrar: u8, texto: String },
    /// Deletes a root key.
    Borrar { clave: u8 },
    /// Increments a counter at the root (created if missing).
    Contador { delta: i8 },
}

/// Root keys an [`Op::Escalar`] or [`Op::Borrar`] may touch (byte modulo the length).
pub const CLAVES: [&str; 8] = [
    "tipo",
    "cct",
    "ciclo",
    "schema_version",
    "nombre",
    "zona",
    "catalogo",
    "otra",
];
/// Collections an [`Op::Registro`] may write to.
pub const COLECCIONES: [&str; 4] = ["acuerdos", "sesiones", "pemc", "practicas"];

/// Reads the ops of an edit; never fails.
pub fn ops(bytes: &[u8]) -> Vec<Op> {
    let mut r = Lector(bytes);
    let mut out = Vec::new();
    let texto = |r: &mut Lector<'_>| {
        let n = (r.u8() % 32) as usize;
        String::from_utf8_lossy(&r.bytes(n)).into_owned()
    };
    while !r.0.is_empty() && out.len() < 16 {
        out.push(match r.u8() % 6 {
            0 => Op::Acuerdo {
                texto: texto(&mut r),
            },
            1 => Op::Escalar {
                clave: r.u8(),
                valor: r.u8(),
            },
            2 => Op::Registro {
                coleccion: r.u8(),
                id: r.u8(),
                texto: texto(&mut r),
            },
            3 => Op::Texto {
                pos: r.u8(),
                borrar: r.u8(),
                texto: texto(&mut r),
            },
            4 => Op::Borrar { clave: r.u8() },
            _ => Op::Contador {
                delta: r.u8() as i8,
            },
        });
    }
    out
}

/// Writes ops ([`ops`] reads them back), for the seed corpus.
pub fn escribir_ops(ops: &[Op]) -> Vec<u8> {
    let mut o = Vec::new();
    let texto = |o: &mut Vec<u8>, t: &str| {
        assert!(t.len() < 32);
        o.push(t.len() as u8);
        o.extend_from_slice(t.as_bytes());
    };
    for op in ops {
        match op {
            Op::Acuerdo { texto: t } => {
                o.push(0);
                texto(&mut o, t);
            }
            Op::Escalar { clave, valor } => o.extend([1, *clave, *valor]),
            Op::Registro {
                coleccion,
                id,
                texto: t,
            } => {
                o.extend([2, *coleccion, *id]);
                texto(&mut o, t);
            }
            Op::Texto {
                pos,
                borrar,
                texto: t,
            } => {
                o.extend([3, *pos, *borrar]);
                texto(&mut o, t);
            }
            Op::Borrar { clave } => o.extend([4, *clave]),
            Op::Contador { delta } => o.extend([5, *delta as u8]),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_ops_round_trip() {
        let pasos = vec![
            Paso::Join { slot: 0, flags: 2 },
            Paso::Editar {
                slot: 0,
                doc: 0,
                actor: 0,
                ops: escribir_ops(&[
                    Op::Acuerdo {
                        texto: "uno".into(),
                    },
                    Op::Escalar { clave: 3, valor: 9 },
                    Op::Registro {
                        coleccion: 1,
                        id: 4,
                        texto: "x".into(),
                    },
                    Op::Texto {
                        pos: 1,
                        borrar: 0,
                        texto: "abc".into(),
                    },
                    Op::Borrar { clave: 2 },
                    Op::Contador { delta: -3 },
                ]),
            },
            Paso::Sincronizar {
                slot: 0,
                doc: 0,
                request: true,
            },
            Paso::Empujar {
                slot: 1,
                doc: 2,
                flags: 1,
                flips: vec![(7, 1)],
            },
            Paso::Datos {
                slot: 2,
                doc: 1,
                request: false,
                data: vec![1, 2, 3],
            },
            Paso::Efimero {
                slot: 3,
                doc: 2,
                data: vec![9],
            },
            Paso::Otro {
                slot: 4,
                tipo: 5,
                doc: 3,
            },
            Paso::Frame {
                slot: 0,
                bytes: vec![0xa0],
            },
            Paso::Notificar { slot: 1 },
            Paso::Cerrar { slot: 1 },
        ];
        assert_eq!(leer(&escribir(&pasos)), pasos);
        let Paso::Editar { ops: o, .. } = &pasos[1] else {
            unreachable!()
        };
        assert_eq!(escribir_ops(&ops(o)), *o);
    }
}
