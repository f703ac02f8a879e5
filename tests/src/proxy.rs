//! A fault-injecting TCP proxy for tests: listens on 127.0.0.1 port 0 and forwards every
//! connection to a target address, injecting the faults of a bad link:
//!
//! - **latency**: a one-way delay on every chunk, in each direction ([`Faults::latency`]);
//! - **bandwidth cap** per direction of each connection ([`Faults::bytes_per_sec`]);
//! - **drops**: a connection is cut after a random number of bytes, usually in the middle of a
//!   message ([`Faults::cut_after_bytes`]), or every open connection is cut at once on request
//!   ([`FaultProxy::drop_all`]), as when a satellite link goes down;
//! - **half-open connections**: one direction (or both) stops forwarding while both sockets stay
//!   open, so neither end learns that the link is dead ([`Faults::half_open`]);
//! - **truncated frames**: the connection is closed in the middle of its n-th WebSocket frame in
//!   one direction, after the frame's header and half its payload ([`Faults::truncate_frame`]).
//!
//! The target can be changed while the proxy runs ([`FaultProxy::set_target`]), so clients keep
//! one address across server restarts.
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

/// One direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the target (the server).
    ToTarget,
    /// From the target back to the client.
    ToClient,
}

/// Which directions of every connection stop forwarding while the sockets stay open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HalfOpen {
    /// Everything is forwarded.
    #[default]
    Off,
    /// Nothing is forwarded either way.
    Both,
    /// One direction stalls; the other keeps forwarding.
    Only(Direction),
}

impl HalfOpen {
    fn stalls(self, d: Direction) -> bool {
        match self {
            HalfOpen::Off => false,
            HalfOpen::Both => true,
            HalfOpen::Only(x) => x == d,
        }
    }
}

/// Close a connection in the middle of a WebSocket frame: in `direction`, let `after_frames`
/// whole frames through (after the HTTP upgrade), then the next frame's header and half its
/// payload (a frame with an empty payload is cut inside its header), then close both sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncate {
    pub direction: Direction,
    pub after_frames: u64,
}

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
    /// Stop forwarding in one or both directions (on every connection, new ones included) but
    /// keep the sockets open; what arrives meanwhile is held and forwarded once this is unset.
    pub half_open: HalfOpen,
    /// Close each connection opened from now on in the middle of a WebSocket frame.
    pub truncate_frame: Option<Truncate>,
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
    /// Connections closed mid-frame by [`Faults::truncate_frame`].
    pub truncations: u64,
    /// Connections closed by [`FaultProxy::drop_all`].
    pub drops: u64,
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
    /// Whether it was cut by [`Faults::cut_after_bytes`].
    pub cut: bool,
    /// Whether it was closed mid-frame by [`Faults::truncate_frame`].
    pub truncated: bool,
    /// Whether it was closed by [`FaultProxy::drop_all`].
    pub dropped: bool,
}

#[derive(Default)]
struct AtomicCounters {
    connections: AtomicU64,
    target_errors: AtomicU64,
    bytes_to_target: AtomicU64,
    bytes_to_client: AtomicU64,
    cuts: AtomicU64,
    truncations: AtomicU64,
    drops: AtomicU64,
}

struct Shared {
    target: Mutex<SocketAddr>,
    faults: watch::Sender<Faults>,
    rng: Mutex<StdRng>,
    stop: watch::Sender<bool>,
    /// Bumped by [`FaultProxy::drop_all`]; every connection open at that moment closes.
    drops: watch::Sender<u64>,
    counters: AtomicCounters,
    log: Mutex<Vec<ConnRecord>>,
}

/// A running proxy; dropping it stops it (see [`FaultProxy::stop`] to wait for that).
pub struct FaultProxy {
    /// Where clients connect: `127.0.0.1:PORT`.
    pub addr: SocketAddr,
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
            target: Mutex::new(target),
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            faults: watch::Sender::new(faults),
            stop: watch::Sender::new(false),
            drops: watch::Sender::new(0),
            counters: AtomicCounters::default(),
            log: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, for clients that take a server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where connections opened now are forwarded.
    pub fn target(&self) -> SocketAddr {
        *self.shared.target.lock().expect("target lock")
    }

