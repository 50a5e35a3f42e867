//! The HTTP edge of `serve`: hyper's HTTP/1 server in front of the axum router, with a
//! header-read timeout, an idle timeout and a cap on open connections.
//!
//! When the cap is reached, a new connection is still let in: the connection that has been idle
//! longest (no request in flight, nothing received for the longest time) is closed with hyper's
//! graceful shutdown to make room. Only when every connection has a request in flight is the new
//! one refused, with a quick `503` JSON answer. So idle or slow-header sockets, however many,
//! cannot keep `/health` and the webhook routes from answering; only requests in flight can hold a
//! slot, and the body-read timeout of [`crate::http`] bounds how long.

use crate::http::BodyLeftUnread;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// A request with more headers than this is refused by hyper itself (431, empty body). Between
/// [`crate::http::MAX_HEADERS`] and this, the router answers a JSON 431 instead.
const PROTOCOL_MAX_HEADERS: usize = 256;
/// The request line and headers together, in bytes: above this hyper answers 431 itself.
const PROTOCOL_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Connections that get the quick 503 when every slot has a request in flight; beyond these a
/// new connection is closed at once.
const REFUSAL_SLOTS: usize = 64;
/// How long a refused connection may take to send its request head before it is closed.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. EMFILE), so the loop neither spins nor dies.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Out of file descriptors, this many idle connections are closed at once to make room.
const EVICT_ON_EXHAUSTION: usize = 8;
/// A connection told to close may finish the request it is in; after this it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(15);
/// After an answer sent before the request body was read, how long the rest is read and dropped.
const LINGER: Duration = Duration::from_secs(2);
/// At shutdown, how long requests in flight get to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);
/// Shedding and accept failures are logged at most this often (with a count), not per socket.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// File descriptors kept out of the connection cap: the refusal slots, SQLite, the simulator,
/// the KlickTipp client, standard streams.
const RESERVED_FILES: u64 = REFUSAL_SLOTS as u64 + 64;
/// The cap never goes below this, whatever the open-file limit.
const MIN_CONNECTIONS: usize = 8;

/// `requested`, lowered when the process's open-file limit (`ulimit -n`) could not hold that many
/// connections besides [`RESERVED_FILES`]. Returns the cap and the limit when it lowered it.
pub fn cap_under_open_file_limit(requested: usize) -> (usize, Option<u64>) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let cap = cap_for(requested, limit);
    (cap, limit.filter(|_| cap < requested))
}

fn cap_for(requested: usize, open_file_limit: Option<u64>) -> usize {
    let Some(limit) = open_file_limit else { return requested };
    let room = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    requested.min(room.max(MIN_CONNECTIONS))
}

/// The limits of the HTTP server (README "Limits").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; at the cap the longest-idle one is closed for a new one.
    pub max_connections: usize,
    /// The request line and headers must arrive within this, counted from when the connection
    /// opened or its previous response was sent.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight that receives nothing for this long is closed.
    pub idle_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets requests
/// in flight finish (at most [`DRAIN_LIMIT`]) and closes every connection.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_headers(PROTOCOL_MAX_HEADERS)
        .max_header_size(PROTOCOL_MAX_HEADER_BYTES);
    let mut refusal_builder = builder.clone();
    refusal_builder.keep_alive(false).header_read_timeout(REFUSAL_HEADER_TIMEOUT);
    let server = Arc::new(Server {
        builder,
        refusal_builder,
        router,
        limits,
        registry: Registry::default(),
        refusal_slots: Arc::new(Semaphore::new(REFUSAL_SLOTS)),
        shed_logs: Default::default(),
        accept_log: RateLimitedLog::default(),
    });
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => server.admit(stream, peer, &mut tasks),
            Err(error) => server.accept_failed(&error).await,
        }
    }
    drop(listener);
    server.registry.close_all();
    let drained = tokio::time::timeout(DRAIN_LIMIT, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            seconds = DRAIN_LIMIT.as_secs(),
            "requests still in flight at shutdown were cut off"
        );
        tasks.shutdown().await;
    }
}

