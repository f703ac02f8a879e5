//! `interop_samod`: two clients built on `samod` (the Rust automerge-repo, wire compatible with
//! the JavaScript one) sync one school document through the real server with valid tokens; a
//! client holding another school's token finds the document unavailable. The same story as
//! `interop_js`, from a second, independent implementation of the protocol.
//!
//! samod dials through its generic [`Dialer`]/[`Transport`] API with our own tokio-tungstenite
//! (its built-in WebSocket dialer would pull a TLS stack and cannot set headers).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use automerge::{AutoCommit, Automerge};
use bitacora_core::ids::RecordId;
use bitacora_core::model::Ctx;
use bitacora_core::model::escuela::{self, Escuela, EstadoAcuerdo, NuevoAcuerdo};
use bitacora_server::hub::assemble;
use bitacora_tests::server::TestServer;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use samod::{BackoffConfig, DialError, Dialer, DocHandle, DocumentId, Repo, Transport, Url};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

const ESPERA: Duration = Duration::from_secs(20);

/// How the bearer token travels: both ways the server accepts are exercised.
#[derive(Clone, Copy)]
enum Token {
    Header,
    Query,
}

/// Dials `GET /sync` with a bearer token; samod sees binary frames as byte messages.
struct WsDialer {
    url: Url,
    token: String,
    via: Token,
}

impl Dialer for WsDialer {
    type Error = Infallible;

