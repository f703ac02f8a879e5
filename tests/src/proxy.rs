//! A fault-injecting TCP proxy for tests: listens on 127.0.0.1 port 0 and forwards every
//! connection to a target address, adding latency, a bandwidth cap, cuts after a random number
//! of bytes (mid-message: the receiver gets a truncated frame, then the close) and half-open
//! connections (nothing forwarded, sockets kept open).
//!
//! Randomness comes from one `StdRng` seeded with [`Faults::seed`] (printed on start and on
//! every change of seed), and connections draw from it in the order they are accepted, so a
//! test that opens its connections one after another sees the same cut points again for the
//! same seed.
//!
//! ```ignore
//! let proxy = FaultProxy::start(target, Faults::default()).await?;
//! // … log in through `proxy.addr` …
//! proxy.set_faults(Faults { cut_after_bytes: Some(0..20_000), seed, ..Faults::default() });
//! // … sync through the proxy; connections are cut …
//! proxy.set_faults(Faults::default());
//! println!("{:?}", proxy.counters());
//! proxy.stop().await;
//! ```

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The faults to inject. The default forwards everything intact and at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// One-way delay added to every chunk, in each direction.
    pub latency: Duration,
    /// Bandwidth cap per direction of each connection.
    pub bytes_per_sec: Option<u64>,
    /// Each connection, when it opens, draws a number of bytes from this range; once that many
    /// bytes (counting both directions) have been forwarded, the connection is cut: both sockets
    /// closed, whatever was in the middle of being forwarded truncated. Setting `None` later
    /// disarms the connections already open.
    pub cut_after_bytes: Option<Range<u64>>,
    /// Stop forwarding (in both directions, on every connection, new ones included) but keep
    /// the sockets open; what arrives meanwhile is held and forwarded once this is unset.
    pub half_open: bool,
    /// Seeds the proxy's random generator (on start, and again whenever it changes).
    pub seed: u64,
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted.
    pub connections: u64,
    /// Connections whose target could not be reached.
    pub target_errors: u64,
    /// Bytes forwarded from clients to the target.
    pub bytes_to_target: u64,
    /// Bytes forwarded from the target to clients.
    pub bytes_to_client: u64,
    /// Connections cut by [`Faults::cut_after_bytes`].
    pub cuts: u64,
}

/// One finished connection, in the order they finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnRecord {
    /// Accept order, from 1.
    pub id: u64,
    pub bytes_to_target: u64,
    pub bytes_to_client: u64,
    /// The cut point drawn for it, if it was armed.
    pub cut_at: Option<u64>,
    /// Whether it was cut.
    pub cut: bool,
}

#[derive(Default)]
struct AtomicCounters {
    connections: AtomicU64,
    target_errors: AtomicU64,
    bytes_to_target: AtomicU64,
    bytes_to_client: AtomicU64,
    cuts: AtomicU64,
}

struct Shared {
    target: SocketAddr,
    faults: watch::Sender<Faults>,
    rng: Mutex<StdRng>,
    stop: watch::Sender<bool>,
    counters: AtomicCounters,
    log: Mutex<Vec<ConnRecord>>,
}