    /// Forwards connections opened from now on to `target` (a restarted server on a new port);
    /// connections already open keep their old target.
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().expect("target lock") = target;
    }

    /// Replaces the faults. Latency, bandwidth and half-open apply at once to open connections
    /// too; a new cut range or frame truncation applies to connections opened from now on
    /// (`cut_after_bytes: None` disarms all). A new seed reseeds the random generator.
    pub fn set_faults(&self, faults: Faults) {
        let old = self.shared.faults.send_replace(faults.clone());
        if old.seed != faults.seed {
            *self.shared.rng.lock().expect("rng lock") = StdRng::seed_from_u64(faults.seed);
            eprintln!(
                "FaultProxy {}: seed {} ({faults:?})",
                self.addr, faults.seed
            );
        }
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.borrow().clone()
    }

    /// Closes every connection open at this moment (both sockets, whatever was in flight
    /// lost); connections opened afterwards are forwarded as usual.
    pub fn drop_all(&self) {
        self.shared.drops.send_modify(|g| *g += 1);
    }

    pub fn counters(&self) -> Counters {
        let c = &self.shared.counters;
        Counters {
            connections: c.connections.load(Ordering::SeqCst),
            target_errors: c.target_errors.load(Ordering::SeqCst),
            bytes_to_target: c.bytes_to_target.load(Ordering::SeqCst),
            bytes_to_client: c.bytes_to_client.load(Ordering::SeqCst),
            cuts: c.cuts.load(Ordering::SeqCst),
            truncations: c.truncations.load(Ordering::SeqCst),
            drops: c.drops.load(Ordering::SeqCst),
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
                    let faults = shared.faults.borrow().clone();
                    let cut_at = faults.cut_after_bytes.map(|r| {
                        if r.start >= r.end {
                            r.start
                        } else {
                            shared.rng.lock().expect("rng lock").random_range(r)
                        }
                    });
                    // Subscribed here, so a `drop_all` after the accept reaches it.
                    let dropped = shared.drops.subscribe();
                    tokio::spawn(connection(
                        shared.clone(),
                        client,
                        id,
                        cut_at,
                        faults.truncate_frame,
                        dropped,
                    ));
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
async fn connection(
    shared: Arc<Shared>,
    client: TcpStream,
    id: u64,
    cut_at: Option<u64>,
    truncate: Option<Truncate>,
    mut dropped: watch::Receiver<u64>,
) {
    let mut stop = shared.stop.subscribe();
    let target = *shared.target.lock().expect("target lock");
    let server = tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
        r = TcpStream::connect(target) => match r {
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
        truncated: AtomicBool::new(false),
        bytes_to_target: AtomicU64::new(0),
        bytes_to_client: AtomicU64::new(0),
    };
    let mut halt = conn.halt.subscribe();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let cutter = |d: Direction| {
        truncate
            .filter(|t| t.direction == d)
            .map(|t| FrameCutter::new(t.after_frames))
    };
    // Both directions own the sockets: they close when `both` is dropped, at the end of this
    // function, after the bookkeeping, so a peer that sees the close sees the counters too.
    let both = async {
        tokio::join!(
            direction(
                &conn,
                cr,
                sw,
                Direction::ToTarget,
                cutter(Direction::ToTarget)
            ),
            direction(
                &conn,
                sr,
                cw,
                Direction::ToClient,
                cutter(Direction::ToClient)
            ),
        )
    };
    tokio::pin!(both);
    let mut was_dropped = false;
    tokio::select! {
        _ = &mut both => {}
        _ = halt.wait_for(|h| *h) => {}
        _ = stop.wait_for(|s| *s) => {}
        r = dropped.changed() => was_dropped = r.is_ok(),
    }
    if was_dropped {
        shared.counters.drops.fetch_add(1, Ordering::SeqCst);
    }
    shared.log.lock().expect("log lock").push(ConnRecord {
        id,
        bytes_to_target: conn.bytes_to_target.load(Ordering::SeqCst),
        bytes_to_client: conn.bytes_to_client.load(Ordering::SeqCst),
        cut_at,
        cut: conn.cut.load(Ordering::SeqCst),
        truncated: conn.truncated.load(Ordering::SeqCst),
        dropped: was_dropped,
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
    truncated: AtomicBool,
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

/// Follows the WebSocket frames of one direction (after the HTTP upgrade, whose end is the
/// first blank line) to find where to close the connection mid-frame ([`Truncate`]).
struct FrameCutter {
    /// Whole frames still to let through.
    frames_left: u64,
    /// Bytes of `\r\n\r\n` matched so far; 4 once the HTTP part is over.
    http_matched: u8,
    /// The header of the current frame, while it is being read.
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// In the frame to truncate: payload bytes still to let through before the close.
    cut_left: Option<u64>,
}

impl FrameCutter {
    fn new(after_frames: u64) -> FrameCutter {
        FrameCutter {
            frames_left: after_frames,
            http_matched: 0,
            header: Vec::new(),
            payload_left: 0,
            cut_left: None,
        }
    }

    /// The length of a complete frame header and the payload length it announces.
    fn parse_header(h: &[u8]) -> Option<(usize, u64)> {
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let (ext, len7) = match h[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let total = 2 + ext + if masked { 4 } else { 0 };
        if h.len() < total {
            return None;
        }
        let len = len7.unwrap_or_else(|| {
            h[2..2 + ext]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        });
        Some((total, len))
    }

    /// Takes the next bytes of the stream; `Some(k)` when the connection must close after the
    /// first `k` of them.
    fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < data.len() {
            if self.http_matched < 4 {
                let want = b"\r\n\r\n"[usize::from(self.http_matched)];
                self.http_matched = match data[i] {
                    b if b == want => self.http_matched + 1,
                    b'\r' => 1,
                    _ => 0,
                };
                i += 1;
                continue;
            }
            if let Some(left) = self.cut_left {
                let rest = (data.len() - i) as u64;
                if left <= rest {
                    return Some(i + left as usize);
                }
                self.cut_left = Some(left - rest);
                return None;
            }
            if self.payload_left > 0 {
                let take = self.payload_left.min((data.len() - i) as u64);
                self.payload_left -= take;
                i += take as usize;
                continue;
            }
            self.header.push(data[i]);
            i += 1;
            let Some((total, len)) = Self::parse_header(&self.header) else {
                continue;
            };
            debug_assert_eq!(total, self.header.len());
            self.header.clear();
            if self.frames_left > 0 {
                self.frames_left -= 1;
                self.payload_left = len;
                continue;
            }
            if len == 0 {
                // Nothing to cut in the payload: cut the header's last byte instead.
                return Some(i - 1);
            }
            self.cut_left = Some(len / 2);
        }
        None
    }
}

enum Chunk {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// One direction: a reader stamping chunks with their delivery time, a writer delivering them
/// (so latency delays without throttling), with a bounded queue in between.
async fn direction(
    conn: &Conn,
    mut from: OwnedReadHalf,
    to: OwnedWriteHalf,
    dir: Direction,
    cutter: Option<FrameCutter>,
) {
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
    tokio::join!(read, write_side(conn, rx, to, dir, cutter));
}

async fn write_side(
    conn: &Conn,
    mut rx: mpsc::Receiver<Chunk>,
    mut to: OwnedWriteHalf,
    dir: Direction,
    mut cutter: Option<FrameCutter>,
) {
    let mut faults = conn.shared.faults.subscribe();
    let (counter, mine) = match dir {
        Direction::ToTarget => (&conn.shared.counters.bytes_to_target, &conn.bytes_to_target),
        Direction::ToClient => (&conn.shared.counters.bytes_to_client, &conn.bytes_to_client),
    };
    let mut next_free = Instant::now();
    while let Some(chunk) = rx.recv().await {
        let (at, data) = match chunk {
            Chunk::Data(at, data) => (at, data),
            Chunk::Eof(at) => {
                tokio::time::sleep_until(at).await;
                let _ = faults.wait_for(|f| !f.half_open.stalls(dir)).await;
                // Pass the half-close on; the other direction may still be talking.
                let _ = to.shutdown().await;
                return;
            }
        };
        tokio::time::sleep_until(at).await;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let _ = faults.wait_for(|f| !f.half_open.stalls(dir)).await;
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
            let truncate = match cutter.as_mut().and_then(|c| c.feed(&rest[..piece])) {
                Some(k) => {
                    piece = k;
                    true
                }
                None => false,
            };
            let (allowed, cut) = conn.take(piece);
            if allowed > 0 {
                if to.write_all(&rest[..allowed]).await.is_err() {
                    conn.halt.send_replace(true);
                    return;
                }
                counter.fetch_add(allowed as u64, Ordering::SeqCst);
                mine.fetch_add(allowed as u64, Ordering::SeqCst);
            }
            if cut || truncate {
                let _ = to.flush().await;
                // Both directions may reach the cut point at once: count it once.
                if cut && !conn.cut.swap(true, Ordering::SeqCst) {
                    conn.shared.counters.cuts.fetch_add(1, Ordering::SeqCst);
                }
                if !cut && !conn.truncated.swap(true, Ordering::SeqCst) {
                    conn.shared
                        .counters
                        .truncations
                        .fetch_add(1, Ordering::SeqCst);
                }
                conn.halt.send_replace(true);
                // `to` stays open until the connection closes both sockets at once.
                std::future::pending::<()>().await;
            }
            rest = &rest[allowed..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;

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

    /// A target that greets every connection with `hello`, then reports every byte it
    /// receives on the channel.
    async fn greeter(hello: &'static [u8]) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = s.write_all(hello).await;
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        let _ = tx.send(buf[..n].to_vec());
                    }
                });
            }
        });
        (addr, rx)
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

    /// Whether nothing at all arrives on `s` for a while (used only to check a non-event).
    async fn silent(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_millis(200), s.read(&mut b))
            .await
            .is_err()
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
    async fn latency_delays_each_way_but_keeps_bytes() {
        let faults = Faults {
            latency: Duration::from_millis(100),
            ..Faults::default()
        };
        let proxy = FaultProxy::start(echo().await, faults).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let t = Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        let rtt = t.elapsed();
        assert_eq!(&buf, b"ping");
        // 100 ms each way: a round trip of at least 200 ms.
        assert!(rtt >= Duration::from_millis(200), "{rtt:?}");
        // Latency delays without throttling: 1 MB echoes in far less than a second per chunk.
        let data = payload(1 << 20, 7);
        let t = Instant::now();
        assert!(round_trip(proxy.addr, &data).await == data);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        proxy.stop().await;
    }

    #[tokio::test]
    async fn bandwidth_cap_slows_but_keeps_bytes() {
        let faults = Faults {
            bytes_per_sec: Some(400_000),
            ..Faults::default()
        };
        let proxy = FaultProxy::start(echo().await, faults).await.unwrap();
        let data = payload(100_000, 2);
        let t = Instant::now();
        let got = round_trip(proxy.addr, &data).await;
        assert!(got == data);
        // 100 kB at 400 kB/s, each way (the two ways overlap): at least 0.25 s.
        assert!(
            t.elapsed() >= Duration::from_millis(240),
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
    async fn drop_all_closes_open_connections_only() {
        let proxy = FaultProxy::start(echo().await, Faults::default())
            .await
            .unwrap();
        let mut a = TcpStream::connect(proxy.addr).await.unwrap();
        let mut b = TcpStream::connect(proxy.addr).await.unwrap();
        let mut buf = [0u8; 4];
        for s in [&mut a, &mut b] {
            s.write_all(b"hola").await.unwrap();
            s.read_exact(&mut buf).await.unwrap();
        }
        proxy.drop_all();
        for s in [&mut a, &mut b] {
            // EOF (or a reset): the link is gone.
            let r = s.read(&mut buf).await;
            assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        }
        assert_eq!(proxy.counters().drops, 2);
        assert!(proxy.connections().iter().all(|c| c.dropped));
        // A connection opened afterwards works.
        assert!(round_trip(proxy.addr, b"otra vez").await == b"otra vez");
        assert_eq!(proxy.counters().drops, 2);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn half_open_holds_bytes_until_released() {
        let proxy = FaultProxy::start(
            echo().await,
            Faults {
                half_open: HalfOpen::Both,
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"hola").await.unwrap();
        // Connected, but nothing comes back while half-open.
        assert!(silent(&mut s).await, "nothing may arrive while half-open");
        assert_eq!(proxy.counters().bytes_to_target, 0);
        proxy.set_faults(Faults::default());
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hola");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn half_open_in_one_direction_only() {
        // The replies stall; what the client sends still arrives.
        let (target, mut received) = greeter(b"hola").await;
        let proxy = FaultProxy::start(
            target,
            Faults {
                half_open: HalfOpen::Only(Direction::ToClient),
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"abc").await.unwrap();
        assert_eq!(received.recv().await.unwrap(), b"abc");
        assert!(silent(&mut s).await, "the greeting must not arrive");
        assert_eq!(proxy.counters().bytes_to_client, 0);
        proxy.set_faults(Faults::default());
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hola");

        // The other way round: the greeting arrives, the client's bytes stall.
        proxy.set_faults(Faults {
            half_open: HalfOpen::Only(Direction::ToTarget),
            ..Faults::default()
        });
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hola");
        s.write_all(b"xyz").await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(200), received.recv()).await;
        assert!(r.is_err(), "nothing may reach the target: {r:?}");
        proxy.set_faults(Faults::default());
        assert_eq!(received.recv().await.unwrap(), b"xyz");
        proxy.stop().await;
    }

    #[tokio::test]
    async fn set_target_redirects_new_connections() {
        let (uno, _r1) = greeter(b"uno!").await;
        let (dos, _r2) = greeter(b"dos!").await;
        let proxy = FaultProxy::start(uno, Faults::default()).await.unwrap();
        let mut buf = [0u8; 4];
        let mut a = TcpStream::connect(proxy.addr).await.unwrap();
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"uno!");
        proxy.set_target(dos);
        assert_eq!(proxy.target(), dos);
        let mut b = TcpStream::connect(proxy.addr).await.unwrap();
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"dos!");
        proxy.stop().await;
    }

    /// A WebSocket frame as a client (masked) or a server (unmasked) writes it.
    fn frame(payload: &[u8], masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => f.push(m | n as u8),
            n @ 126..=0xffff => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frame_cutter_cuts_inside_the_chosen_frame() {
        let http = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let frames = [
            frame(&[7; 10], true),
            frame(&[8; 300], false),
            frame(&[9; 70_000], true),
            frame(&[], false),
        ];
        let stream: Vec<u8> = http
            .iter()
            .chain(frames.iter().flatten())
            .copied()
            .collect();
        let start = |n: usize| http.len() + frames[..n].iter().map(Vec::len).sum::<usize>();
        // Where the close falls for each frame: header plus half the payload.
        let expected = [
            start(0) + 6 + 5,
            start(1) + 4 + 150,
            start(2) + 14 + 35_000,
            start(3) + 1,
        ];
        for (n, want) in expected.into_iter().enumerate() {
            // Whole, and fed in pieces of every awkward size.
            for piece in [stream.len(), 1, 3, 1000] {
                let mut c = FrameCutter::new(n as u64);
                let mut fed = 0;
                let got = stream.chunks(piece).find_map(|p| {
                    let r = c.feed(p).map(|k| fed + k);
                    fed += p.len();
                    r
                });
                assert_eq!(got, Some(want), "frame {n}, pieces of {piece}");
            }
        }
        // Past the last frame: nothing to cut.
        assert_eq!(FrameCutter::new(4).feed(&stream), None);
    }

    /// A WebSocket echo server; reports what it received and how its connection ended.
    async fn ws_echo() -> (SocketAddr, mpsc::UnboundedReceiver<Result<Vec<u8>, String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                        return;
                    };
                    loop {
                        match ws.next().await {
                            Some(Ok(Ws::Binary(b))) => {
                                let _ = tx.send(Ok(b.to_vec()));
                                if ws.send(Ws::Binary(b)).await.is_err() {
                                    let _ = tx.send(Err("send failed".into()));
                                    return;
                                }
                            }
                            Some(Ok(Ws::Close(_))) | None => {
                                let _ = tx.send(Err("closed".into()));
                                return;
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                let _ = tx.send(Err(e.to_string()));
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn truncates_a_websocket_frame_in_either_direction() {
        let (target, mut server_saw) = ws_echo().await;
        let msg = |i: u8| Ws::Binary(vec![i; 1000].into());

        // The server's second reply is cut in half: the client gets the first, then an error
        // (no close handshake).
        let proxy = FaultProxy::start(
            target,
            Faults {
                truncate_frame: Some(Truncate {
                    direction: Direction::ToClient,
                    after_frames: 1,
                }),
                ..Faults::default()
            },
        )
        .await
        .unwrap();
        let url = format!("ws://{}/", proxy.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        for i in 1..=3 {
            ws.send(msg(i)).await.unwrap();
        }
        assert_eq!(ws.next().await.unwrap().unwrap(), msg(1));
        let r = ws.next().await;
        assert!(matches!(r, None | Some(Err(_))), "{r:?}");
        assert_eq!(proxy.counters().truncations, 1);
        let rec = proxy.connections();
        assert!(rec[0].truncated && !rec[0].cut, "{rec:?}");
        // What reached the client ends inside the second frame: 1000-byte payloads have 4-byte
        // headers, so the HTTP response plus 1004 + 4 + 500 bytes.
        let http = rec[0].bytes_to_client - (1004 + 4 + 500);
        assert!((100..1000).contains(&http), "{rec:?}");
        while let Some(r) = server_saw.recv().await {
            if r.is_err() {
                break;
            }
        }

        // The client's first message is cut in half: the server never gets a whole one.
        proxy.set_faults(Faults {
            truncate_frame: Some(Truncate {
                direction: Direction::ToTarget,
                after_frames: 0,
            }),
            ..Faults::default()
        });
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let _ = ws.send(msg(4)).await;
        let r = server_saw.recv().await.unwrap();
        assert!(r.is_err(), "the server got a whole message: {r:?}");
        let r = ws.next().await;
        assert!(matches!(r, None | Some(Err(_))), "{r:?}");
        assert_eq!(proxy.counters().truncations, 2);
        proxy.stop().await;
    }
}
