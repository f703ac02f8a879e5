//! `hostile_inputs`: a running zone server (in-process, 127.0.0.1, port 0) against clients that
//! lie, while an honest teacher keeps syncing. Every attack must end in a clear refusal (an
//! `error` message and a closed socket, a 4xx with a Spanish message, or a closed TCP
//! connection), the server must stay up, and the honest client's syncs must keep working; their
//! latency during each attack is measured and printed as a table (docs/security.md,
//! "hostile_inputs"). Each measurement has a new honest teacher of a new school, so every row
//! starts from the same small document; the attacks aim at another school.
//!
//! The attacks: malformed CBOR and unknown message types; `sync` for documents never joined;
//! oversized frames (polite refusal, cut-off, and a frame header announcing 2^63 bytes); slow
//! upgrades (half an HTTP request, then silence) and thousands of idle TCP sockets; changes by
//! forged actors (with `bitacora_tests::cliente`, the raw client `authz_matrix` uses); a token
//! replayed after its revocation; path tricks in `GET /v1/paquetes/{cct}`; SQL metacharacters
//! and invalid UTF-8 in document text (through sync, and as raw bytes inside a change), in the
//! registry (user ids, names, CCTs, zone keys, token ids), in actor ids, tokens, query strings,
//! CBOR text fields and the dashboard's sign-in form; and the limits of `config.limits`: a
//! flooding connection, a flooding token, too many connections of one token, too many documents
//! on one connection. [`rutas_de_paquetes_en_la_linea_de_comandos`] tries the path tricks on
//! `bitacora bundle export|import` and `bitacora-server admin bundle exportar`, which never
//! reach a server.
//!
//! `HOSTILE_SYNCS` sets how many honest syncs are measured per attack (6 by default);
//! `HOSTILE_SOCKETS` the number of idle sockets (2000 by default, fewer if the file-descriptor
//! limit would not allow twice that in this process, which holds both ends); `HOSTILE_VERBOSE`
//! prints every honest sync and the server's answer to the changes that are not UTF-8.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
use bitacora_core::bundle::genesis_de;
use bitacora_core::engine::sync_once;
use bitacora_core::ids::{DocumentId, RecordId};
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{self, NuevoAcuerdo};
use bitacora_core::protocol::Message;
use bitacora_core::store::{DocInfo, Store};
use bitacora_server::admin;
use bitacora_server::db::Database;
use bitacora_server::hub::assemble;
use bitacora_tests::cliente::{
    Cliente, Escritura, Lectura, PLAZO, Respuesta, Via, cambio_sobre, direccion, http_crudo,
    http_get, upgrade,
};
use bitacora_tests::server::{TestServer, enrolar_http, test_config};
use bitacora_tests::{Replica, bin, env_or};
use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const ZONA: &str = "07FIZ0014";
const CCT: &str = "07DPR0001A";
const CCT_OTRA: &str = "07DPR0002B";
/// `limits.max_message_bytes` of this server: small, so oversized frames are cheap to send.
const MAX_MENSAJE: usize = 1024 * 1024;
/// `limits.max_docs_per_peer` of this server.
const MAX_DOCS: usize = 16;
/// `limits.http_header_timeout_secs` of this server.
const PLAZO_CABECERAS: u64 = 3;
/// Every honest sync must finish within this (it takes milliseconds).
const LIMITE_SYNC: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The world: a zone, the attacked school and another, attackers, and honest teachers.

struct Mundo {
    srv: TestServer,
    /// The school the attacks aim at.
    escuela: DocInfo,
    /// Honest schools registered so far.
    honestas: std::sync::atomic::AtomicU32,
}

impl Mundo {
    async fn nuevo() -> Result<Mundo> {
        let dir = tempfile::tempdir()?;
        let mut config = test_config(dir.path().to_path_buf());
        config.limits.max_message_bytes = MAX_MENSAJE;
        config.limits.max_docs_per_peer = MAX_DOCS;
        config.limits.http_header_timeout_secs = PLAZO_CABECERAS;
        let db = Database::connect(&config.database_url()).await?;
        let srv = TestServer::start_on(dir, config, db).await?;
        srv.zona(ZONA).await?;
        let escuela = srv.escuela(CCT, ZONA).await?;
        srv.escuela(CCT_OTRA, ZONA).await?;
        // The attackers: a colleague at the same school (may write its document), and a
        // teacher of the other school.
        admin::usuario_add(&srv.db, "mal", "Colega", "docente", Some(CCT), None).await?;
        admin::usuario_add(&srv.db, "beto", "Otra", "docente", Some(CCT_OTRA), None).await?;
        Ok(Mundo {
            srv,
            escuela,
            honestas: Default::default(),
        })
    }

    /// A fresh token of the attacker `usuario` (its own `jti`, so its own rate).
    async fn token(&self, usuario: &str) -> Result<String> {
        self.srv.token(usuario).await
    }

    async fn conectar(&self, token: &str) -> Result<Cliente> {
        Cliente::conectar(&self.srv.url, token, Via::Cabecera).await
    }

    fn url(&self) -> &str {
        &self.srv.url
    }
}

/// The honest teacher: her own school (a new one for each measurement, so every row starts from
/// the same small document), her own token and store, an enrolled device, one new acuerdo per
/// sync.
struct Honesta {
    _dir: tempfile::TempDir,
    store: Store,
    cct: String,
    token: String,
    doc: DocumentId,
    n: u64,
}