/// A running proxy; dropping it stops it (see [`FaultProxy::stop`] to wait for that).
pub struct FaultProxy {
    /// Where clients connect: `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    pub target: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `target` with `faults`.
    pub async fn start(target: SocketAddr, faults: Faults) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        eprintln!(
            "FaultProxy {addr} -> {target}: seed {} ({faults:?})",
            faults.seed
        );
        let shared = Arc::new(Shared {
            target,
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            faults: watch::Sender::new(faults),
            stop: watch::Sender::new(false),
            counters: AtomicCounters::default(),
            log: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            target,
            shared,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, for clients that take a server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the faults. Latency, bandwidth and half-open apply at once to open connections
    /// too; a new cut range applies to connections opened from now on (`None` disarms all). A
    /// new seed reseeds the random generator.
    pub fn set_faults(&self, faults: Faults) {
        let old = self.shared.faults.send_replace(faults.clone());
        if old.seed != faults.seed {
            *self.shared.rng.lock().expect("rng lock") = StdRng::seed_from_u64(faults.seed);
        }
        eprintln!(
            "FaultProxy {}: seed {} ({faults:?})",
            self.addr, faults.seed
        );
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.borrow().clone()
    }

    pub fn counters(&self) -> Counters {
        let c = &self.shared.counters;
        Counters {
            connections: c.connections.load(Ordering::SeqCst),
            target_errors: c.target_errors.load(Ordering::SeqCst),
            bytes_to_target: c.bytes_to_target.load(Ordering::SeqCst),
            bytes_to_client: c.bytes_to_client.load(Ordering::SeqCst),
            cuts: c.cuts.load(Ordering::SeqCst),
        }
    }

    /// The connections that have finished so far (cut, closed by a peer, or failed to reach
    /// the target), oldest first.
    pub fn connections(&self) -> Vec<ConnRecord> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Stops accepting, closes every open connection and waits for the listener to go.
    pub async fn stop(mut self) {
        self.shared.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = listener.accept() => match r {
                Ok((client, _)) => {
                    let id = shared.counters.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    // Drawn here, in accept order, so that a seed replays the same cuts.
                    let cut_at = shared.faults.borrow().cut_after_bytes.clone().map(|r| {
                        if r.start >= r.end {
                            r.start
                        } else {
                            shared.rng.lock().expect("rng lock").random_range(r)
                        }
                    });
                    tokio::spawn(connection(shared.clone(), client, id, cut_at));
                }
                Err(e) => {
                    eprintln!("FaultProxy: accept failed: {e}");
                    return;
                }
            },
        }
    }
}

/// One proxied connection. Cutting it (or stopping the proxy) drops the whole future, and with
/// it both sockets.
async fn connection(shared: Arc<Shared>, client: TcpStream, id: u64, cut_at: Option<u64>) {
    let mut stop = shared.stop.subscribe();
    let server = tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
        r = TcpStream::connect(shared.target) => match r {
            Ok(s) => s,
            Err(_) => {
                shared.counters.target_errors.fetch_add(1, Ordering::SeqCst);
                shared.log.lock().expect("log lock").push(ConnRecord {
                    id,
                    cut_at,
                    ..ConnRecord::default()
                });
                return;
            }
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let conn = Conn {
        shared: shared.clone(),
        budget: Mutex::new(Budget {
            forwarded: 0,
            cut_at,
        }),
        halt: watch::Sender::new(false),
        cut: AtomicBool::new(false),
        bytes_to_target: AtomicU64::new(0),
        bytes_to_client: AtomicU64::new(0),
    };
    let mut halt = conn.halt.subscribe();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = async { tokio::join!(direction(&conn, cr, sw, true), direction(&conn, sr, cw, false)) } => {}
        _ = halt.wait_for(|h| *h) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    shared.log.lock().expect("log lock").push(ConnRecord {
        id,
        bytes_to_target: conn.bytes_to_target.load(Ordering::SeqCst),
        bytes_to_client: conn.bytes_to_client.load(Ordering::SeqCst),
        cut_at,
        cut: conn.cut.load(Ordering::SeqCst),
    });
}

struct Budget {
    forwarded: u64,
    cut_at: Option<u64>,
}

struct Conn {
    shared: Arc<Shared>,
    budget: Mutex<Budget>,
    /// Set when the connection must close now (a cut, or a peer gone).
    halt: watch::Sender<bool>,
    cut: AtomicBool,
    bytes_to_target: AtomicU64,
    bytes_to_client: AtomicU64,
}

impl Conn {
    /// How many of the next `n` bytes may be forwarded, and whether the connection is cut
    /// right after them.
    fn take(&self, n: usize) -> (usize, bool) {
        let armed = self.shared.faults.borrow().cut_after_bytes.is_some();
        let mut b = self.budget.lock().expect("budget lock");
        let n64 = n as u64;
        match b.cut_at {
            Some(c) if armed && b.forwarded + n64 >= c => {
                let allowed = c.saturating_sub(b.forwarded);
                b.forwarded += allowed;
                (allowed as usize, true)
            }
            _ => {
                b.forwarded += n64;
                (n, false)
            }
        }
    }
}

enum Chunk {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// One direction: a reader stamping chunks with their delivery time, a writer delivering them
/// (so latency delays without throttling), with a bounded queue in between.
async fn direction(conn: &Conn, mut from: OwnedReadHalf, to: OwnedWriteHalf, upstream: bool) {
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let r = from.read(&mut buf).await;
            let at = Instant::now() + conn.shared.faults.borrow().latency;
            let chunk = match r {
                Ok(0) | Err(_) => Chunk::Eof(at),
                Ok(n) => Chunk::Data(at, buf[..n].to_vec()),
            };
            let eof = matches!(chunk, Chunk::Eof(_));
            if tx.send(chunk).await.is_err() || eof {
                return;
            }
        }
    };
    tokio::join!(read, write_side(conn, rx, to, upstream));
}

async fn write_side(
    conn: &Conn,
    mut rx: mpsc::Receiver<Chunk>,
    mut to: OwnedWriteHalf,
    upstream: bool,
) {
    let mut faults = conn.shared.faults.subscribe();
    let (counter, mine) = if upstream {
        (&conn.shared.counters.bytes_to_target, &conn.bytes_to_target)
    } else {
        (&conn.shared.counters.bytes_to_client, &conn.bytes_to_client)
    };
    let mut next_free = Instant::now();
    while let Some(chunk) = rx.recv().await {
        let (at, data) = match chunk {
            Chunk::Data(at, data) => (at, data),
            Chunk::Eof(at) => {
                tokio::time::sleep_until(at).await;
                let _ = faults.wait_for(|f| !f.half_open).await;
                // Pass the half-close on; the other direction may still be talking.
                let _ = to.shutdown().await;
                return;
            }
        };
        tokio::time::sleep_until(at).await;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let _ = faults.wait_for(|f| !f.half_open).await;
            let rate = faults.borrow().bytes_per_sec.filter(|r| *r > 0);
            let mut piece = rest.len();
            if let Some(rate) = rate {
                // Pieces of ~1/20 s, each sent when the previous one's time is up.
                piece = piece.min((rate / 20).max(1) as usize);
                let now = Instant::now();
                if next_free > now {
                    tokio::time::sleep_until(next_free).await;
                }
                next_free =
                    next_free.max(now) + Duration::from_secs_f64(piece as f64 / rate as f64);
            }
            let (allowed, cut) = conn.take(piece);
            if allowed > 0 {
                if to.write_all(&rest[..allowed]).await.is_err() {
                    conn.halt.send_replace(true);
                    return;
                }
                counter.fetch_add(allowed as u64, Ordering::SeqCst);
                mine.fetch_add(allowed as u64, Ordering::SeqCst);
            }
            if cut {
                let _ = to.flush().await;
                // Both directions may reach the cut point at once: count it once.
                if !conn.cut.swap(true, Ordering::SeqCst) {
                    conn.shared.counters.cuts.fetch_add(1, Ordering::SeqCst);
                }
                conn.halt.send_replace(true);
                return;
            }
            rest = &rest[allowed..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that echoes every byte back.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    fn payload(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random()).collect()
    }

    /// Writes `data` through a new connection and reads until EOF (or `data.len()` bytes).
    async fn round_trip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let out = data.to_vec();
        let writer = tokio::spawn(async move {
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
        });
        let mut got = Vec::new();
        let _ = r.read_to_end(&mut got).await;
        let _ = writer.await;
        got
    }

    #[tokio::test]
    async fn forwards_intact_without_faults() {
        let proxy = FaultProxy::start(echo().await, Faults::default())
            .await
            .unwrap();
        let data = payload(1 << 20, 1);
        let got = round_trip(proxy.addr, &data).await;
        assert!(
            got == data,
            "echoed bytes differ ({} of {})",
            got.len(),
            data.len()
        );
        let c = proxy.counters();
        assert_eq!(c.connections, 1);
        assert_eq!(c.bytes_to_target, data.len() as u64);
        assert_eq!(c.bytes_to_client, data.len() as u64);
        assert_eq!(c.cuts, 0);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn latency_and_bandwidth_delay_but_keep_bytes() {
        let faults = Faults {
            latency: Duration::from_millis(30),
            bytes_per_sec: Some(400_000),
            ..Faults::default()
        };
        let proxy = FaultProxy::start(echo().await, faults).await.unwrap();
        let data = payload(100_000, 2);
        let t = Instant::now();
        let got = round_trip(proxy.addr, &data).await;
        assert!(got == data);
        // 100 kB at 400 kB/s each way, plus two latencies: at least 0.25 s.
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        proxy.stop().await;
    }

    #[tokio::test]
    async fn cuts_after_the_drawn_byte_count() {
        let faults = Faults {
            cut_after_bytes: Some(1000..1001),
            seed: 3,
            ..Faults::default()
        };
        let proxy = FaultProxy::start(echo().await, faults).await.unwrap();
        let data = payload(50_000, 3);
        let got = round_trip(proxy.addr, &data).await;
        let c = proxy.counters();
        assert_eq!(c.cuts, 1);
        assert_eq!(c.bytes_to_target + c.bytes_to_client, 1000, "{c:?}");
        assert_eq!(got.len() as u64, c.bytes_to_client);
        assert!(
            data.starts_with(&got),
            "what got through is a prefix, intact"
        );

        // Random cut points, reproducible from the seed; `None` disarms.
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..3)
                .map(|_| rng.random_range(10..5000u64))
                .collect::<Vec<_>>()
        };
        proxy.set_faults(Faults {
            cut_after_bytes: Some(10..5000),
            seed: 42,
            ..Faults::default()
        });
        let mut seen = Vec::new();
        for _ in 0..3 {
            let before = proxy.counters();
            round_trip(proxy.addr, &data).await;
            let after = proxy.counters();
            seen.push(
                after.bytes_to_target + after.bytes_to_client
                    - before.bytes_to_target
                    - before.bytes_to_client,
            );
        }
        assert_eq!(seen, draw(42));
        assert_eq!(proxy.counters().cuts, 4);
        proxy.set_faults(Faults::default());
        assert!(round_trip(proxy.addr, &data).await == data);
        assert_eq!(proxy.counters().cuts, 4);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn half_open_holds_bytes_until_released() {
        let proxy = FaultProxy::start(
            echo().await,
            Faults {
                half_open: true,
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"hola").await.unwrap();
        let mut buf = [0u8; 4];
        // Connected, but nothing comes back while half-open.
        let r = tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf)).await;
        assert!(r.is_err(), "nothing may arrive while half-open");
        assert_eq!(proxy.counters().bytes_to_target, 0);
        proxy.set_faults(Faults::default());
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hola");
        proxy.stop().await;
    }
}
