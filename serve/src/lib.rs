//! `kokoro-serve`: the HTTP/1 connection loop both servers (the native backend and
//! the edge host) run, so a slow or silent client costs each of them the same
//! bounded amount:
//!
//! - **request head**: [`Limits::header`] from the moment a connection is open or
//!   idle (after the previous response) to the end of the next request's head;
//!   hyper's own timer, armed here with a Tokio timer (without one hyper drops it).
//!   A header sent a byte at a time, or a kept-alive connection that sends nothing,
//!   is closed when it runs out.
//! - **writes**: [`Limits::write`] is how long one write may make no progress. A
//!   client that stops reading (its receive window full) fails the connection at
//!   that deadline; the response body is dropped, so the request's pipeline ends
//!   and its admission permit is released. Counted in [`Stats::slow_clients`].
//! - **send buffer**: [`Limits::send_buffer`] per connection, so that deadline
//!   starts after seconds of unread audio rather than megabytes.
//! - **connections**: at most [`Limits::max_connections`] open; one more is accepted
//!   and closed at once (counted), so the kernel's backlog never fills.
//! - **accept errors** (out of descriptors, a reset handshake) are logged and the
//!   loop goes on after a short pause.
//! - **upgrades**: connections are served with hyper's upgrades, so a WebSocket
//!   handler takes the connection over (the write deadline stays on it; it no
//!   longer counts as an open connection, so the handler bounds its own sessions).
//!   At shutdown each connection finishes its request in flight, then closes.
//!
//! The request body's deadline ([`Limits::body`]) is the servers' own: the backend
//! times its body read (408), the edge host reads the body before the component
//! sees it.

use hyper::body::{Body, Incoming};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A tower service (an axum router) as the hyper service [`serve`] takes.
pub use hyper_util::service::TowerToHyperService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The time-outs and the connection cap of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To receive a request head, counted from connection open or idle.
    pub header: Duration,
    /// To receive a whole request body (enforced by the server's body reader).
    pub body: Duration,
    /// Longest a write may make no progress (a client that stopped reading).
    pub write: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// The kernel's send buffer per connection, bytes. Linux grows it to 4 MiB by
    /// default, which a client that stops reading fills (minutes of compressed
    /// audio, synthesized for nobody) before any write stalls; 256 KiB is still
    /// 5 s of 16-bit PCM in flight, plenty for audio at any distance.
    pub send_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            write: Duration::from_secs(30),
            max_connections: 256,
            send_buffer: 256 << 10,
        }
    }
}

/// The connection flags both servers take (flattened into their own).
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// Seconds to receive a request head, counted from connection open or from the
    /// end of the previous response (so it also closes idle kept-alive connections).
    #[arg(long, env = "KOKORO_HEADER_TIMEOUT_SECS", default_value_t = 10.0)]
    pub header_timeout_secs: f64,
    /// Seconds to receive a whole request body (then 408).
    #[arg(long, env = "KOKORO_BODY_TIMEOUT_SECS", default_value_t = 30.0)]
    pub body_timeout_secs: f64,
    /// Seconds a response write may make no progress (a client that stopped
    /// reading) before the connection is closed and its work stopped.
    #[arg(long, env = "KOKORO_WRITE_TIMEOUT_SECS", default_value_t = 30.0)]
    pub write_timeout_secs: f64,
    /// Open connections at most; more are closed at accept.
    #[arg(long, env = "KOKORO_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,
}

impl Flags {
    /// The limits, each time-out checked to be in [0.05, 3600] s.
    pub fn limits(&self) -> Result<Limits, String> {
        let secs = |name: &str, v: f64| {
            if (0.05..=3600.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!("--{name} must be between 0.05 and 3600 seconds"))
            }
        };
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        Ok(Limits {
            header: secs("header-timeout-secs", self.header_timeout_secs)?,
            body: secs("body-timeout-secs", self.body_timeout_secs)?,
            write: secs("write-timeout-secs", self.write_timeout_secs)?,
            max_connections: self.max_connections,
            ..Limits::default()
        })
    }
}

/// What the loop counts, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections closed at accept because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections failed because a write made no progress for `Limits::write`.
    pub slow_clients: AtomicU64,
    /// Accept calls that failed.
    pub accept_errors: AtomicU64,
}

