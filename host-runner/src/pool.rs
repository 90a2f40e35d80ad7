//! Keep-alive connections for guests' outgoing HTTP, reused across requests
//! and instances: one pool per server, keyed by origin (scheme, host as the
//! guest wrote it, port) and serving thread, bounded per origin and in
//! total, each idle connection closed after `--outbound-idle-timeout`.
//!
//! A connection is opened for one origin and only ever carries requests to
//! that exact origin, and [`crate::outbound`] decides whether a request may
//! leave before it asks the pool for anything: so a connection opened for an
//! allowed destination is never used for a denied one. The guest's timeouts
//! mean what they mean without the pool: the connect timeout bounds opening
//! a new connection (a reused one is already open), the first-byte and
//! between-bytes timeouts bound every request. A connection goes back to the
//! pool only once its response was read to the end and its request written
//! whole; any other end (a timeout, a dropped body, an error) closes it.
//!
//! A request is retried on another connection only when hyper hands it back
//! unwritten (the pooled connection had closed before the request went out);
//! one that may have reached the backend is never sent twice.
//!
//! This module does not decide who may connect where ([`crate::outbound`]),
//! does not touch header fields (`hop_by_hop`) and pools plain HTTP only:
//! `https` requests go through `wasmtime-wasi-http`'s own sender, a new
//! connection each, as before.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::uri::Scheme;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::watched::{Watch, Watched};

/// Idle connections kept for one origin (on one serving thread): beyond
/// it, a connection whose request is done is closed instead of kept. A
/// backend behind a few hundred concurrent calls needs as many; keeping
/// fewer makes the pool open and close connections under that load.
pub(crate) const MAX_IDLE_PER_ORIGIN: usize = 256;
/// Idle connections kept for all origins together.
pub(crate) const MAX_IDLE_TOTAL: usize = 1024;
/// What a guest gets when it sets no timeout, as in `wasmtime-wasi-http`'s
/// own sender.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What `send` resolves to: the response and the future that reports the
/// request's own fate (its body written, or why not), as `wasi:http` hooks
/// return them.
pub(crate) type Sent = (
    Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// The server's outgoing connections; shared by every instance.
pub(crate) struct Pool {
    idle: Mutex<Idle>,
    /// 0: every connection is closed after its request (pooling off, for
    /// comparison), but still opened and counted here.
    idle_timeout: Duration,
    /// Connections opened, ever (`reprise_outbound_connections_opened_total`).
    opened: Arc<AtomicU64>,
}

#[derive(Default)]
struct Idle {
    by_origin: HashMap<Origin, Vec<Connection>>,
    total: usize,
    /// Whether a task is closing expired connections (there is one while
    /// any connection is idle).
    reaper: bool,
}

/// Where a connection goes: scheme, host as written (lower-cased) and port;
/// and the thread that drives it.
///
/// The thread is part of the key because a connection's I/O runs as a task
/// on the serving thread that opened it: reused from that thread only, its
/// response is read and it is back in the pool before that thread takes its
/// next request, and a thread busy in guest code delays only its own calls.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
    thread: std::thread::ThreadId,
}

/// One open connection, idle or carrying a request.
struct Connection {
    sender: SendRequest<WasiBody>,
    /// How the task driving the connection's I/O ended.
    ended: oneshot::Receiver<Result<(), hyper::Error>>,
    /// Closes the connection (ends that task).
    driver: AbortHandle,
    idle_since: Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Sends an allowed `request` through `pool` if there is one and the
/// request is plain HTTP, else through `wasmtime-wasi-http`'s own sender (a
/// new connection each time).
pub(crate) async fn send(
    pool: Option<Arc<Pool>>,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    match pool {
        Some(pool) if request.uri().scheme() == Some(&Scheme::HTTP) => {
            pool.send(request, options).await
        }
        _ => {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io)))
        }
    }
}