impl Honesta {
    async fn nueva(m: &Mundo) -> Result<Honesta> {
        let k = m.honestas.fetch_add(1, Ordering::SeqCst) + 100;
        let cct = format!("07DPR{k:04}H");
        let info = m.srv.escuela(&cct, ZONA).await?;
        let token = m
            .srv
            .usuario(&format!("ana{k}"), "docente", Some(&cct), None)
            .await?;
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path()).await?;
        store.create(&info, &mut genesis_de(&info)?, 0).await?;
        enrolar_http(m.url(), &token, &store.actor().await?.to_hex_string()).await?;
        Ok(Honesta {
            _dir: dir,
            store,
            cct,
            token,
            doc: info.id,
            n: 0,
        })
    }

    /// Writes one acuerdo with `texto` and syncs; fails unless the server confirmed it.
    async fn escribir_y_sincronizar(
        &mut self,
        url: &str,
        texto: &str,
    ) -> Result<(RecordId, Duration)> {
        self.n += 1;
        let actor = self.store.actor().await?;
        let mut doc = self
            .store
            .load(&self.doc)
            .await?
            .context("the school's document")?
            .with_actor(actor);
        let antes = doc.get_heads();
        let rid = RecordId::parse(&format!("honesta-{}", self.n))?;
        escuela::agregar_acuerdo(
            &mut doc,
            &Ctx {
                ahora: 1_757_000_000 + self.n as i64,
                autor: Some("Ana"),
            },
            &rid,
            &NuevoAcuerdo {
                texto: texto.to_string(),
                responsables: vec!["Ana".into()],
                fecha_compromiso: None,
                sesion_origen: None,
            },
        )?;
        self.store
            .append(&self.doc, &doc.save_after(&antes))
            .await?;
        let mut heads = doc.get_heads();
        heads.sort();
        let t = Instant::now();
        let informe = sync_once(&self.store, url, &self.token, &[self.doc], LIMITE_SYNC).await?;
        let dt = t.elapsed();
        if std::env::var_os("HOSTILE_VERBOSE").is_some() {
            eprintln!(
                "honest sync {}: {dt:?}, {} messages, {} bytes out, {} bytes in",
                self.n, informe.mensajes, informe.bytes_enviados, informe.bytes_recibidos
            );
        }
        let mut confirmados = informe
            .confirmados
            .get(&self.doc)
            .cloned()
            .context("the document was synced")?;
        confirmados.sort();
        ensure!(confirmados == heads, "the server confirmed the new acuerdo");
        Ok((rid, dt))
    }

    async fn sincronizar(&mut self, url: &str) -> Result<Duration> {
        let n = self.n + 1;
        Ok(self
            .escribir_y_sincronizar(url, &format!("Acuerdo honesto {n}"))
            .await?
            .1)
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring: the honest teacher syncs while an attack repeats.

struct Medicion {
    ataque: String,
    rondas: usize,
    latencias: Vec<Duration>,
}

impl Medicion {
    fn p50(&self) -> Duration {
        let mut l = self.latencias.clone();
        l.sort();
        l[l.len() / 2]
    }

    fn max(&self) -> Duration {
        self.latencias.iter().copied().max().unwrap_or_default()
    }
}

fn syncs_por_ataque() -> usize {
    env_or("HOSTILE_SYNCS", || 6usize).max(1)
}

/// Runs `ataque` over and over (at least once) while the honest teacher syncs
/// [`syncs_por_ataque`] times; each round of the attack checks its own outcome.
async fn medir<F, Fut>(m: &Mundo, nombre: &str, mut ataque: F) -> Result<Medicion>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut honesta = Honesta::nueva(m).await?;
    let url = m.url();
    let hecho = AtomicBool::new(false);
    let honesto = async {
        let mut latencias = Vec::new();
        for _ in 0..syncs_por_ataque() {
            let r = honesta.sincronizar(url).await;
            if r.is_err() {
                hecho.store(true, Ordering::SeqCst);
            }
            latencias.push(r.with_context(|| format!("honest sync during «{nombre}»"))?);
        }
        hecho.store(true, Ordering::SeqCst);
        Ok::<_, anyhow::Error>(latencias)
    };
    let atacante = async {
        let mut rondas = 0;
        loop {
            ataque()
                .await
                .with_context(|| format!("attack «{nombre}», round {}", rondas + 1))?;
            rondas += 1;
            if hecho.load(Ordering::SeqCst) {
                return Ok::<_, anyhow::Error>(rondas);
            }
        }
    };
    let (latencias, rondas) = tokio::join!(honesto, atacante);
    informe(Medicion {
        ataque: nombre.to_string(),
        rondas: rondas?,
        latencias: latencias?,
    })
}

fn informe(m: Medicion) -> Result<Medicion> {
    eprintln!(
        "{}: {} rounds, honest sync p50 {:?} max {:?}",
        m.ataque,
        m.rondas,
        m.p50(),
        m.max()
    );
    Ok(m)
}

/// A new honest teacher syncs while the caller holds an attack open (sockets).
async fn medir_mientras(m: &Mundo, nombre: &str) -> Result<Medicion> {
    let mut honesta = Honesta::nueva(m).await?;
    let url = m.url();
    let mut latencias = Vec::new();
    for _ in 0..syncs_por_ataque() {
        latencias.push(
            honesta
                .sincronizar(url)
                .await
                .with_context(|| format!("honest sync during «{nombre}»"))?,
        );
    }
    informe(Medicion {
        ataque: nombre.to_string(),
        rondas: 1,
        latencias,
    })
}

fn tabla(mediciones: &[Medicion]) -> String {
    let mut s = String::from(
        "| attack | attack rounds | honest syncs | p50 | max |\n|---|---|---|---|---|\n",
    );
    for m in mediciones {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms |\n",
            m.ataque,
            m.rondas,
            m.latencias.len(),
            m.p50().as_secs_f64() * 1000.0,
            m.max().as_secs_f64() * 1000.0
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Outcomes.

/// The server answers with `error` (mentioning `needle`) and then closes. `sync` messages it
/// pushes meanwhile (the honest teacher's changes to a document this connection follows) are
/// skipped.
async fn error_y_cierre(c: &mut Cliente, needle: &str) -> Result<String> {
    loop {
        match c.frame().await? {
            Some((_, Message::Error { message })) => {
                ensure!(
                    message.contains(needle),
                    "error «{message}» should mention «{needle}»"
                );
                c.cerrada().await?;
                return Ok(message);
            }
            Some((_, Message::Sync { .. })) => {}
            other => bail!("expected `error` about «{needle}», got {other:?}"),
        }
    }
}

/// Sends one binary frame on a connection that has done the handshake, or not.
async fn enviar_crudo(c: &mut Cliente, bytes: Vec<u8>) -> Result<()> {
    c.ws.send(WsMessage::Binary(bytes.into())).await?;
    Ok(())
}

/// A raw WebSocket client with only the upgrade done (no `join`).
async fn sin_handshake(m: &Mundo, token: &str) -> Result<bitacora_tests::cliente::Ws> {
    upgrade(m.url(), Some(token), Via::Cabecera)
        .await?
        .map_err(|r| anyhow::anyhow!("upgrade refused: {r:?}"))
}

/// The next protocol message on a raw socket, or `None` once it is closed.
async fn siguiente(ws: &mut bitacora_tests::cliente::Ws) -> Result<Option<Message>> {
    let limite = tokio::time::Instant::now() + PLAZO;
    loop {
        match tokio::time::timeout_at(limite, ws.next())
            .await
            .context("no frame from the server in time")?
        {
            None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return Ok(None),
            Some(Ok(WsMessage::Binary(b))) => return Ok(Some(Message::decode(&b)?)),
            Some(Ok(_)) => {}
        }
    }
}

/// The server closes a raw TCP connection (EOF or reset) within `plazo`; returns what it sent.
async fn tcp_cerrada(s: &mut TcpStream, plazo: Duration) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match tokio::time::timeout(plazo, s.read_to_end(&mut buf)).await {
        Err(_) => bail!("the server kept the connection open for more than {plazo:?}"),
        Ok(_) => Ok(buf),
    }
}

fn es_4xx(r: &Respuesta) -> bool {
    (400..500).contains(&r.status)
}

// ---------------------------------------------------------------------------------------------
// CBOR by hand.

fn cbor_cabeza(mayor: u8, n: u64) -> Vec<u8> {
    let m = mayor << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend((n as u16).to_be_bytes());
            v
        }
        0x1_0000..=0xffff_ffff => {
            let mut v = vec![m | 26];
            v.extend((n as u32).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 27];
            v.extend(n.to_be_bytes());
            v
        }
    }
}

/// A CBOR text string made of any bytes (valid UTF-8 or not).
fn cbor_texto(b: &[u8]) -> Vec<u8> {
    let mut v = cbor_cabeza(3, b.len() as u64);
    v.extend_from_slice(b);
    v
}

/// A CBOR map of text keys to already-encoded values.
fn cbor_mapa(campos: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut v = cbor_cabeza(5, campos.len() as u64);
    for (k, val) in campos {
        v.extend(cbor_texto(k.as_bytes()));
        v.extend_from_slice(val);
    }
    v
}

fn cbor_lista_de_textos(xs: &[&[u8]]) -> Vec<u8> {
    let mut v = cbor_cabeza(4, xs.len() as u64);
    for x in xs {
        v.extend(cbor_texto(x));
    }
    v
}