    fn url(&self) -> Url {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<Infallible>>> {
        let mut url = self.url.clone();
        let (token, via) = (self.token.clone(), self.via);
        Box::pin(async move {
            if let Token::Query = via {
                url.query_pairs_mut().append_pair("token", &token);
            }
            let mut req = url
                .as_str()
                .into_client_request()
                .map_err(DialError::transient)?;
            if let Token::Header = via {
                let v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(DialError::transient)?;
                req.headers_mut().insert("authorization", v);
            }
            let (ws, _) = tokio_tungstenite::connect_async(req)
                .await
                .map_err(DialError::transient)?;
            let (sink, stream) = ws.split();
            let stream = stream
                .try_filter_map(|m| async move {
                    Ok(match m {
                        Message::Binary(b) => Some(b.to_vec()),
                        _ => None,
                    })
                })
                .boxed();
            let sink = sink.with(|b: Vec<u8>| async move {
                Ok::<_, tungstenite::Error>(Message::Binary(b.into()))
            });
            Ok(Transport::new(stream, Box::pin(sink)))
        })
    }
}

/// A samod repo connected to the server with one user's token.
async fn cliente(srv: &TestServer, token: &str, via: Token) -> Result<Repo> {
    let repo = Repo::build_tokio().load().await;
    let url = Url::parse(&format!("{}/sync", srv.url.replacen("http", "ws", 1)))?;
    let dialer = Arc::new(WsDialer {
        url,
        token: token.to_string(),
        via,
    });
    let h = repo.dial(BackoffConfig::default(), dialer)?;
    timeout(ESPERA, h.established())
        .await
        .context("timeout: samod handshake with the server")?
        .map_err(|e| anyhow!("dial: {e}"))?;
    Ok(repo)
}

/// The document as the Rust model reads it.
fn leer(h: &DocHandle) -> Result<Escuela> {
    let bytes = h.with_document(|d| d.save());
    Ok(escuela::leer(&AutoCommit::load(&bytes)?)?)
}

/// Applies one of the model's writers (which take an `AutoCommit`) to samod's `Automerge`, with
/// samod's actor, so the changes are samod's own local changes.
fn escribir(
    h: &DocHandle,
    f: impl FnOnce(&mut AutoCommit) -> Result<(), bitacora_core::ModelError>,
) -> Result<()> {
    h.with_document(|d: &mut Automerge| -> Result<()> {
        let antes = d.get_heads();
        let mut ac = AutoCommit::load(&d.save())?.with_actor(d.get_actor().clone());
        f(&mut ac)?;
        d.apply_changes(ac.get_changes(&antes))?;
        Ok(())
    })
}

/// Waits, on samod's change notifications, until `pred` holds for the document.
async fn esperar(h: &DocHandle, que: &str, pred: impl Fn(&DocHandle) -> bool) -> Result<()> {
    let mut cambios = h.changes();
    timeout(ESPERA, async {
        while !pred(h) {
            cambios.next().await.context("change stream ended")?;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .with_context(|| format!("timeout: {que}"))?
}

fn actor(h: &DocHandle) -> String {
    h.with_document(|d| d.get_actor().to_hex_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_samod() -> Result<()> {
    let srv = TestServer::start().await?;
    let (doc_a, [t_a1, t_a2, t_b]) = srv.escena_interop().await?;
    let id: DocumentId = doc_a
        .id
        .url()
        .parse::<samod::AutomergeUrl>()
        .map_err(|e| anyhow!("{e:?}"))?
        .document_id()
        .clone();

    // Teacher 1 of school A opens the school's document and records an agreement.
    let r1 = cliente(&srv, &t_a1, Token::Header).await?;
    let h1 = timeout(ESPERA, r1.find(id.clone()))
        .await
        .context("timeout: find A1")??
        .context("school A's document unavailable to A1")?;
    let e = leer(&h1)?;
    assert_eq!(e.cct, "07DPR0001A", "samod loaded the server's genesis");
    srv.enrolar(&actor(&h1), "ana").await?;
    let ana = Ctx {
        ahora: 1_760_000_000,
        autor: Some("Ana (samod)"),
    };
    let a1 = RecordId::parse("rsana00001")?;
    escribir(&h1, |d| {
        escuela::agregar_acuerdo(
            d,
            &ana,
            &a1,
            &NuevoAcuerdo {
                texto: "Acuerdo escrito desde samod".into(),
                responsables: vec!["Ana (samod)".into()],
                fecha_compromiso: None,
                sesion_origen: None,
            },
        )
    })?;

    // Teacher 2 of the same school, another client, receives it through the server and answers.
    let r2 = cliente(&srv, &t_a2, Token::Query).await?;
    let h2 = timeout(ESPERA, r2.find(id.clone()))
        .await
        .context("timeout: find A2")??
        .context("school A's document unavailable to A2")?;
    esperar(&h2, "A2 sees A1's acuerdo", |h| {
        leer(h).is_ok_and(|e| e.acuerdos.iter().any(|a| a.id == a1.as_str()))
    })
    .await?;
    srv.enrolar(&actor(&h2), "alma").await?;
    let alma = Ctx {
        ahora: 1_760_000_001,
        autor: Some("Alma (samod)"),
    };
    let a2 = RecordId::parse("rsalma0001")?;
    escribir(&h2, |d| {
        escuela::editar_texto_acuerdo(d, &alma, &a1, "Nuevo: Acuerdo escrito desde samod")?;
        escuela::agregar_acuerdo(
            d,
            &alma,
            &a2,
            &NuevoAcuerdo {
                texto: "Segundo acuerdo, desde otro cliente".into(),
                responsables: Vec::new(),
                fecha_compromiso: None,
                sesion_origen: None,
            },
        )?;
        escuela::estado_acuerdo(d, &alma, &a2, EstadoAcuerdo::EnProceso, None)
    })?;
    let heads2 = h2.with_document(|d| d.get_heads());
    esperar(&h1, "A1 converges with A2", |h| {
        h.with_document(|d| d.get_heads()) == heads2
    })
    .await?;
    let e1 = leer(&h1)?;
    assert!(
        e1.acuerdos
            .iter()
            .any(|a| a.id == a1.as_str() && a.texto.starts_with("Nuevo: ")),
        "{:?}",
        e1.acuerdos
    );
    assert_eq!(e1, leer(&h2)?);

    // A teacher of school B asks for school A's document: it is unavailable.
    let r3 = cliente(&srv, &t_b, Token::Header).await?;
    let h3 = timeout(ESPERA, r3.find(id.clone()))
        .await
        .context("timeout: find B")??;
    assert!(h3.is_none(), "school B's teacher got school A's document");

    // The server holds (durably) what the samod clients wrote, readable by the Rust model.
    let stored = srv.db.load(&doc_a.id).await?;
    let doc = assemble(&stored).map_err(anyhow::Error::msg)?;
    let e = escuela::leer(&AutoCommit::load(&doc.save())?)?;
    let ac1 = e
        .acuerdos
        .iter()
        .find(|a| a.id == a1.as_str())
        .context("samod acuerdo stored")?;
    assert_eq!(ac1.texto, "Nuevo: Acuerdo escrito desde samod");
    assert_eq!(ac1.responsables, vec!["Ana (samod)".to_string()]);
    assert!(
        e.acuerdos
            .iter()
            .any(|a| a.id == a2.as_str() && a.estado == "en_proceso"),
        "{:?}",
        e.acuerdos
    );
    let mut stored_heads = doc.get_heads();
    let mut heads2 = heads2;
    stored_heads.sort();
    heads2.sort();
    assert_eq!(
        stored_heads, heads2,
        "the server has what both clients have"
    );
    // Access decisions were audited, including the refusal of school B.
    let audit = srv.db.audit_tail(200).await?;
    assert!(
        audit
            .iter()
            .any(|r| r.1 == "beto" && r.3 == "acceso" && r.4 == "denegado"),
        "{audit:?}"
    );
    for u in ["ana", "alma"] {
        assert!(
            audit
                .iter()
                .any(|r| r.1 == u && r.3 == "escritura" && r.4 == "aceptada"),
            "{u}: {audit:?}"
        );
    }

    for r in [r1, r2, r3] {
        timeout(ESPERA, r.stop())
            .await
            .context("timeout: repo stop")?;
    }
    srv.stop().await?;
    Ok(())
}