impl Pool {
    /// A pool that keeps idle connections `idle_timeout` (0: none) and
    /// counts the connections it opens in `opened`.
    pub(crate) fn new(idle_timeout: Duration, opened: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::default(),
            idle_timeout,
            opened,
        })
    }

    /// Sends `request` (plain HTTP, already allowed) on an idle connection
    /// to its origin, or a new one, with the guest's `options`.
    async fn send(
        self: Arc<Self>,
        mut request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, Error> {
        let origin = Origin::of(request.uri()).ok_or(Error::HttpRequestUriInvalid)?;
        let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
            options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
        };
        let connect_timeout = timeout(|o| o.connect_timeout);
        let first_byte_timeout = timeout(|o| o.first_byte_timeout);
        let between_bytes_timeout = timeout(|o| o.between_bytes_timeout);
        // The request line carries the path only: no proxy in between.
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;

        let (mut connection, mut reused) = match self.take(&origin) {
            Some(idle) => (idle, true),
            None => (self.open(&origin, connect_timeout).await?, false),
        };
        let response = loop {
            let sent = connection.sender.try_send_request(request);
            match tokio::time::timeout(first_byte_timeout, sent).await {
                Ok(Ok(response)) => break response,
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Err(mut failed)) => match failed.take_message() {
                    // Never written: the idle connection had closed. Only a
                    // reused connection is retried, so this ends.
                    Some(unsent) if reused => {
                        tracing::debug!("pooled connection to {origin:?} closed; retrying");
                        request = unsent;
                        connection = match self.take(&origin) {
                            Some(idle) => idle,
                            None => {
                                reused = false;
                                self.open(&origin, connect_timeout).await?
                            }
                        };
                    }
                    _ => return Err(Error::from(failed.into_error())),
                },
            }
        };
        let (done, io) = oneshot::channel();
        tokio::spawn(self.clone().keep_when_done(origin, connection, done));
        let io = async move { io.await.unwrap_or(Ok(())) };
        let response = response.map(|incoming| timed(incoming, between_bytes_timeout));
        Ok((response, Box::new(io)))
    }

    /// Waits until `connection`'s exchange is over, then keeps it if it can
    /// carry another request and reports on `done` how the request fared.
    async fn keep_when_done(
        self: Arc<Self>,
        origin: Origin,
        mut connection: Connection,
        done: oneshot::Sender<Result<(), Error>>,
    ) {
        match poll_fn(|cx| connection.sender.poll_ready(cx)).await {
            Ok(()) => {
                let _ = done.send(Ok(()));
                self.put(origin, connection);
            }
            Err(_) => {
                let ended = (&mut connection.ended).await.unwrap_or(Ok(()));
                let _ = done.send(ended.map_err(|e| match e.is_timeout() {
                    true => Error::HttpResponseTimeout,
                    false => Error::from(e),
                }));
            }
        }
    }

    /// Opens a connection to `origin` within `connect_timeout`.
    async fn open(&self, origin: &Origin, connect_timeout: Duration) -> Result<Connection, Error> {
        let address = (origin.host.as_str(), origin.port);
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
        {
            Ok(stream) => stream.map_err(Error::Connect)?,
            Err(_) => return Err(Error::ConnectionTimeout),
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        let handshake = http1::Builder::new().handshake(TokioIo::new(stream));
        let (sender, connection) = tokio::time::timeout(connect_timeout, handshake)
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        let (end, ended) = oneshot::channel();
        let driver = tokio::spawn(async move {
            let _ = end.send(connection.await);
        });
        Ok(Connection {
            sender,
            ended,
            driver: driver.abort_handle(),
            idle_since: Instant::now(),
        })
    }

    /// The most recently used open connection to `origin`, if any.
    fn take(&self, origin: &Origin) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let idle = &mut *idle;
        let connections = idle.by_origin.get_mut(origin)?;
        while let Some(connection) = connections.pop() {
            idle.total -= 1;
            if connection.sender.is_ready() && connection.idle_since.elapsed() < self.idle_timeout {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for the next request to `origin`, unless the
    /// pool is full or off (dropping it closes it).
    fn put(self: Arc<Self>, origin: Origin, mut connection: Connection) {
        if self.idle_timeout.is_zero() {
            return;
        }
        connection.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let connections = idle.by_origin.entry(origin).or_default();
        if connections.len() >= MAX_IDLE_PER_ORIGIN {
            return;
        }
        connections.push(connection);
        idle.total += 1;
        if idle.total > MAX_IDLE_TOTAL {
            // Full: the connection idle longest goes, whatever its origin.
            idle.close_oldest();
        }
        if !idle.reaper {
            idle.reaper = true;
            tokio::spawn(reap(Arc::downgrade(&self), self.idle_timeout));
        }
    }
}

impl Idle {
    fn close_oldest(&mut self) {
        let oldest = (self.by_origin.values_mut())
            .filter(|connections| !connections.is_empty())
            .min_by_key(|connections| connections[0].idle_since);
        if let Some(connections) = oldest {
            connections.remove(0);
            self.total -= 1;
        }
    }

    /// Closes the connections idle `timeout` or more, and those the other
    /// end closed.
    fn close_expired(&mut self, timeout: Duration) {
        for connections in self.by_origin.values_mut() {
            connections.retain(|c| c.idle_since.elapsed() < timeout && !c.sender.is_closed());
        }
        self.by_origin
            .retain(|_, connections| !connections.is_empty());
        self.total = self.by_origin.values().map(Vec::len).sum();
    }
}

/// Closes expired connections every half `timeout` while any are idle, so
/// that an idle connection is closed between `timeout` and 1.5 × `timeout`
/// after its last use.
async fn reap(pool: Weak<Pool>, timeout: Duration) {
    loop {
        tokio::time::sleep((timeout / 2).max(Duration::from_millis(1))).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.close_expired(timeout);
        if idle.total == 0 {
            idle.reaper = false;
            return;
        }
    }
}

impl Origin {
    fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme()?.clone();
        let host = uri.host()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = uri.port_u16().unwrap_or(match scheme == Scheme::HTTPS {
            true => 443,
            false => 80,
        });
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            thread: std::thread::current().id(),
        })
    }
}

/// `incoming`, held to the guest's between-bytes timeout: a frame must
/// arrive within it of the head or of the frame before.
fn timed(incoming: Incoming, timeout: Duration) -> WasiBody {
    let incoming = incoming.map_err(|e| match e.is_timeout() {
        true => Error::HttpResponseTimeout,
        false => Error::from(e),
    });
    let watch = BetweenBytes {
        timeout,
        deadline: Box::pin(tokio::time::sleep(timeout)),
    };
    Watched::new(incoming, watch).boxed_unsync()
}

/// The between-bytes timer of [`timed`].
struct BetweenBytes {
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Watch for BetweenBytes {
    fn frame(&mut self, _: &Frame<Bytes>) -> Result<(), Error> {
        let next = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
        Ok(())
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Err(Error::ConnectionReadTimeout),
            Poll::Pending => Ok(()),
        }
    }
}