/// Serve HTTP/1 on `listener` with `service` (cloned per connection) until
/// `shutdown` completes; then stop accepting and wait for open connections to
/// finish their current request.
pub async fn serve<S, B>(
    listener: TcpListener,
    limits: Limits,
    stats: Arc<Stats>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Shutdown: every connection task holds a receiver; `closed` resolves when the
    // last one has finished. Connections are served with upgrades (WebSockets), so
    // hyper-util's `GracefulShutdown`, which has no impl for them, is not used.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "accept failed; going on");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if stats.open.load(Ordering::Relaxed) >= limits.max_connections {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("connection refused: max_connections open");
            drop(stream);
            continue;
        }
        stats.open.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(limits.send_buffer) {
            tracing::debug!(error = %e, "cannot set the send buffer");
        }
        let io = Deadline::new(stream, limits.write, stats.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header)
            .keep_alive(true);
        let conn = builder
            .serve_connection(io, service.clone())
            .with_upgrades();
        let stats = stats.clone();
        let mut stopping = stopped.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let stop = async {
                while !*stopping.borrow_and_update() {
                    if stopping.changed().await.is_err() {
                        break;
                    }
                }
            };
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = ?e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(stopping);
        });
    }
    drop(listener);
    drop(stopped);
    let _ = stop.send(true);
    stop.closed().await;
}

/// A TCP stream whose writes fail after making no progress for a while.
pub struct Deadline {
    io: TokioIo<TcpStream>,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    stats: Arc<Stats>,
}

impl Deadline {
    pub fn new(io: TcpStream, limit: Duration, stats: Arc<Stats>) -> Self {
        Self {
            io: TokioIo::new(io),
            limit,
            stalled: None,
            stats,
        }
    }

    /// After a `Pending` write: arm the deadline, or fail once it has passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(sleep.as_mut().poll(cx));
        self.stats.slow_clients.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            limit_s = limit.as_secs_f64(),
            "client stopped reading; closing"
        );
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "write made no progress",
        ))
    }
}

impl Read for Deadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Deadline {
    /// A write step's result: progress disarms the deadline, `Pending` arms it.
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.check(cx).map(Err),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl Write for Deadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose one route answers `size` bytes.
    async fn start(limits: Limits, size: usize) -> (std::net::SocketAddr, Arc<Stats>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let svc = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(http_body(size)))
        });
        tokio::spawn(serve(
            listener,
            limits,
            stats.clone(),
            svc,
            std::future::pending(),
        ));
        (addr, stats)
    }

    fn http_body(size: usize) -> String {
        "x".repeat(size)
    }

    fn limits() -> Limits {
        Limits {
            header: Duration::from_millis(300),
            body: Duration::from_millis(300),
            write: Duration::from_millis(300),
            max_connections: 2,
            send_buffer: 64 << 10,
        }
    }

    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 4096];
        let t = tokio::time::Instant::now();
        loop {
            match tokio::time::timeout(within, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed() < within,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    #[test]
    fn flags_are_checked() {
        let f = |h, b, w, n| {
            Flags {
                header_timeout_secs: h,
                body_timeout_secs: b,
                write_timeout_secs: w,
                max_connections: n,
            }
            .limits()
        };
        let l = f(1.5, 2.0, 3.0, 9).unwrap();
        assert_eq!(
            (l.header, l.max_connections),
            (Duration::from_millis(1500), 9)
        );
        assert!(f(0.0, 2.0, 3.0, 9).unwrap_err().contains("header"));
        assert!(f(1.0, 2.0, 1e9, 9).unwrap_err().contains("write"));
        assert!(f(1.0, 2.0, 3.0, 0).is_err());
    }

    #[tokio::test]
    async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
        let (addr, _) = start(limits(), 10).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = b"GET / HTTP/1.1\r\nhost: x\r\n";
        let t = tokio::time::Instant::now();
        let mut cut = false;
        for b in head.iter().cycle().take(200) {
            if s.write_all(&[*b]).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            cut || closed_within(&mut s, Duration::from_secs(2)).await,
            "still open"
        );
        assert!(t.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_a_quick_one_served() {
        let (addr, _) = start(limits(), 10).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(2)).await);
        let mut ok = TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        ok.read_to_end(&mut out).await.unwrap();
        assert!(out.starts_with(b"HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_at_the_write_deadline() {
        let (addr, stats) = start(limits(), 64 << 20).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(stats.slow_clients.load(Ordering::Relaxed), 1);
        assert_eq!(stats.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        let (addr, stats) = start(
            Limits {
                header: Duration::from_secs(5),
                ..limits()
            },
            10,
        )
        .await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut c, Duration::from_secs(1)).await);
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
    }
}
