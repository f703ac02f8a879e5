//! How much one client may ask of this server process: the rate of protocol messages per
//! connection, the rate of messages and HTTP requests per token (JWT `jti`, summed over all its
//! connections and requests), and the WebSocket connections open at once per token. The numbers
//! are [`Limits`]; docs/security.md#limits says what happens past each one.
//!
//! Rates are token buckets (GCRA, from `governor`): a sustained rate per second and a burst
//! above it. The clock is a type parameter, so the tests drive it by hand
//! ([`governor::clock::FakeRelativeClock`]); the server uses the monotonic clock. This module
//! decides only; the socket loop (`connection.rs`) and the HTTP layer (`http.rs`) act on the
//! verdict, and only `http.rs` turns one into a status code.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::Limits;

type PorToken<C> =
    RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type PorConexion<C> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Every this many checks, the buckets of tokens that have refilled completely are dropped (a
/// full bucket is the same as none), so the map holds only tokens active in the last seconds.
const BARRER_CADA: u64 = 4096;

/// A sustained rate with a burst; `None` when the rate is 0 (no limit). A burst of 0 means the
/// rate itself.
fn cuota(por_segundo: u32, rafaga: u32) -> Option<Quota> {
    let s = NonZeroU32::new(por_segundo)?;
    Some(Quota::per_second(s).allow_burst(NonZeroU32::new(rafaga).unwrap_or(s)))
}

/// Why a message, a request or a connection was refused. `Display` is the reason the protocol's
/// `error` message carries (English, like the protocol's other errors); `http.rs` words its own
/// Spanish answer from the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceso {
    /// This connection sent messages faster than its rate.
    Conexion { por_segundo: u32, rafaga: u32 },
    /// This token made messages and requests faster than its rate, over all its connections.
    Token {
        por_segundo: u32,
        rafaga: u32,
        /// How long until the token may make one more.
        espera: Duration,
    },
    /// This token already has `max` WebSocket connections open.
    Conexiones { max: usize },
}

impl std::fmt::Display for Exceso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceso::Conexion {
                por_segundo,
                rafaga,
            } => write!(
                f,
                "rate limit exceeded: more than {rafaga} messages at once or {por_segundo} per \
                 second on this connection (limits.message_burst, limits.messages_per_sec)"
            ),
            Exceso::Token {
                por_segundo,
                rafaga,
                ..
            } => write!(
                f,
                "rate limit exceeded: more than {rafaga} messages and requests at once or \
                 {por_segundo} per second with this token (limits.token_burst, \
                 limits.token_requests_per_sec)"
            ),
            Exceso::Conexiones { max } => write!(
                f,
                "this token already has {max} connections open (limits.max_connections_per_token)"
            ),
        }
    }
}

/// The limits shared by every connection and request of one server process.
pub struct Limitador<C: Clock + Clone = DefaultClock> {
    reloj: C,
    /// Per connection: the quota each new [`Conexion`] starts with.
    por_conexion: Option<Quota>,
    conexion_numeros: (u32, u32),
    por_token: Option<PorToken<C>>,
    token_numeros: (u32, u32),
    max_conexiones: usize,
    /// Open WebSocket connections per token; a token with none has no entry.
    abiertas: Mutex<HashMap<String, usize>>,
    consultas: AtomicU64,
}