/// Frames that must each be refused with `error` and a closed socket, before or after the
/// handshake: (what, bytes, a word the error must contain).
fn cbor_malformado() -> Vec<(&'static str, Vec<u8>)> {
    let mut profundo = vec![0x81u8; 100_000];
    profundo.push(0x00);
    vec![
        ("empty frame", Vec::new()),
        ("break code", vec![0xff, 0x00, 0x13]),
        ("truncated map", vec![0xa2, 0x64, b't', b'y']),
        ("an array, not a map", vec![0x82, 0x01, 0x02]),
        (
            "byte string announcing 2^63 bytes",
            vec![0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "map announcing 2^32-1 entries",
            vec![0xba, 0xff, 0xff, 0xff, 0xff, 0x64, b't', b'y', b'p', b'e'],
        ),
        ("100000 nested arrays", profundo),
        ("trailing bytes", {
            let mut v = cbor_mapa(&[
                ("type", cbor_texto(b"leave")),
                ("senderId", cbor_texto(b"x")),
            ]);
            v.push(0x00);
            v
        }),
        ("integer keys", vec![0xa1, 0x01, 0x02]),
        (
            "invalid UTF-8 in a key",
            [vec![0xa1], cbor_texto(&[0xff, 0xfe]), cbor_texto(b"join")].concat(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Attacks.

/// Malformed CBOR, after the handshake and before it.
async fn ataque_cbor(m: &Mundo) -> Result<()> {
    let token = m.token("mal").await?;
    for (que, frame) in cbor_malformado() {
        let mut c = m.conectar(&token).await?;
        enviar_crudo(&mut c, frame.clone()).await?;
        error_y_cierre(&mut c, "")
            .await
            .with_context(|| format!("malformed CBOR after the handshake: {que}"))?;
        let mut ws = sin_handshake(m, &token).await?;
        ws.send(WsMessage::Binary(frame.into())).await?;
        match siguiente(&mut ws).await? {
            Some(Message::Error { .. }) => {}
            other => bail!("malformed CBOR before the handshake ({que}): got {other:?}"),
        }
        ensure!(siguiente(&mut ws).await?.is_none(), "{que}: closed");
    }
    Ok(())
}

/// Unknown message types, and known types with fields of the wrong kind.
async fn ataque_tipos(m: &Mundo) -> Result<()> {
    let token = &m.token("mal").await?;
    let casos: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown type",
            cbor_mapa(&[
                ("type", cbor_texto(b"hola")),
                ("senderId", cbor_texto(b"x")),
            ]),
            "hola",
        ),
        (
            "SQL in the type",
            cbor_mapa(&[
                ("type", cbor_texto(b"'; DROP TABLE chunks; --")),
                ("senderId", cbor_texto(b"x")),
            ]),
            "DROP",
        ),
        (
            "a 100 KB type",
            cbor_mapa(&[("type", cbor_texto(&[b'x'; 100_000]))]),
            "",
        ),
        ("no type", cbor_mapa(&[("senderId", cbor_texto(b"x"))]), ""),
        (
            "type as a byte string",
            cbor_mapa(&[("type", [vec![0x44], b"sync".to_vec()].concat())]),
            "",
        ),
    ];
    for (que, frame, needle) in casos {
        let mut c = m.conectar(token).await?;
        enviar_crudo(&mut c, frame).await?;
        let msg = error_y_cierre(&mut c, needle)
            .await
            .with_context(|| format!("message type: {que}"))?;
        ensure!(
            msg.len() < 1000,
            "the error does not echo 100 KB: {} bytes",
            msg.len()
        );
    }
    Ok(())
}

/// `sync` for documents never joined: before the handshake (error), for a document nobody
/// registered and with junk in `data` (doc-unavailable; the connection stays usable).
async fn ataque_sync_sin_join(m: &Mundo) -> Result<()> {
    let token = &m.token("mal").await?;
    let al_azar = DocumentId::from_bytes(rand::random());
    // Before the handshake.
    let mut ws = sin_handshake(m, token).await?;
    let sync = Message::Sync {
        sender_id: bitacora_core::protocol::PeerId("x".into()),
        target_id: bitacora_core::protocol::PeerId("y".into()),
        document_id: m.escuela.id,
        data: vec![0x42],
    };
    ws.send(WsMessage::Binary(sync.encode().into())).await?;
    match siguiente(&mut ws).await? {
        Some(Message::Error { message }) => ensure!(message.contains("handshake"), "{message}"),
        other => bail!("sync before join: expected error, got {other:?}"),
    }
    ensure!(
        siguiente(&mut ws).await?.is_none(),
        "closed after the error"
    );
    // After the handshake, a document that does not exist, with junk and with a valid message.
    let mut c = m.conectar(token).await?;
    for data in [vec![0x42, 0x00], Vec::new()] {
        let sync = Message::Sync {
            sender_id: c.session.our_id().clone(),
            target_id: c.servidor(),
            document_id: al_azar,
            data,
        };
        c.enviar(&sync).await?;
        match c.frame().await?.context("closed")?.1 {
            Message::DocUnavailable { document_id, .. } if document_id == al_azar => {}
            other => bail!("unknown document: expected doc-unavailable, got {other:?}"),
        }
    }
    // The connection is still good: the school's document reads.
    ensure!(matches!(c.leer(m.escuela.id).await?, Lectura::Documento(_)));
    // A granted document with junk instead of a sync message: error + close.
    let sync = Message::Sync {
        sender_id: c.session.our_id().clone(),
        target_id: c.servidor(),
        document_id: m.escuela.id,
        data: vec![0x42, 0x01, 0x02],
    };
    c.enviar(&sync).await?;
    error_y_cierre(&mut c, "").await?;
    Ok(())
}

/// Frames past the size limit: between 1x and 2x refused with `error`; past 2x cut off; a raw
/// frame header announcing 2^63 bytes closes the socket without the server reading further.
async fn ataque_tramas_enormes(m: &Mundo) -> Result<()> {
    let token = &m.token("mal").await?;
    let mut c = m.conectar(token).await?;
    enviar_crudo(&mut c, vec![0xa0; MAX_MENSAJE * 3 / 2]).await?;
    error_y_cierre(&mut c, "exceeds the limit").await?;

    let mut c = m.conectar(token).await?;
    // The server may close while this is still being written.
    let _ = enviar_crudo(&mut c, vec![0xa0; MAX_MENSAJE * 3]).await;
    if let Some((_, m)) = c.frame().await.unwrap_or(None) {
        bail!("a frame past twice the limit got {m:?} instead of a closed socket");
    }

    let mut c = m.conectar(token).await?;
    // FIN + binary, masked, 64-bit length 2^63 - 1, a mask, and a few bytes.
    let mut cabeza = vec![0x82, 0xff];
    cabeza.extend((i64::MAX as u64).to_be_bytes());
    cabeza.extend([1, 2, 3, 4]);
    cabeza.extend([0u8; 64]);
    let MaybeTlsStream::Plain(tcp) = c.ws.get_mut() else {
        bail!("plain TCP");
    };
    tcp.write_all(&cabeza).await?;
    if let Some((_, m)) = c.frame().await.unwrap_or(None) {
        bail!("a frame header of 2^63 bytes got {m:?} instead of a closed socket");
    }
    Ok(())
}

/// Changes by actors not allowed in the school's document, by a colleague who may write it and
/// by a teacher of another school: refused, nothing stored.
async fn ataque_actores(m: &Mundo) -> Result<()> {
    let token_colega = &m.token("mal").await?;
    let token_otra = &m.token("beto").await?;
    let mut genesis = genesis_de(&m.escuela)?;
    let casos = [
        ("never enrolled", ActorId::random()),
        (
            "the genesis actor after the genesis",
            bitacora_core::model::genesis_actor(&m.escuela.id),
        ),
    ];
    for (que, actor) in casos {
        let ch = cambio_sobre(&mut genesis, &actor, que)?;
        let mut c = m.conectar(token_colega).await?;
        match c.escribir(m.escuela.id, std::slice::from_ref(&ch)).await? {
            Escritura::Rechazada(msg) => ensure!(msg.contains("refused"), "{que}: {msg}"),
            other => bail!("forged actor ({que}) got {other:?}"),
        }
        let doc = assemble(&m.srv.db.load(&m.escuela.id).await?).map_err(anyhow::Error::msg)?;
        ensure!(
            doc.get_change_by_hash(&ch.hash()).is_none(),
            "{que}: not stored"
        );
    }
    // Another school's teacher writing into this school: the document does not exist for her.
    let ch = cambio_sobre(&mut genesis, &ActorId::random(), "otra escuela")?;
    let mut c = m.conectar(token_otra).await?;
    ensure!(matches!(
        c.escribir(m.escuela.id, &[ch]).await?,
        Escritura::NoDisponible(_)
    ));
    Ok(())
}

/// A change whose string value (or commit message) holds bytes that are not UTF-8, with the
/// change's checksum fixed up so only the string is wrong.
fn cambio_con_bytes_invalidos(
    base: &mut AutoCommit,
    actor: &ActorId,
    en_mensaje: bool,
) -> Result<Vec<u8>> {
    const MARCA: &[u8] = b"MARCA-UTF8-QQQQ";
    let mut doc = base.fork().with_actor(actor.clone());
    let marca = std::str::from_utf8(MARCA)?;
    if en_mensaje {
        doc.put(ROOT, "nota", "x")?;
        doc.commit_with(automerge::transaction::CommitOptions::default().with_message(marca));
    } else {
        doc.put(ROOT, "nota", marca)?;
        doc.commit();
    }
    let mut raw = doc
        .get_last_local_change()
        .context("a local change")?
        .raw_bytes()
        .to_vec();
    let pos = raw
        .windows(MARCA.len())
        .position(|w| w == MARCA)
        .context("the marker is stored as is (the change is not compressed)")?;
    raw[pos + 11] = 0xff;
    raw[pos + 12] = 0xfe;
    // Chunk: magic (4), checksum (4) = sha256(type, length, body)[..4], then type, length, body.
    let suma = Sha256::digest(&raw[8..]);
    raw[4..8].copy_from_slice(&suma[..4]);
    Ok(raw)
}

/// Sends raw change chunks in one sync message; the verdict.
async fn escribir_crudo(
    c: &mut Cliente,
    id: DocumentId,
    cambios: Vec<Vec<u8>>,
) -> Result<Option<String>> {
    let data = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: automerge::sync::ChunkList::from(cambios),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode();
    let m = Message::Sync {
        sender_id: c.session.our_id().clone(),
        target_id: c.servidor(),
        document_id: id,
        data,
    };
    c.enviar(&m).await?;
    loop {
        match c.frame().await? {
            None => return Ok(Some("closed without error".into())),
            Some((_, Message::Error { message })) => {
                c.cerrada().await?;
                return Ok(Some(message));
            }
            Some((_, Message::Sync { .. })) => return Ok(None),
            Some(_) => {}
        }
    }
}

/// Invalid UTF-8 and SQL metacharacters in every text field the protocol carries.
async fn ataque_texto_protocolo(m: &Mundo, actor: &ActorId) -> Result<()> {
    let token = &m.token("mal").await?;
    // Invalid UTF-8 inside a change by an enrolled actor: refused before anything is stored.
    for en_mensaje in [false, true] {
        let raw = cambio_con_bytes_invalidos(&mut genesis_de(&m.escuela)?, actor, en_mensaje)?;
        let mut c = m.conectar(token).await?;
        let r = escribir_crudo(&mut c, m.escuela.id, vec![raw]).await?;
        if std::env::var_os("HOSTILE_VERBOSE").is_some() {
            eprintln!("invalid UTF-8 in a change (message: {en_mensaje}): {r:?}");
        }
        ensure!(
            r.is_some(),
            "a change with invalid UTF-8 (in the {}) was accepted",
            if en_mensaje { "message" } else { "value" }
        );
    }
    // Text fields of the envelope: not UTF-8.
    let join = |sender: &[u8], storage: &[u8]| {
        cbor_mapa(&[
            ("type", cbor_texto(b"join")),
            ("senderId", cbor_texto(sender)),
            ("supportedProtocolVersions", cbor_lista_de_textos(&[b"1"])),
            (
                "peerMetadata",
                cbor_mapa(&[("storageId", cbor_texto(storage))]),
            ),
        ])
    };
    for (que, frame) in [
        ("senderId", join(&[0xff, 0xfe, b'x'], b"s")),
        ("storageId", join(b"x", &[0xc3, 0x28])),
        (
            "protocol version",
            cbor_mapa(&[
                ("type", cbor_texto(b"join")),
                ("senderId", cbor_texto(b"x")),
                (
                    "supportedProtocolVersions",
                    cbor_lista_de_textos(&[&[0xff]]),
                ),
            ]),
        ),
    ] {
        let mut ws = sin_handshake(m, token).await?;
        ws.send(WsMessage::Binary(frame.into())).await?;
        match siguiente(&mut ws).await? {
            Some(Message::Error { .. }) => {}
            other => bail!("invalid UTF-8 in {que}: expected error, got {other:?}"),
        }
        ensure!(siguiente(&mut ws).await?.is_none(), "{que}: closed");
    }
    // SQL metacharacters in the peer and storage ids: just text (the storage id keys the saved
    // sync state, through a bound parameter).
    let sql = b"'; DROP TABLE sync_states; --";
    let mut ws = sin_handshake(m, token).await?;
    ws.send(WsMessage::Binary(join(sql, sql).into())).await?;
    match siguiente(&mut ws).await? {
        Some(Message::Peer { .. }) => {}
        other => bail!("join with SQL in the ids: expected peer, got {other:?}"),
    }
    let req = Message::Request {
        sender_id: bitacora_core::protocol::PeerId(String::from_utf8(sql.to_vec())?),
        target_id: bitacora_core::protocol::PeerId("servidor".into()),
        document_id: m.escuela.id,
        data: AutoCommit::new()
            .sync()
            .generate_sync_message(&mut automerge::sync::State::new())
            .context("a first sync message")?
            .encode(),
    };
    ws.send(WsMessage::Binary(req.encode().into())).await?;
    match siguiente(&mut ws).await? {
        Some(Message::Sync { .. }) => {}
        other => bail!("request with SQL in the ids: expected sync, got {other:?}"),
    }
    ws.close(None).await?;
    Ok(())
}

/// Invalid UTF-8 and SQL metacharacters in every HTTP text field: tokens (header, query, form),
/// actor ids, path parameters (CCT, zone key), query parameters, the sign-in form.
async fn ataque_texto_http(m: &Mundo) -> Result<()> {
    let token = &m.token("mal").await?;
    let addr = direccion(m.url())?;
    let pedir = |linea: &[u8], cabeceras: &[u8], cuerpo: &[u8]| {
        let mut r = linea.to_vec();
        r.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes(),
        );
        r.extend_from_slice(cabeceras);
        if !cuerpo.is_empty() {
            r.extend_from_slice(format!("Content-Length: {}\r\n", cuerpo.len()).as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(cuerpo);
        r
    };
    let bearer = |t: &[u8]| [b"Authorization: Bearer ".as_slice(), t, b"\r\n"].concat();
    // Tokens: SQL, invalid UTF-8 (raw header bytes, percent-encoded query), 60 KB.
    let largo = vec![b'a'; 60_000];
    for (que, peticion) in [
        (
            "SQL in the bearer token",
            pedir(b"GET /v1/documentos", &bearer(b"' OR '1'='1' --"), b""),
        ),
        (
            "invalid UTF-8 in the bearer token",
            pedir(b"GET /v1/documentos", &bearer(&[0xff, 0xfe, 0x80]), b""),
        ),
        (
            "invalid UTF-8 in ?token=",
            pedir(b"GET /v1/documentos?token=%FF%FE", b"", b""),
        ),
        (
            "SQL in ?token=",
            pedir(b"GET /sync?token=%27%20OR%201%3D1%20--", b"", b""),
        ),
        (
            "a 60 KB token",
            pedir(b"GET /v1/documentos", &bearer(&largo), b""),
        ),
    ] {
        let r = http_crudo(m.url(), &peticion)
            .await
            .with_context(|| que.to_string())?;
        ensure!(
            r.status == 401 || r.status == 431,
            "{que}: expected 401 (or 431), got {} {}",
            r.status,
            r.cuerpo
        );
    }
    // Actor ids: SQL, invalid UTF-8 in the JSON, a JSON that is not UTF-8 at all.
    let json = b"Content-Type: application/json\r\n";
    let cab = [bearer(token.as_bytes()), json.to_vec()].concat();
    for (que, cuerpo) in [
        (
            "SQL actor",
            br#"{"actor":"'; DROP TABLE actores; --"}"#.to_vec(),
        ),
        ("hex and SQL", br#"{"actor":"abcd' OR '1'='1"}"#.to_vec()),
        (
            "invalid UTF-8 inside the JSON string",
            [br#"{"actor":""#.as_slice(), &[0xff, 0xfe], br#""}"#].concat(),
        ),
        ("escaped NUL", br#"{"actor":"ab\u0000cd"}"#.to_vec()),
        ("not JSON", vec![0xff; 32]),
        (
            "65 hex digits",
            format!(r#"{{"actor":"{}"}}"#, "a".repeat(65)).into_bytes(),
        ),
    ] {
        let r = http_crudo(m.url(), &pedir(b"POST /v1/actores", &cab, &cuerpo)).await?;
        ensure!(
            r.status == 400,
            "{que}: expected 400, got {} {}",
            r.status,
            r.cuerpo
        );
        ensure!(
            r.cuerpo.contains("solicitud_invalida"),
            "{que}: a Spanish JSON error: {}",
            r.cuerpo
        );
    }
    // Path and query parameters: SQL, invalid UTF-8, NUL, very long.
    let cab = bearer(token.as_bytes());
    for ruta in [
        "/v1/escuelas/'%20OR%20'1'%3D'1/resumen",
        "/v1/escuelas/%FF%FE/resumen",
        "/v1/escuelas/07DPR0001A%00/resumen",
        "/v1/zonas/07FIZ0014'%3B%20DROP%20TABLE%20zonas%3B--/resumen",
        "/v1/zonas/%C3%28/escuelas.csv",
        "/v1/escuelas/07DPR0001A/resumen?ciclo=%27%3B%20DROP%20TABLE%20chunks%3B--",
        "/v1/escuelas/07DPR0001A/resumen?ciclo=%FF",
        "/escuelas/%FF",
        "/zonas/'%20OR%201%3D1",
    ] {
        let r = http_crudo(m.url(), &pedir(format!("GET {ruta}").as_bytes(), &cab, b"")).await?;
        // The dashboard's pages want a session, and send everyone else to the sign-in.
        let a_entrar = r.status == 303
            && r.cabecera("location")
                .is_some_and(|l| l.starts_with("/entrar"));
        ensure!(
            es_4xx(&r) || a_entrar,
            "{ruta}: expected 4xx, got {} {}",
            r.status,
            r.cuerpo
        );
    }
    // The dashboard's sign-in form.
    let form = b"Content-Type: application/x-www-form-urlencoded\r\n";
    // Form decoding replaces bytes that are not UTF-8 (the token then fails to verify).
    for (que, cuerpo, esperado) in [
        (
            "SQL token",
            b"token=%27%20OR%20%271%27%3D%271&siguiente=".to_vec(),
            &[401][..],
        ),
        (
            "invalid UTF-8 token",
            b"token=%FF%FE&siguiente=".to_vec(),
            &[400, 401],
        ),
        (
            "raw invalid UTF-8",
            [b"token=".as_slice(), &[0xff, 0xfe]].concat(),
            &[400, 401],
        ),
        ("NUL token", b"token=%00&siguiente=".to_vec(), &[401]),
        (
            "SQL in siguiente",
            b"token=x&siguiente=%27%3B%20DROP%20TABLE%20sesiones_web%3B--".to_vec(),
            &[401],
        ),
        (
            "a 20 KB token",
            format!("token={}", "a".repeat(20_000)).into_bytes(),
            &[400],
        ),
    ] {
        let r = http_crudo(m.url(), &pedir(b"POST /entrar", form, &cuerpo)).await?;
        ensure!(
            esperado.contains(&r.status),
            "sign-in {que}: expected {esperado:?}, got {} {}",
            r.status,
            r.cuerpo
        );
        ensure!(
            r.cuerpo.contains("token"),
            "sign-in {que}: the page says what is wrong: {}",
            r.cuerpo
        );
    }
    // A form signed in with a real token and a hostile `siguiente` never redirects off-site.
    let cuerpo = format!("token={token}&siguiente=%2F%2Fevil.example%2F");
    let r = http_crudo(m.url(), &pedir(b"POST /entrar", form, cuerpo.as_bytes())).await?;
    ensure!(r.status == 303, "sign-in: {} {}", r.status, r.cuerpo);
    ensure!(
        r.cabecera("location")
            .is_some_and(|l| l.starts_with('/') && !l.starts_with("//")),
        "stays on this site: {:?}",
        r.cabecera("location")
    );
    Ok(())
}

/// A revoked token, replayed: refused at the upgrade (header and `?token=`), by the HTTP API and
/// by the dashboard's sign-in.
async fn ataque_revocado(m: &Mundo, revocado: &str) -> Result<()> {
    for via in [Via::Cabecera, Via::Query] {
        match upgrade(m.url(), Some(revocado), via).await? {
            Ok(_) => bail!("a revoked token opened a connection ({via:?})"),
            Err(r) => ensure!(r.status == 401, "{r:?}"),
        }
    }
    let (s, _) = http_get(m.url(), "/v1/documentos", Some(revocado)).await?;
    ensure!(s == 401, "GET /v1/documentos with a revoked token: {s}");
    let cuerpo = format!("token={revocado}");
    let peticion = format!(
        "POST /entrar HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{cuerpo}",
        direccion(m.url())?,
        cuerpo.len()
    );
    let r = http_crudo(m.url(), peticion.as_bytes()).await?;
    ensure!(
        r.status == 401,
        "sign-in with a revoked token: {}",
        r.status
    );
    Ok(())
}

/// Path tricks in `GET /v1/paquetes/{cct}`: nothing but 4xx, never another school's bundle.
async fn ataque_rutas_paquetes(m: &Mundo) -> Result<()> {
    let token = &m.token("mal").await?;
    let largo = format!("/v1/paquetes/{}", "A".repeat(100_000));
    let rutas = [
        "/v1/paquetes/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/paquetes/../../../etc/passwd",
        "/v1/paquetes/%2Fetc%2Fpasswd",
        "/v1/paquetes//etc/passwd",
        "/v1/paquetes/07DPR0001A%00",
        "/v1/paquetes/07DPR0001A%2F..%2F07DPR0002B",
        "/v1/paquetes/07DPR0002B",
        "/v1/paquetes/%FF%FE",
        "/v1/paquetes/%27%20OR%20%271%27%3D%271",
        "/v1/paquetes/C:%5Cwindows%5Cwin.ini",
        largo.as_str(),
    ];
    for ruta in rutas {
        let r = match http_get(m.url(), ruta, Some(token)).await {
            Ok(r) => r,
            // A request line past hyper's buffer may be reset rather than answered.
            Err(_) if ruta.len() > 50_000 => continue,
            Err(e) => return Err(e.context(ruta.to_string())),
        };
        ensure!(
            (400..500).contains(&r.0),
            "{}: expected 4xx, got {} {}",
            &ruta[..ruta.len().min(60)],
            r.0,
            &r.1[..r.1.len().min(200)]
        );
    }
    // The school's own bundle still downloads.
    let (s, _) = http_get(m.url(), &format!("/v1/paquetes/{CCT}"), Some(token)).await?;
    ensure!(s == 200, "the school's own bundle: {s}");
    Ok(())
}

/// SQL metacharacters in registry fields: refused where the field has a form (ids, CCTs, zone
/// keys, token ids), stored verbatim where it is free text (names); a revocation by a SQL
/// "jti" revokes nothing.
async fn ataque_registro(db: &Database, keys: &bitacora_server::auth::Keys) -> Result<()> {
    let sql = "x'; DROP TABLE usuarios; --";
    let ciclo = TestServer::ciclo();
    ensure!(
        admin::usuario_add(db, sql, "n", "docente", Some(CCT), None)
            .await
            .is_err()
    );
    ensure!(
        admin::usuario_add(db, "u1", "n", "docente", Some(sql), None)
            .await
            .is_err()
    );
    ensure!(
        admin::usuario_add(db, "u1", "n", sql, Some(CCT), None)
            .await
            .is_err()
    );
    ensure!(admin::escuela_add(db, sql, "n", ZONA, ciclo).await.is_err());
    ensure!(
        admin::escuela_add(db, "07DPR0009Z", "n", sql, ciclo)
            .await
            .is_err()
    );
    ensure!(admin::zona_add(db, sql, "n", ciclo).await.is_err());
    ensure!(admin::token_emitir(db, keys, sql, 30).await.is_err());
    ensure!(admin::token_revocar(db, "' OR '1'='1").await.is_err());
    ensure!(admin::token_revocar(db, "%").await.is_err());
    // Names are free text.
    let id = format!("sql-{:08x}", rand::random::<u32>());
    admin::usuario_add(db, &id, sql, "docente", Some(CCT), None).await?;
    ensure!(
        db.usuario(&id).await?.context("created")?.nombre == sql,
        "a name with SQL metacharacters is stored verbatim"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The limits.

/// One connection floods cheap messages: cut off with `error` naming the connection's rate.
async fn ataque_inundacion_conexion(m: &Mundo) -> Result<()> {
    let token = m.token("mal").await?;
    let mut c = m.conectar(&token).await?;
    let frame = Message::RemoteSubscriptionChange {
        sender_id: c.session.our_id().clone(),
        target_id: c.servidor(),
        add: Vec::new(),
        remove: Vec::new(),
    }
    .encode();
    // More than the burst (500), sent without waiting; the server may close meanwhile.
    for _ in 0..2000 {
        if c.ws
            .feed(WsMessage::Binary(frame.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = c.ws.flush().await;
    error_y_cierre(&mut c, "on this connection").await?;
    Ok(())
}

/// One token floods over three connections, each under its own rate: cut off by the token's
/// rate; then its HTTP requests get 429 with a Spanish message and `Retry-After`.
async fn ataque_inundacion_token(m: &Mundo) -> Result<()> {
    let token = m.token("mal").await?;
    let mut cs = Vec::new();
    for _ in 0..3 {
        cs.push(m.conectar(&token).await?);
    }
    for c in &mut cs {
        let frame = Message::RemoteSubscriptionChange {
            sender_id: c.session.our_id().clone(),
            target_id: c.servidor(),
            add: Vec::new(),
            remove: Vec::new(),
        }
        .encode();
        // 480 each: under the connection's burst of 500, 1440 over the token's 1000.
        for _ in 0..480 {
            if c.ws
                .feed(WsMessage::Binary(frame.clone().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = c.ws.flush().await;
    }
    // Each connection then asks for something: answered (the bucket refilled a little), or
    // refused; the one the flood itself cut has its `error` waiting.
    let mut cortadas = 0;
    for c in &mut cs {
        let pregunta = c.session.request(
            DocumentId::from_bytes(rand::random()),
            &AutoCommit::new().sync(),
        );
        let _ = c.enviar(&pregunta).await;
        match c.frame().await? {
            Some((_, Message::Error { message })) => {
                ensure!(message.contains("with this token"), "{message}");
                cortadas += 1;
            }
            Some((_, Message::DocUnavailable { .. })) => {}
            None => bail!("closed without `error`"),
            Some((_, other)) => bail!("a flooding connection got {other:?}"),
        }
    }
    ensure!(cortadas >= 1, "the token's rate cut a connection");
    // HTTP: the bucket is (nearly) empty and refills one request per 10 ms. Requests in flight
    // together drain it however slow each one is on a loaded machine.
    let peticion = format!(
        "GET /v1/documentos HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n",
        direccion(m.url())?
    );
    for _ in 0..5 {
        let tanda = (0..150).map(|_| http_crudo(m.url(), peticion.as_bytes()));
        let mut rechazo = None;
        for r in futures_util::future::join_all(tanda).await {
            let r = r?;
            match r.status {
                200 => {}
                429 => rechazo = Some(r),
                _ => bail!("{} {}", r.status, r.cuerpo),
            }
        }
        if let Some(r) = rechazo {
            ensure!(
                r.cuerpo.contains("demasiadas_solicitudes") && r.cuerpo.contains("espere"),
                "a Spanish JSON message: {}",
                r.cuerpo
            );
            ensure!(
                r.cabecera("retry-after")
                    .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
                "Retry-After: {:?}",
                r.cabecera("retry-after")
            );
            return Ok(());
        }
    }
    bail!("a drained token's HTTP requests were never refused with 429")
}

/// One token opens more WebSocket connections than allowed: the next upgrade gets 429.
async fn ataque_conexiones_por_token(m: &Mundo, max: usize) -> Result<()> {
    let token = m.token("mal").await?;
    let mut abiertas = Vec::new();
    for _ in 0..max {
        abiertas.push(sin_handshake(m, &token).await?);
    }
    match upgrade(m.url(), Some(&token), Via::Cabecera).await? {
        Ok(_) => bail!("connection {} of one token was accepted", max + 1),
        Err(r) => {
            ensure!(r.status == 429, "{r:?}");
            ensure!(r.cuerpo.contains("conexiones abiertas"), "{}", r.cuerpo);
        }
    }
    for mut ws in abiertas {
        let _ = ws.close(None).await;
    }
    Ok(())
}

/// One connection names more documents than allowed: `error` and a closed socket.
async fn ataque_documentos_por_conexion(m: &Mundo) -> Result<()> {
    let token = m.token("mal").await?;
    let mut c = m.conectar(&token).await?;
    for i in 0..MAX_DOCS {
        let id = if i == 0 {
            m.escuela.id
        } else {
            DocumentId::from_bytes(rand::random())
        };
        match c.leer(id).await? {
            Lectura::Documento(_) | Lectura::NoDisponible(_) => {}
        }
    }
    let m2 = c.session.request(
        DocumentId::from_bytes(rand::random()),
        &AutoCommit::new().sync(),
    );
    c.enviar(&m2).await?;
    error_y_cierre(&mut c, "too many documents").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sockets.

/// How many idle sockets this process can hold (it holds both ends).
fn sockets_permitidos() -> usize {
    let pedidos: usize = env_or("HOSTILE_SOCKETS", || 2000);
    let limite = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<usize>().ok())
                })
        })
        .unwrap_or(1024);
    let n = pedidos.min(limite.saturating_sub(512) / 2);
    if n < pedidos {
        eprintln!("hostile_inputs: only {n} idle sockets (open-file limit {limite})");
    }
    n
}

async fn abrir_sockets(url: &str, n: usize, inicio: &'static [u8]) -> Result<Vec<TcpStream>> {
    let addr = direccion(url)?.to_string();
    let mut out = Vec::with_capacity(n);
    for lote in (0..n).collect::<Vec<_>>().chunks(100) {
        let conexiones = lote.iter().map(|_| {
            let addr = addr.clone();
            async move {
                let mut s = TcpStream::connect(addr).await?;
                if !inicio.is_empty() {
                    s.write_all(inicio).await?;
                }
                Ok::<_, anyhow::Error>(s)
            }
        });
        for s in futures_util::future::join_all(conexiones).await {
            out.push(s?);
        }
    }
    Ok(out)
}

/// Every socket is closed by the server within the header timeout (plus a margin).
async fn cerradas_por_el_servidor(sockets: Vec<TcpStream>, que: &str) -> Result<()> {
    let plazo = Duration::from_secs(PLAZO_CABECERAS + 20);
    let esperas = sockets
        .into_iter()
        .map(|mut s| async move { tcp_cerrada(&mut s, plazo).await });
    let mut cerradas = 0;
    for r in futures_util::future::join_all(esperas).await {
        r.with_context(|| format!("{que}: a socket the server never closed (slow loris)"))?;
        cerradas += 1;
    }
    eprintln!("{que}: all {cerradas} closed by the server");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs() -> Result<()> {
    let inicio = Instant::now();
    let m = Mundo::nuevo().await?;
    let url = m.url().to_string();
    // The colleague's enrolled device, for changes that are hers but malformed.
    let actor_colega = ActorId::random();
    m.srv.enrolar(&actor_colega.to_hex_string(), "mal").await?;
    let mut tabla_m = Vec::new();

    tabla_m.push(medir_mientras(&m, "none (baseline)").await?);
    tabla_m.push(medir(&m, "malformed CBOR", || ataque_cbor(&m)).await?);
    tabla_m.push(medir(&m, "unknown message types", || ataque_tipos(&m)).await?);
    tabla_m.push(
        medir(&m, "sync for documents never joined", || {
            ataque_sync_sin_join(&m)
        })
        .await?,
    );
    tabla_m.push(medir(&m, "oversized frames", || ataque_tramas_enormes(&m)).await?);

    // Slow upgrades: half an upgrade request, then silence.
    let lentos = abrir_sockets(
        &url,
        200,
        b"GET /sync HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    )
    .await?;
    tabla_m.push(medir_mientras(&m, "200 slow upgrades").await?);
    cerradas_por_el_servidor(lentos, "slow upgrades").await?;

    // Idle sockets: connected, nothing sent.
    let n = sockets_permitidos();
    let ociosos = abrir_sockets(&url, n, b"").await?;
    tabla_m.push(medir_mientras(&m, &format!("{n} idle TCP sockets")).await?);
    cerradas_por_el_servidor(ociosos, "idle sockets").await?;

    tabla_m.push(medir(&m, "forged actors", || ataque_actores(&m)).await?);

    // A token replayed after its revocation. A connection opened before keeps going (revocation
    // applies at the next connection, docs/security.md); every new use is refused.
    let (revocado, claims) = admin::token_emitir(&m.srv.db, &m.srv.keys, "mal", 30).await?;
    let mut abierta = m.conectar(&revocado).await?;
    admin::token_revocar(&m.srv.db, &claims.jti).await?;
    tabla_m.push(
        medir(&m, "token replayed after revocation", || {
            ataque_revocado(&m, &revocado)
        })
        .await?,
    );
    ensure!(
        matches!(abierta.leer(m.escuela.id).await?, Lectura::Documento(_)),
        "the connection opened before the revocation still reads"
    );

    tabla_m.push(
        medir(&m, "path tricks in GET /v1/paquetes/{cct}", || {
            ataque_rutas_paquetes(&m)
        })
        .await?,
    );
    tabla_m.push(
        medir(&m, "SQL and invalid UTF-8 in protocol fields", || {
            ataque_texto_protocolo(&m, &actor_colega)
        })
        .await?,
    );
    tabla_m.push(
        medir(&m, "SQL and invalid UTF-8 in HTTP fields", || {
            ataque_texto_http(&m)
        })
        .await?,
    );
    tabla_m.push(
        medir(&m, "SQL in registry fields (admin)", || {
            ataque_registro(&m.srv.db, &m.srv.keys)
        })
        .await?,
    );

    // The limits.
    tabla_m.push(
        medir(&m, "flooding connection (rate limit)", || {
            ataque_inundacion_conexion(&m)
        })
        .await?,
    );
    tabla_m.push(
        medir(&m, "flooding token over 3 connections", || {
            ataque_inundacion_token(&m)
        })
        .await?,
    );
    let max_conexiones = m.srv.config.limits.max_connections_per_token;
    tabla_m.push(
        medir(&m, "too many connections of one token", || {
            ataque_conexiones_por_token(&m, max_conexiones)
        })
        .await?,
    );
    tabla_m.push(
        medir(&m, "too many documents on one connection", || {
            ataque_documentos_por_conexion(&m)
        })
        .await?,
    );

    // The same honest syncs with no attack, on the document as it has grown.
    tabla_m.push(medir_mientras(&m, "none (after the attacks)").await?);

    let mut honesta = Honesta::nueva(&m).await?;
    // SQL metacharacters, control characters and odd Unicode in document text, through sync:
    // stored and read back verbatim; the tables are all still there.
    for texto in [
        "Robert'); DROP TABLE chunks; --",
        "\" OR \"\"=\"; DELETE FROM auditoria WHERE 1=1; --",
        "línea 1\nlínea 2\r\n\ttab \u{0} nul \u{202e}invertido\u{202c} 🙂 \u{10ffff}",
        &"ñ".repeat(20_000),
    ] {
        let (rid, _) = honesta.escribir_y_sincronizar(&url, texto).await?;
        let doc = assemble(&m.srv.db.load(&honesta.doc).await?).map_err(anyhow::Error::msg)?;
        let leido = escuela::leer(&AutoCommit::load(&doc.save())?)?
            .acuerdos
            .into_iter()
            .find(|a| a.id == rid.to_string())
            .context("the acuerdo is on the server")?;
        ensure!(leido.texto == texto, "text stored verbatim");
    }
    let (s, cuerpo) = http_get(
        m.url(),
        &format!(
            "/v1/escuelas/{}/resumen?ciclo={}",
            honesta.cct,
            bitacora_tests::server::CICLO
        ),
        Some(&honesta.token),
    )
    .await?;
    ensure!(
        s == 200,
        "the school's summary after hostile text: {s} {cuerpo}"
    );
    serde_json::from_str::<serde_json::Value>(&cuerpo).context("the summary is JSON")?;
    ensure!(
        m.srv.db.documents().await?.len() >= 3 + m.honestas.load(Ordering::SeqCst) as usize,
        "documents are all there"
    );
    ensure!(
        !m.srv.db.audit_tail(10).await?.is_empty(),
        "the audit log is there"
    );

    // Still up: a fresh store pulls every acuerdo the honest teacher wrote.
    let dir = tempfile::tempdir()?;
    let nuevo = Store::open(dir.path()).await?;
    let info = m
        .srv
        .db
        .documents()
        .await?
        .into_iter()
        .find(|d| d.id == honesta.doc)
        .context("the honest school's document")?;
    nuevo.create(&info, &mut genesis_de(&info)?, 0).await?;
    sync_once(&nuevo, &url, &honesta.token, &[honesta.doc], LIMITE_SYNC).await?;
    let doc = nuevo.load(&honesta.doc).await?.context("synced")?;
    let n = escuela::leer(&doc)?
        .acuerdos
        .iter()
        .filter(|a| a.id.starts_with("honesta-"))
        .count();
    ensure!(
        n as u64 == honesta.n,
        "{n} of {} honest acuerdos",
        honesta.n
    );
    nuevo.close().await;

    println!(
        "\nhostile_inputs ({:.0} s):\n{}",
        inicio.elapsed().as_secs_f64(),
        tabla(&tabla_m)
    );
    // Shutdown is not held up by any of it, nor by a stalled request head and an idle socket
    // still open (with axum::serve it waited for them forever).
    let _colgados = abrir_sockets(&url, 1, b"GET /v1/documentos HTTP/1.1\r\nHost: x\r\n").await?;
    let _ocioso = abrir_sockets(&url, 1, b"").await?;
    tokio::time::timeout(Duration::from_secs(60), m.srv.stop())
        .await
        .context("the server did not shut down")??;
    Ok(())
}

/// Path tricks in the bundle file names of the command-line tools, which never reach a server:
/// `../`, absolute paths, a directory, a missing directory, a 300-character name, a path past
/// `PATH_MAX`. Each is written exactly where it says or refused with a Spanish message, never a
/// panic. (A NUL byte cannot be passed on a command line at all: the OS refuses to start the
/// program.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rutas_de_paquetes_en_la_linea_de_comandos() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let base = tmp.path().join("a").join("b");
    std::fs::create_dir_all(&base)?;
    let r = Replica::new(base.join("datos"));
    r.ok(&[
        "--ciclo",
        bitacora_tests::server::CICLO,
        "init",
        "--cct",
        CCT,
        "--nombre",
        "Escuela",
        "--zona",
        ZONA,
        "--autor",
        "Ana",
    ])?;
    let sin_panico = |out: &std::process::Output, que: &str| -> Result<String> {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(!err.contains("panicked"), "{que}: {err}");
        Ok(err)
    };
    // `../` relative to the working directory: written exactly there.
    let mut c = r.command(&["bundle", "export", "--salida", "../fuera.bitacora"]);
    c.current_dir(&base);
    let out = c.output()?;
    sin_panico(&out, "../")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(tmp.path().join("a").join("fuera.bitacora").is_file());
    // Absolute path, and importing it back.
    let abs = tmp.path().join("abs.bitacora");
    r.ok(&[
        "bundle",
        "export",
        "--salida",
        abs.to_str().context("utf-8")?,
    ])?;
    r.ok(&["bundle", "import", abs.to_str().context("utf-8")?])?;
    // Refused, with a Spanish message and no panic.
    let largo = tmp.path().join("x".repeat(300));
    let profundo = tmp.path().join(
        std::iter::repeat_n("d".repeat(200), 30)
            .collect::<Vec<_>>()
            .join("/"),
    );
    for (que, ruta) in [
        ("a directory", tmp.path().to_path_buf()),
        (
            "a missing directory",
            tmp.path().join("no-existe").join("p.bitacora"),
        ),
        ("a 300-character name", largo),
        ("a path past PATH_MAX", profundo),
    ] {
        let out = r
            .command(&["bundle", "export", "--salida"])
            .arg(&ruta)
            .output()?;
        let err = sin_panico(&out, que)?;
        ensure!(!out.status.success(), "export to {que} succeeded");
        ensure!(
            err.contains("no se pudo") || err.contains("directorio") || err.contains("no se puede"),
            "export to {que}: {err}"
        );
        let out = r.command(&["bundle", "import"]).arg(&ruta).output()?;
        let err = sin_panico(&out, que)?;
        ensure!(!out.status.success(), "import of {que} succeeded");
        ensure!(
            err.contains("no se pudo leer") || err.contains("no existe") || err.contains("paquete"),
            "import of {que}: {err}"
        );
    }
    // A NUL byte never reaches the program.
    let con_nul = r
        .command(&["bundle", "export", "--salida", "a\0b"])
        .output();
    ensure!(con_nul.is_err(), "the OS refuses a NUL in an argument");
    // Invalid UTF-8 in a path is a path like any other (Unix).
    {
        use std::os::unix::ffi::OsStrExt;
        let raro = tmp
            .path()
            .join(std::ffi::OsStr::from_bytes(b"p\xff\xfe.bitacora"));
        let out = r
            .command(&["bundle", "export", "--salida"])
            .arg(&raro)
            .output()?;
        sin_panico(&out, "invalid UTF-8 path")?;
        ensure!(
            out.status.success() && raro.is_file(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The server's admin tool: a CCT that is a path is not a CCT.
    let datos = tmp.path().join("servidor");
    for cct in [
        "../../etc/passwd",
        "/etc/passwd",
        "07DPR0001A/../x",
        "' OR 1=1 --",
    ] {
        let out = std::process::Command::new(bin("bitacora-server"))
            .env_remove("BITACORA_DATABASE_URL")
            .arg("--data-dir")
            .arg(&datos)
            .args(["admin", "bundle", "exportar", "--cct", cct, "--salida"])
            .arg(tmp.path().join("s.bitacora"))
            .output()?;
        let err = sin_panico(&out, cct)?;
        ensure!(
            out.status.code() == Some(2),
            "admin bundle exportar --cct {cct}: {out:?}"
        );
        ensure!(err.contains("CCT"), "{err}");
    }
    // Invalid UTF-8 in an admin argument: a usage error, not a panic.
    {
        use std::os::unix::ffi::OsStrExt;
        let out = std::process::Command::new(bin("bitacora-server"))
            .env_remove("BITACORA_DATABASE_URL")
            .arg("--data-dir")
            .arg(&datos)
            .args(["admin", "usuario", "add", "--id"])
            .arg(std::ffi::OsStr::from_bytes(b"u\xff"))
            .args(["--nombre", "n", "--rol", "docente", "--cct", CCT])
            .output()?;
        sin_panico(&out, "invalid UTF-8 user id")?;
        ensure!(out.status.code() == Some(2), "{out:?}");
    }
    Ok(())
}