struct Server {
    builder: http1::Builder,
    refusal_builder: http1::Builder,
    router: Router,
    limits: Limits,
    registry: Registry,
    refusal_slots: Arc<Semaphore>,
    /// One per [`Shed`] reason, so a burst of one kind does not hide the other.
    shed_logs: [RateLimitedLog; 3],
    accept_log: RateLimitedLog,
}

impl Server {
    /// Serves a new connection, making room at the cap by closing the longest-idle one; refuses it
    /// with a 503 only when every connection has a request in flight.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: std::net::SocketAddr, tasks: &mut JoinSet<()>) {
        let cap = self.limits.max_connections;
        match self.registry.admit(cap) {
            Admission::Admitted { connection, evicted } => {
                if evicted {
                    self.log_shed(Shed::ClosedLongestIdle);
                }
                let server = Arc::clone(self);
                tasks.spawn(async move { server.serve_connection(stream, peer, connection).await });
            }
            Admission::Full => match Arc::clone(&self.refusal_slots).try_acquire_owned() {
                Ok(permit) => {
                    self.log_shed(Shed::RefusedAllBusy);
                    let builder = self.refusal_builder.clone();
                    tasks.spawn(async move {
                        let io = TokioIo::new(stream);
                        // The client may already be gone; nothing to do about that.
                        let _ = builder.serve_connection(io, service_fn(overloaded)).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    self.log_shed(Shed::DroppedAllBusy);
                    drop(stream);
                }
            },
        }
    }

    fn log_shed(&self, shed: Shed) {
        if let Some(count) = self.shed_logs[shed as usize].count() {
            tracing::warn!(
                reason = shed.reason(),
                shed = count,
                connections = self.registry.len(),
                max_connections = self.limits.max_connections,
                "connection cap reached: shedding connections"
            );
        }
    }

    /// A failed `accept` must neither end nor spin the loop. Out of file descriptors, the
    /// longest-idle connections are closed so the next accepts can succeed.
    async fn accept_failed(&self, error: &io::Error) {
        let exhausted = is_resource_exhaustion(error);
        let evicted =
            if exhausted { (0..EVICT_ON_EXHAUSTION).filter(|_| self.registry.evict_longest_idle()).count() } else { 0 };
        if let Some(failures) = self.accept_log.count() {
            tracing::warn!(
                %error,
                failures,
                connections = self.registry.len(),
                closed_longest_idle = evicted,
                "accepting a connection failed; retrying shortly"
            );
        }
        if exhausted || !is_per_connection(error) {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
    }

    async fn serve_connection(&self, stream: TcpStream, peer: std::net::SocketAddr, connection: Arc<Connection>) {
        let io = TokioIo::new(Tracked { stream, connection: Arc::clone(&connection) });
        let service = {
            let router = self.router.clone();
            let connection = Arc::clone(&connection);
            service_fn(move |request: Request<Incoming>| {
                let in_flight = InFlight::start(&connection);
                let router = router.clone();
                let connection = Arc::clone(&connection);
                // Boxed, so the connection is `Unpin` and can hand its socket back afterwards.
                let answer: BoxedAnswer = Box::pin(async move {
                    // The peer address, for per-client limits (the console's sign-in).
                    let mut request = request.map(Body::new);
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    let response = router.oneshot(request).await;
                    if let Ok(response) = &response
                        && response.extensions().get::<BodyLeftUnread>().is_some()
                    {
                        connection.linger.store(true, Ordering::Release);
                    }
                    drop(in_flight);
                    response
                });
                answer
            })
        };
        let mut served = self.builder.serve_connection(io, service);
        let idle_timeout = self.limits.idle_timeout;
        let mut closing: Option<Instant> = None;
        let finished = loop {
            let idle_check = connection.next_idle_check(idle_timeout);
            let give_up = closing.map_or_else(far_future, |since| since + CLOSE_GRACE);
            tokio::select! {
                result = std::future::poll_fn(|cx| served.poll_without_shutdown(cx)) => break Some(result),
                () = connection.close_requested.notified(), if closing.is_none() => {
                    Pin::new(&mut served).graceful_shutdown();
                    closing = Some(Instant::now());
                }
                () = tokio::time::sleep_until(idle_check), if closing.is_none() => {
                    if connection.is_idle_for(idle_timeout) {
                        Pin::new(&mut served).graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                }
                // Past the grace: dropped as it is.
                () = tokio::time::sleep_until(give_up), if closing.is_some() => break None,
            }
        };
        match finished {
            Some(Ok(())) if connection.linger.load(Ordering::Acquire) => {
                // On its way out: neither counted against the cap nor chosen to make room.
                connection.closing.store(true, Ordering::Release);
                linger(served.into_parts().io.into_inner().stream).await;
            }
            Some(Ok(())) | None => {}
            // Timeouts, resets and protocol errors hyper already answered: routine.
            Some(Err(error)) => tracing::debug!(%error, "connection ended with an error"),
        }
        self.registry.remove(connection.id);
    }
}

/// A response went out before the request body was read: read and discard what the client still
/// sends, until it closes (the answer says `connection: close`) or for a moment at most, so its
/// TCP stack delivers the answer instead of a reset (what nginx calls a lingering close).
async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let mut discard = vec![0_u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(read) = stream.read(&mut discard).await
            && read > 0
        {}
    })
    .await;
}

type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// How a connection was shed at the cap.
#[derive(Debug, Clone, Copy)]
enum Shed {
    /// The longest-idle connection was closed to let a new one in.
    ClosedLongestIdle = 0,
    /// Every connection had a request in flight: the new one got a 503.
    RefusedAllBusy = 1,
    /// ... and so many were being refused that the new one was closed at once.
    DroppedAllBusy = 2,
}

impl Shed {
    fn reason(self) -> &'static str {
        match self {
            Shed::ClosedLongestIdle => "closed_longest_idle",
            Shed::RefusedAllBusy => "refused_all_busy",
            Shed::DroppedAllBusy => "dropped_all_busy",
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM (same numbers on Linux and macOS): the process or the system
/// is out of something; retrying at once would fail again.
fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Errors about one connection that died in the backlog: accept the next one at once.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

/// The answer on a connection refused because every slot has a request in flight.
async fn overloaded(_request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let body = serde_json::json!({
        "error": "overloaded",
        "message": "The bridge is answering as many requests as it can right now; send the request again in a few seconds.",
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Connection bookkeeping

/// One open connection as the cap sees it.
struct Connection {
    id: u64,
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when a byte last arrived or a response was last produced.
    last_activity_ms: AtomicU64,
    /// An answer went out before the request body was read: linger before closing.
    linger: AtomicBool,
    /// Set once the connection has been told to close, so it is not counted or chosen again.
    closing: AtomicBool,
    close_requested: Notify,
}

impl Connection {
    fn new(id: u64, epoch: Instant) -> Self {
        let connection = Self {
            id,
            epoch,
            in_flight: AtomicUsize::new(0),
            last_activity_ms: AtomicU64::new(0),
            linger: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close_requested: Notify::new(),
        };
        connection.touch();
        connection
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn is_idle_for(&self, timeout: Duration) -> bool {
        self.is_idle() && self.last_activity().elapsed() >= timeout
    }

    /// When to look again whether the idle timeout has passed; never in the past, so a busy
    /// connection does not wake its task in a loop.
    fn next_idle_check(&self, timeout: Duration) -> Instant {
        let now = Instant::now();
        let due = self.last_activity() + timeout;
        if self.is_idle() && due > now { due } else { now + timeout }
    }

    /// Asks the connection's task for a graceful shutdown: an idle connection closes at once, one
    /// with a request in flight after its response. `false` if it was already asked.
    fn request_close(&self) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        // A stored permit: not lost when the task is not waiting yet.
        self.close_requested.notify_one();
        true
    }
}

/// Marks a request in flight for as long as it lives.
struct InFlight(Arc<Connection>);

impl InFlight {
    fn start(connection: &Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(connection))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Admission {
    Admitted {
        connection: Arc<Connection>,
        evicted: bool,
    },
    /// At the cap and every connection has a request in flight.
    Full,
}

/// The open connections.
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { epoch: Instant::now(), next_id: AtomicU64::new(0), connections: Mutex::new(HashMap::new()) }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn admit(&self, cap: usize) -> Admission {
        let mut connections = self.lock();
        let mut evicted = false;
        // Connections already told to close are on their way out and do not count.
        if connections.len() >= cap {
            let open = connections.values().filter(|connection| !connection.closing.load(Ordering::Acquire)).count();
            if open >= cap {
                match longest_idle(&connections) {
                    Some(connection) => evicted = connection.request_close(),
                    None => return Admission::Full,
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new(id, self.epoch));
        connections.insert(id, Arc::clone(&connection));
        Admission::Admitted { connection, evicted }
    }

    fn evict_longest_idle(&self) -> bool {
        longest_idle(&self.lock()).is_some_and(|connection| connection.request_close())
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn close_all(&self) {
        for connection in self.lock().values() {
            connection.request_close();
        }
    }
}

/// The connection without a request in flight that has been quiet longest.
fn longest_idle(connections: &HashMap<u64, Arc<Connection>>) -> Option<&Arc<Connection>> {
    connections
        .values()
        .filter(|connection| connection.is_idle() && !connection.closing.load(Ordering::Acquire))
        .min_by_key(|connection| (connection.last_activity_ms.load(Ordering::Relaxed), connection.id))
}

/// The TCP stream, noting every received byte as activity (a client sending its request slowly
/// is not idle; hyper's header-read timeout bounds it instead).
struct Tracked {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.connection.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Counts occurrences and lets one log line through per [`LOG_INTERVAL`], carrying the count since
/// the previous line: a flood of sockets gives a few lines, not thousands.
#[derive(Default)]
struct RateLimitedLog {
    state: Mutex<(u64, Option<Instant>)>,
}

impl RateLimitedLog {
    /// `Some(count since the last line)` when a line is due now.
    fn count(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (pending, last) = &mut *state;
        *pending += 1;
        let due = last.is_none_or(|at| at.elapsed() >= LOG_INTERVAL);
        if !due {
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let registry = Registry::default();
        let Admission::Admitted { connection: first, .. } = registry.admit(2) else { panic!("room for one") };
        tokio::time::advance(Duration::from_millis(10)).await;
        let Admission::Admitted { connection: second, .. } = registry.admit(2) else { panic!("room for two") };
        tokio::time::advance(Duration::from_millis(10)).await;
        first.touch();

        let Admission::Admitted { evicted, .. } = registry.admit(2) else { panic!("an idle one makes room") };
        assert!(evicted);
        assert!(second.closing.load(Ordering::Acquire), "the longest-idle connection is asked to close");
        assert!(!first.closing.load(Ordering::Acquire), "the recently active one stays");
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
        let registry = Registry::default();
        let Admission::Admitted { connection, .. } = registry.admit(1) else { panic!("room for one") };
        let request = InFlight::start(&connection);
        assert!(matches!(registry.admit(1), Admission::Full));
        drop(request);
        assert!(matches!(registry.admit(1), Admission::Admitted { evicted: true, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_the_last_byte_or_response() {
        let registry = Registry::default();
        let Admission::Admitted { connection, .. } = registry.admit(4) else { panic!("room") };
        let timeout = Duration::from_secs(5);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!connection.is_idle_for(timeout));
        let request = InFlight::start(&connection);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!connection.is_idle_for(timeout), "a request in flight is not idle");
        assert!(connection.next_idle_check(timeout) > Instant::now());
        drop(request);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(connection.is_idle_for(timeout));
    }

    #[test]
    fn the_cap_stays_under_the_open_file_limit() {
        assert_eq!(cap_for(512, Some(1024)), 512);
        assert_eq!(cap_for(512, Some(256)), 256 - 128);
        assert_eq!(cap_for(512, Some(100)), MIN_CONNECTIONS);
        assert_eq!(cap_for(512, None), 512, "no limit");
        assert_eq!(cap_for(16, Some(1024)), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_logged_once_per_interval_with_its_count() {
        let log = RateLimitedLog::default();
        assert_eq!(log.count(), Some(1));
        assert_eq!(log.count(), None);
        assert_eq!(log.count(), None);
        tokio::time::advance(LOG_INTERVAL).await;
        assert_eq!(log.count(), Some(3));
    }
}
