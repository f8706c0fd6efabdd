//! The metrics endpoint: a small HTTP/1.1 listener on an address the
//! application chooses, off until started, on threads of its own, never
//! on the request path.
//!
//! - `GET /metrics`: the Prometheus text exposition of the pool's stats.
//! - `GET /healthz`: 200 while the pool is healthy or degraded, 503 when it
//!   is unhealthy, with the health summary's reasons as the body.
//! - Anything else: 404 (405 for a method other than GET or HEAD).
//!
//! Bounded under bad clients: one accept thread hands connections to two
//! handler threads through a queue of [`QUEUED_CONNECTIONS`]; when the queue
//! is full a new connection is closed at once. Each connection has
//! [`CLIENT_TIMEOUT`] from the moment it was accepted to send its request
//! head (at most [`MAX_HEAD_BYTES`]), and as long again to take the answer:
//! a slow or half-open client holds one handler for at most that long, and
//! a flood of idle connections expires together instead of one after the
//! other. Request heads are parsed by `httparse`.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, TrySendError};

use crate::core::{Health, PoolStats};

/// Connections waiting for a handler; more are closed at once.
pub const QUEUED_CONNECTIONS: usize = 64;
/// How long a client has to send its request and read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest request head read.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Threads answering requests.
const HANDLERS: usize = 2;

/// Where the endpoint reads the stats from: a [`Pool`](crate::Pool), or
/// anything else that has them.
pub trait StatsSource: Send + Sync + 'static {
    /// A fresh snapshot.
    fn stats(&self) -> PoolStats;
}

impl<F: Fn() -> PoolStats + Send + Sync + 'static> StatsSource for F {
    fn stats(&self) -> PoolStats {
        self()
    }
}

/// A running metrics endpoint. Dropping it (or [`MetricsServer::stop`])
/// stops the listener and joins its threads.
///
/// ```no_run
/// use std::sync::Arc;
/// use accelpool::{GroupConfig, Pool, SessionError, WorkerInfo};
/// use accelpool::metrics::server::MetricsServer;
/// let pool = Arc::new(Pool::<u32, u32>::builder()
///     .group(GroupConfig::new("cpu").workers(1),
///            |_: &WorkerInfo| Ok(|x: &u32| -> Result<u32, SessionError> { Ok(*x) }))
///     .build()?);
/// let source = Arc::clone(&pool);
/// let server = MetricsServer::start("127.0.0.1:9464", move || source.stats())?;
/// println!("metrics on http://{}/metrics", server.local_addr());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free port; see
    /// [`MetricsServer::local_addr`]) and serves `source`'s stats.
    pub fn start(addr: impl ToSocketAddrs, source: impl StatsSource) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let source: Arc<dyn StatsSource> = Arc::new(source);
        let (tx, rx) = bounded::<(TcpStream, Instant)>(QUEUED_CONNECTIONS);
        let mut threads = Vec::with_capacity(HANDLERS + 1);
        for i in 0..HANDLERS {
            let (rx, source) = (rx.clone(), Arc::clone(&source));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("accelpool-metrics-{i}"))
                    .spawn(move || handle_connections(&rx, &*source))?,
            );
        }
        let accept_stop = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name("accelpool-metrics-accept".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if accept_stop.load(Ordering::Acquire) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        match tx.try_send((conn, Instant::now())) {
                            Ok(()) => {}
                            // Too many waiting: shed this one (it is closed).
                            Err(TrySendError::Full(_)) => {}
                            Err(TrySendError::Disconnected(_)) => break,
                        }
                    }
                    // Dropping `tx` lets the handlers finish.
                })?,
        );
        Ok(Self {
            addr,
            stop,
            threads,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and joins the threads (each within
    /// [`CLIENT_TIMEOUT`] of the request it is answering).
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if self.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the accept loop with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, CLIENT_TIMEOUT);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut();
    }
}

fn handle_connections(rx: &Receiver<(TcpStream, Instant)>, source: &dyn StatsSource) {
    for (mut conn, accepted) in rx {
        let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
        let response = match read_head(&mut conn, accepted + CLIENT_TIMEOUT) {
            Some(head) => answer(&head, source),
            None => continue,
        };
        let _ = conn.write_all(&response);
    }
}

/// The method and path of a request, once its head has arrived whole.
struct Head {
    method: String,
    path: String,
}

/// Reads a request head within the limits, by `deadline`; `None` for a
/// client that sent nothing usable (too late, closed, malformed, too large).
fn read_head(conn: &mut TcpStream, deadline: Instant) -> Option<Head> {
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut len = 0;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        // A zero timeout means none to the socket: give up instead.
        if left.is_zero() {
            return None;
        }
        conn.set_read_timeout(Some(left)).ok()?;
        let n = conn.read(&mut buf[len..]).ok()?;
        if n == 0 {
            return None;
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                return Some(Head {
                    method: req.method?.to_owned(),
                    path: req.path?.to_owned(),
                })
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => return None,
        }
    }
}

fn answer(head: &Head, source: &dyn StatsSource) -> Vec<u8> {
    let path = head.path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (head.method.as_str(), path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            super::CONTENT_TYPE,
            super::render(&source.stats()),
        ),
        ("GET" | "HEAD", "/healthz") => {
            let h = source.stats().health;
            let status = match h.status {
                Health::Unhealthy => "503 Service Unavailable",
                Health::Healthy | Health::Degraded => "200 OK",
            };
            let mut body = format!("{:?}\n", h.status).to_lowercase();
            for r in &h.reasons {
                body.push_str(r);
                body.push('\n');
            }
            (status, "text/plain; charset=utf-8", body)
        }
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the endpoint serves /metrics and /healthz\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD are served\n".to_owned(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if head.method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