impl Limitador<DefaultClock> {
    pub fn new(l: &Limits) -> Limitador<DefaultClock> {
        Limitador::con_reloj(l, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limitador<C> {
    /// The limits of `l`, timed by `reloj`.
    pub fn con_reloj(l: &Limits, reloj: C) -> Limitador<C> {
        Limitador {
            por_conexion: cuota(l.messages_per_sec, l.message_burst),
            conexion_numeros: (l.messages_per_sec, l.message_burst.max(l.messages_per_sec)),
            por_token: cuota(l.token_requests_per_sec, l.token_burst)
                .map(|q| RateLimiter::hashmap_with_clock(q, reloj.clone())),
            token_numeros: (
                l.token_requests_per_sec,
                l.token_burst.max(l.token_requests_per_sec),
            ),
            max_conexiones: l.max_connections_per_token,
            abiertas: Mutex::new(HashMap::new()),
            consultas: AtomicU64::new(0),
            reloj,
        }
    }

    /// One HTTP request, or one message on a connection, of the token `jti`.
    pub fn solicitud(&self, jti: &str) -> Result<(), Exceso> {
        let Some(rl) = &self.por_token else {
            return Ok(());
        };
        if self.consultas.fetch_add(1, Ordering::Relaxed) % BARRER_CADA == BARRER_CADA - 1 {
            rl.retain_recent();
            rl.shrink_to_fit();
        }
        rl.check_key(&jti.to_string()).map_err(|no| Exceso::Token {
            por_segundo: self.token_numeros.0,
            rafaga: self.token_numeros.1,
            espera: no.wait_time_from(self.reloj.now()),
        })
    }

    /// A new WebSocket connection of the token `jti`, counted until the returned value is
    /// dropped; refused if the token has its maximum open already.
    pub fn abrir(self: &Arc<Self>, jti: &str) -> Result<Conexion<C>, Exceso> {
        let mut abiertas = self.abiertas.lock().expect("limits lock");
        let n = abiertas.entry(jti.to_string()).or_insert(0);
        if self.max_conexiones > 0 && *n >= self.max_conexiones {
            if *n == 0 {
                abiertas.remove(jti);
            }
            return Err(Exceso::Conexiones {
                max: self.max_conexiones,
            });
        }
        *n += 1;
        Ok(Conexion {
            limitador: self.clone(),
            jti: jti.to_string(),
            ritmo: self
                .por_conexion
                .map(|q| RateLimiter::direct_with_clock(q, self.reloj.clone())),
        })
    }

    /// WebSocket connections of `jti` open now.
    pub fn abiertas(&self, jti: &str) -> usize {
        let abiertas = self.abiertas.lock().expect("limits lock");
        abiertas.get(jti).copied().unwrap_or(0)
    }

    /// Tokens with a bucket in memory (those active lately) and tokens with connections open.
    pub fn en_memoria(&self) -> (usize, usize) {
        let buckets = self.por_token.as_ref().map_or(0, |rl| rl.len());
        (buckets, self.abiertas.lock().expect("limits lock").len())
    }
}

/// One open WebSocket connection: its own message rate, and its place in its token's count.
pub struct Conexion<C: Clock + Clone = DefaultClock> {
    limitador: Arc<Limitador<C>>,
    jti: String,
    ritmo: Option<PorConexion<C>>,
}

impl<C: Clock + Clone> Conexion<C> {
    /// One message received on this connection: within the connection's rate, then within its
    /// token's.
    pub fn mensaje(&self) -> Result<(), Exceso> {
        if let Some(rl) = &self.ritmo
            && rl.check().is_err()
        {
            let (por_segundo, rafaga) = self.limitador.conexion_numeros;
            return Err(Exceso::Conexion {
                por_segundo,
                rafaga,
            });
        }
        self.limitador.solicitud(&self.jti)
    }
}

impl<C: Clock + Clone> Drop for Conexion<C> {
    fn drop(&mut self) {
        let mut abiertas = self.limitador.abiertas.lock().expect("limits lock");
        if let Some(n) = abiertas.get_mut(&self.jti) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                abiertas.remove(&self.jti);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limites(
        messages_per_sec: u32,
        message_burst: u32,
        token_requests_per_sec: u32,
        token_burst: u32,
        max_connections_per_token: usize,
    ) -> Limits {
        Limits {
            messages_per_sec,
            message_burst,
            token_requests_per_sec,
            token_burst,
            max_connections_per_token,
            ..Limits::default()
        }
    }

    fn limitador(l: &Limits) -> (Arc<Limitador<FakeRelativeClock>>, FakeRelativeClock) {
        let reloj = FakeRelativeClock::default();
        (Arc::new(Limitador::con_reloj(l, reloj.clone())), reloj)
    }

    /// How many messages in a row the connection accepts before the first refusal.
    fn seguidos(c: &Conexion<FakeRelativeClock>) -> usize {
        (0..100_000).take_while(|_| c.mensaje().is_ok()).count()
    }

    #[test]
    fn a_connection_gets_its_burst_then_its_rate() {
        let (l, reloj) = limitador(&limites(10, 50, 0, 0, 0));
        let c = l.abrir("t").expect("open");
        assert_eq!(seguidos(&c), 50, "the burst, at one instant");
        assert_eq!(
            c.mensaje(),
            Err(Exceso::Conexion {
                por_segundo: 10,
                rafaga: 50
            })
        );
        // 10 per second: one every 100 ms.
        reloj.advance(Duration::from_millis(99));
        assert!(c.mensaje().is_err(), "not yet");
        reloj.advance(Duration::from_millis(1));
        assert!(c.mensaje().is_ok());
        assert!(c.mensaje().is_err());
        reloj.advance(Duration::from_secs(1));
        assert_eq!(seguidos(&c), 10, "a second later, ten more");
        // Sustained at exactly the rate: never refused.
        for _ in 0..1000 {
            reloj.advance(Duration::from_millis(100));
            assert!(c.mensaje().is_ok());
        }
        // Idle long enough, the whole burst is back (and no more).
        reloj.advance(Duration::from_secs(3600));
        assert_eq!(seguidos(&c), 50);
    }

    #[test]
    fn each_connection_has_its_own_bucket() {
        let (l, _) = limitador(&limites(1, 5, 0, 0, 0));
        let a = l.abrir("t").expect("open");
        let b = l.abrir("t").expect("open");
        assert_eq!(seguidos(&a), 5);
        assert_eq!(seguidos(&b), 5, "a's flood costs b nothing");
        drop(a);
        let c = l.abrir("t").expect("open");
        assert_eq!(seguidos(&c), 5, "a new connection starts full");
    }

    #[test]
    fn a_token_is_limited_across_its_connections_and_requests() {
        let (l, reloj) = limitador(&limites(100, 100, 10, 30, 0));
        let a = l.abrir("t").expect("open");
        let b = l.abrir("t").expect("open");
        for _ in 0..10 {
            a.mensaje().expect("within the token's burst");
            b.mensaje().expect("within the token's burst");
            l.solicitud("t").expect("within the token's burst");
        }
        let Err(Exceso::Token {
            por_segundo: 10,
            rafaga: 30,
            espera,
        }) = a.mensaje()
        else {
            panic!("the 31st of the token is refused, whichever connection sends it");
        };
        assert_eq!(espera, Duration::from_millis(100), "one more in 1/10 s");
        assert!(b.mensaje().is_err());
        assert!(l.solicitud("t").is_err(), "HTTP requests share the bucket");
        // Another token is not affected.
        let otro = l.abrir("u").expect("open");
        assert_eq!(seguidos(&otro), 30);
        // Reconnecting does not refill the token's bucket.
        drop((a, b));
        let c = l.abrir("t").expect("open");
        assert!(c.mensaje().is_err());
        reloj.advance(Duration::from_millis(100));
        assert!(c.mensaje().is_ok());
        assert!(l.solicitud("t").is_err());
    }

    #[test]
    fn connections_per_token_are_counted_until_dropped() {
        let (l, _) = limitador(&limites(0, 0, 0, 0, 2));
        let a = l.abrir("t").expect("first");
        let b = l.abrir("t").expect("second");
        assert_eq!(l.abiertas("t"), 2);
        assert_eq!(
            l.abrir("t").err(),
            Some(Exceso::Conexiones { max: 2 }),
            "a third is refused"
        );
        assert!(l.abrir("u").is_ok(), "another token is not affected");
        drop(a);
        let c = l.abrir("t").expect("a closed connection frees its place");
        drop((b, c));
        assert_eq!(l.abiertas("t"), 0);
        assert_eq!(
            l.en_memoria().1,
            0,
            "no entry left for a token with none open"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let (l, _) = limitador(&limites(0, 0, 0, 0, 0));
        let conns: Vec<_> = (0..1000).map(|_| l.abrir("t").expect("open")).collect();
        assert_eq!(seguidos(&conns[0]), 100_000);
        assert!((0..10_000).all(|_| l.solicitud("t").is_ok()));
        assert_eq!(l.en_memoria().0, 0, "no buckets kept without a token rate");
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let (l, reloj) = limitador(&limites(0, 0, 10, 10, 0));
        for i in 0..100 {
            l.solicitud(&format!("t{i}")).expect("first request");
        }
        assert_eq!(l.en_memoria().0, 100);
        reloj.advance(Duration::from_secs(2));
        for _ in 0..BARRER_CADA {
            let _ = l.solicitud("activo");
        }
        assert_eq!(
            l.en_memoria().0,
            1,
            "only the token still limited is kept after a sweep"
        );
    }

    #[test]
    fn refusals_name_the_setting() {
        let e = Exceso::Conexion {
            por_segundo: 50,
            rafaga: 500,
        }
        .to_string();
        assert!(
            e.contains("limits.messages_per_sec") && e.contains("500"),
            "{e}"
        );
        assert!(
            Exceso::Conexiones { max: 16 }
                .to_string()
                .contains("limits.max_connections_per_token")
        );
    }
}
