//! The HTTP/1.1 front end: accepts connections with hyper, passes each
//! request to the `ProxyHandler`, and turns failures into short plain-text
//! responses: 504 timed out; 500 trapped or no response; 503 (with
//! `Retry-After`) when `--max-concurrent-requests` are in flight or
//! `--max-instances` instances are alive; 503 when instantiation fails; 413
//! for a body over `--max-request-body-size`. hyper itself answers malformed
//! requests (400) and heads over 64 KiB or 100 headers (431), and closes
//! connections whose head takes longer than `--header-read-timeout`.
//!
//! Connections are served by `--threads` threads, each with a
//! single-threaded runtime, a `ProxyHandler` and a listener of its own (see
//! the listeners module: the kernel spreads connections over the threads).
//! A request, the instance serving it and its response
//! stay on one thread: no wake-up crosses threads, which on a small machine
//! costs more than the guest's own work. Limits, metrics and instance
//! numbers are shared across threads; reuse is per thread.
//!
//! Overload is handled with a short bounded wait: a request that finds every
//! request slot taken waits up to `--request-queue-timeout` (100ms by
//! default) for one, then gets 503. The wait absorbs bursts shorter than a
//! request; anything longer is shed at once so a load balancer can retry
//! elsewhere, instead of building a queue whose latency nobody asked for.
//!
//! Clients only ever see a one-line reason; the detailed error (guest
//! backtrace included) goes to the log, on a line carrying the request id
//! and the instance. This module does not create instances or decide reuse
//! (worker module) and does not catch signals (shutdown module).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{
    ExpirationError, InstantiationError, ProxyHandler, TrapOrPanicError,
};

use crate::component::LoadedComponent;
use crate::config::{EffectiveConfig, HumanDuration, HumanSize, ServeOptions};
use crate::engine::EpochTicker;
use crate::listeners::{self, Listeners, ThreadListener};
use crate::metrics::{self, Metrics, Outcome};
use crate::read_ahead::read_ahead;
use crate::record::Recorder;
use crate::request::{InFlight, LimitedBody, RequestIds};
use crate::response::checked;
use crate::shutdown::Shutdown;
use crate::worker::{InstanceLimitError, Instances, RequestTicket};

/// Response header naming the instance that served the request
/// (`--debug-headers`).
pub const INSTANCE_HEADER: &str = "x-reprise-instance";
/// Response header giving the request's position on its instance, from 1
/// (`--debug-headers`).
pub const INSTANCE_REQUEST_HEADER: &str = "x-reprise-instance-request";

/// Largest request head (request line and headers) accepted; larger ones
/// get 431. Far above what browsers and proxies send (8-16 KiB), far below
/// hyper's own ~400 KiB buffer limit.
const MAX_HEADER_SIZE: usize = 64 << 10;

/// How long a request that got no response waits to learn whether its
/// instance trapped; only a guest that returns without responding, on an
/// instance that lives on, waits this long.
const INSTANCE_END_WAIT: Duration = Duration::from_millis(250);

/// How long a forced shutdown waits for the serving threads to stop before
/// it leaves the stuck ones behind: enough for threads that are not stuck
/// to drop their instances.
const FORCED_STOP_WAIT: Duration = Duration::from_secs(1);

/// What a client told to retry waits, in seconds (`Retry-After`): long
/// enough for a request slot or an instance to free up, short enough not to
/// matter to a user.
const RETRY_AFTER_SECONDS: u32 = 1;

/// A bound, not yet running, HTTP server for one component.
pub struct Server {
    // issue 16: one listener per serving thread (listeners.rs).
    listeners: Listeners,
    local_addr: SocketAddr,
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    shared: Arc<Shared>,
}

/// What every request task needs: one per serving thread, all sharing the
/// limits, the metrics and the instance numbering.
struct Shared {
    /// Which serving thread this is, for the per-thread gauges.
    thread: usize,
    handler: ProxyHandler<Instances>,
    config: Arc<EffectiveConfig>,
    request_slots: Option<Arc<Semaphore>>,
    metrics: Arc<Metrics>,
    request_ids: Arc<RequestIds>,
    /// Where requests are recorded (`--record`).
    recorder: Option<Arc<Recorder>>,
}

impl Shared {
    /// The same server for another thread, with a `ProxyHandler` (and so
    /// instances) of its own: a request and the instance serving it stay on
    /// one thread, with no wake-ups across threads.
    fn for_another_thread(&self, thread: usize) -> Self {
        Self {
            thread,
            handler: ProxyHandler::new(self.handler.state().clone()),
            config: self.config.clone(),
            request_slots: self.request_slots.clone(),
            metrics: self.metrics.clone(),
            request_ids: self.request_ids.clone(),
            recorder: self.recorder.clone(),
        }
    }
}

impl Server {
    /// Settles the configuration for `component` (its reuse policy
    /// included) and binds `options.addr` and `options.metrics_addr`.
    ///
    /// Binding happens here, not in [`Server::run`], so that the caller can
    /// report the real addresses (port 0) before serving.
    pub async fn bind(component: LoadedComponent, options: &ServeOptions) -> anyhow::Result<Self> {
        let config = Arc::new(EffectiveConfig::resolve_with_policy(
            options,
            component.world(),
            component.policy(),
        ));
        anyhow::ensure!(
            config.request_timeout.is_none() || component.interruptible(),
            "a request timeout needs a component loaded as interruptible"
        );
        if component.initial_memory() > config.max_memory_size {
            tracing::warn!(
                "{} needs {} of linear memory to start, more than --max-memory-size {}: every instantiation will fail (503); raise --max-memory-size",
                component.path().display(),
                HumanSize(component.initial_memory()),
                HumanSize(config.max_memory_size)
            );
        }
        let listeners = Listeners::bind(options.addr, config.threads).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; pick another address with --addr (port 0 picks a free one)",
                options.addr
            )
        })?;
        let local_addr = listeners.local_addr();
        let metrics_listener = match options.metrics_addr {
            Some(addr) => {
                let listener = listeners::listen(addr).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot listen on {addr}: {e}; pick another address with --metrics-addr (port 0 picks a free one)"
                    )
                })?;
                let bound = listener.local_addr()?;
                Some((listener, bound))
            }
            None => None,
        };
        let request_slots = config
            .max_concurrent_requests
            .map(|n| Arc::new(Semaphore::new(n)));
        let recorder = match &options.record {
            Some(path) => {
                let recorder = Recorder::open(path)?;
                tracing::info!(
                    "recording the requests served in {} (replay them with host-runner check --requests {0})",
                    path.display()
                );
                Some(Arc::new(recorder))
            }
            None => None,
        };
        let metrics = Arc::new(Metrics::new(config.threads));
        let handler = ProxyHandler::new(Instances::new(component, config.clone(), metrics.clone()));
        Ok(Self {
            listeners,
            local_addr,
            metrics_listener,
            shared: Arc::new(Shared {
                thread: 0,
                handler,
                config,
                request_slots,
                metrics,
                request_ids: Arc::new(RequestIds::new()),
                recorder,
            }),
        })
    }

    /// The address `/metrics` is served on, when `metrics_addr` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|&(_, addr)| addr)
    }

    /// The address the server accepts connections on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The limits the server applies.
    pub fn config(&self) -> &EffectiveConfig {
        &self.shared.config
    }

    /// Serves until `shutdown` is requested, then stops accepting, lets
    /// in-flight requests finish (or gives up on them when shutdown is
    /// requested again), and returns. After a second request it returns
    /// within about a second even if a thread is stuck in guest code; that
    /// thread is left running, for the process's exit to end.
    ///
    /// Connections are served by `threads` threads of their own, each with
    /// a single-threaded runtime, its own instances and its own listener;
    /// the caller's runtime only
    /// serves `/metrics`. Dropping the returned future does not stop those
    /// threads: `shutdown` does.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Server {
            listeners,
            shared,
            metrics_listener,
            local_addr: _,
        } = self;
        // Aborted when `run` returns: metrics are for a server that serves.
        let _metrics_task = metrics_listener.map(|(listener, _)| {
            AbortOnDrop(tokio::spawn(metrics::serve(
                listener,
                shared.metrics.clone(),
            )))
        });
        let _ticker = match shared.config.request_timeout {
            Some(limit) => Some(
                EpochTicker::start(
                    shared.handler.state().component().engine().clone(),
                    EpochTicker::period_for(limit),
                )
                .context("cannot start the thread that enforces request timeouts")?,
            ),
            None => None,
        };
        let connection_slots = shared
            .config
            .max_concurrent_connections
            .map(|n| Arc::new(Semaphore::new(n)));
        let mut threads = Vec::new();
        for (n, listener) in listeners
            .split(shared.config.threads)?
            .into_iter()
            .enumerate()
        {
            let shared = match n {
                0 => shared.clone(),
                _ => Arc::new(shared.for_another_thread(n)),
            };
            let connection_slots = connection_slots.clone();
            let shutdown = shutdown.clone();
            let (finished, done) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("host-runner-{n}"))
                .spawn(move || {
                    let served = serve_on_this_thread(listener, shared, connection_slots, shutdown);
                    let _ = finished.send(served);
                })
                .context("cannot start a thread to serve connections")?;
            threads.push(done);
        }
        let all_done = async {
            let mut result = Ok(());
            for done in threads {
                let served = done
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a serving thread panicked")));
                result = result.and(served);
            }
            result
        };
        // A thread running guest code that never yields (a busy loop with
        // no request timeout to interrupt it) never gets back to its
        // runtime, so it cannot see the shutdown at all. Asked a second
        // time, stop waiting for it: the caller can then exit the process,
        // which ends the thread, as a second Ctrl-C promises.
        tokio::select! {
            result = all_done => result,
            () = async {
                shutdown.forced().await;
                tokio::time::sleep(FORCED_STOP_WAIT).await;
            } => {
                tracing::warn!(
                    "stopping with guest code still running on a serving thread (a loop that never yields; --request-timeout would have interrupted it)"
                );
                Ok(())
            }
        }
    }
}

/// Runs a single-threaded runtime on this thread that accepts connections
/// from `listener` and serves them until shutdown.
fn serve_on_this_thread(
    listener: ThreadListener,
    shared: Arc<Shared>,
    connection_slots: Option<Arc<Semaphore>>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve_connections(
        listener,
        shared,
        connection_slots,
        shutdown,
    ));
    // Work handed to the blocking pool (file I/O) is not waited on forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

async fn serve_connections(
    listener: ThreadListener,
    shared: Arc<Shared>,
    connection_slots: Option<Arc<Semaphore>>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut listener = listener.start()?;
    let graceful = GracefulShutdown::new();
    loop {
        // Waiting for a connection slot before accepting leaves extra
        // clients in the kernel's backlog instead of accepting and
        // stalling them.
        let slot = match &connection_slots {
            Some(slots) => tokio::select! {
                slot = slots.clone().acquire_owned() => slot.ok(),
                () = shutdown.requested() => break,
            },
            None => None,
        };
        let (stream, seat) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Another thread took the connection first (a shared
                // listener, or a queue taken over).
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => {
                    // Typically out of file descriptors: back off instead
                    // of spinning, and keep serving the connections
                    // already open.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.requested() => break,
        };
        // Small response chunks (streamed bodies) must not wait for
        // Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let open = shared.metrics.threads.connection_opened(shared.thread);
        let shared = shared.clone();
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .max_header_size(MAX_HEADER_SIZE)
            .timer(TokioTimer::new())
            // Also closes keep-alive connections idle for that long.
            .header_read_timeout(shared.config.header_read_timeout);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| serve_request(shared.clone(), request)),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Connection-level errors (client went away mid-request,
            // malformed HTTP) concern one client only and were already
            // answered by hyper where possible.
            let _ = connection.await;
            drop((slot, open, seat));
        });
    }

    // Closing the listener makes new connection attempts fail at once
    // rather than hang in the backlog (once every thread has closed its
    // handle on it).
    drop(listener);
    let in_flight = graceful.count();
    if in_flight > 0 {
        tracing::info!(
            "shutting down; waiting for {in_flight} open connection(s) to finish (signal again to stop now)"
        );
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = shutdown.forced() => {
            tracing::warn!("stopping without waiting for in-flight requests");
        }
    }
    shared.handler.state().close();
    Ok(())
}

/// A spawned task that is cancelled when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a request got no response from the guest, as the client is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Trapped,
    NoInstance,
    InstancesExhausted,
    NoResponse,
    /// The body ended short of (or ran past) its `content-length`.
    WrongLength,
    Overloaded,
    TooLarge,
}

impl Failure {
    fn classify(error: &wasmtime::Error, ticket: &RequestTicket) -> Self {
        // An instance expired from outside its event loop (busy loop,
        // blocking call) is dropped mid-request; its requests then report
        // whatever dropping them produces ("worker trapped or panicked" for
        // p3, "guest never invoked `response-outparam::set`" for p2). They
        // did not fail: they ran out of time.
        if error.is::<ExpirationError>() || ticket.instance().is_some_and(|i| i.timed_out()) {
            Failure::TimedOut
        } else if let Some(failed) = error.downcast_ref::<InstantiationError<Arc<RequestTicket>>>()
        {
            // Out of instances (ours or the pool's) is transient; a failing
            // instantiation is not.
            if failed.error.is::<InstanceLimitError>()
                || failed.error.is::<wasmtime::PoolConcurrencyLimitError>()
            {
                Failure::InstancesExhausted
            } else {
                Failure::NoInstance
            }
        } else if error.is::<TrapOrPanicError>() || error.is::<wasmtime::Trap>() {
            Failure::Trapped
        } else if let Some(wasmtime_wasi_http::Error::HttpResponseBodySize(_)) =
            error.downcast_ref()
        {
            Failure::WrongLength
        } else {
            Failure::NoResponse
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Failure::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            Failure::Trapped | Failure::NoResponse | Failure::WrongLength => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Failure::NoInstance | Failure::InstancesExhausted | Failure::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Failure::TimedOut => Outcome::Timeout,
            Failure::Trapped => Outcome::Trap,
            Failure::NoInstance | Failure::InstancesExhausted => Outcome::Instantiation,
            Failure::NoResponse | Failure::WrongLength => Outcome::Error,
            Failure::Overloaded => Outcome::Overload,
            Failure::TooLarge => Outcome::TooLarge,
        }
    }

    /// The one line the client sees: the cause, never guest internals.
    fn message(self, config: &EffectiveConfig) -> String {
        match (self, config.request_timeout) {
            (Failure::TimedOut, Some(limit)) => {
                format!("request timed out after {}", HumanDuration(limit))
            }
            (Failure::TimedOut, None) => "request timed out".to_owned(),
            (Failure::Trapped, _) => "the component trapped while handling the request".to_owned(),
            (Failure::NoInstance, _) => {
                "no component instance available: instantiation failed".to_owned()
            }
            (Failure::InstancesExhausted, _) => {
                "no component instance available: all instances are busy; retry later".to_owned()
            }
            (Failure::NoResponse, _) => "the component failed to produce a response".to_owned(),
            (Failure::WrongLength, _) => {
                "the component's response body did not match its content-length".to_owned()
            }
            (Failure::Overloaded, _) => format!(
                "server overloaded: all {} request slots are in use; retry later",
                config.max_concurrent_requests.unwrap_or_default()
            ),
            (Failure::TooLarge, _) => format!(
                "request body too large: the limit is {}",
                HumanSize(config.max_request_body_size)
            ),
        }
    }

    /// The plain-text response for this failure.
    fn response(self, config: &EffectiveConfig) -> Response<WasiBody> {
        let mut response = plain_text(self.status(), self.message(config));
        let headers = response.headers_mut();
        match self {
            Failure::Overloaded | Failure::InstancesExhausted => {
                headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            // The rest of the body may still be on its way; the connection
            // cannot carry another request after it.
            Failure::TooLarge => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Logs a line about one request, with its id and its instance (once it has
/// one), as every line about a request must have. Fields on the few lines
/// rather than a span around every request: the span cost more per request
/// than the lines it labelled.
macro_rules! log_request {
    ($level:ident, $ticket:expr, $($message:tt)+) => {
        tracing::$level!(
            request_id = %$ticket.id(),
            instance = $ticket.instance().map(|instance| instance.id()),
            $($message)+
        )
    };
}

/// hyper's service: every request gets a response, failures included.
async fn serve_request(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ServedBody>, Infallible> {
    Ok(handle_request(shared, request).await)
}

async fn handle_request(
    shared: Arc<Shared>,
    mut request: Request<Incoming>,
) -> Response<ServedBody> {
    let config = &shared.config;
    config.request_headers.apply(request.headers_mut());
    let id = shared.request_ids.assign(request.headers_mut());
    let ticket = Arc::new(RequestTicket::new(id));
    // Counted from here until the response body is sent, or until the
    // client goes away and hyper drops this future.
    let mut in_flight = InFlight::start(shared.metrics.clone(), shared.thread, ticket.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > config.max_request_body_size) {
        return refuse(Failure::TooLarge, config, in_flight, &method, &path);
    }
    // The permit travels with the response body: a request counts until its
    // body is fully sent, not just until its headers are.
    let permit = match &shared.request_slots {
        Some(slots) => match take_slot(slots, config.request_queue_timeout).await {
            Some(permit) => Some(permit),
            None => return refuse(Failure::Overloaded, config, in_flight, &method, &path),
        },
        None => None,
    };

    let too_large = Arc::new(AtomicBool::new(false));
    let limit = config.max_request_body_size;
    let request = request.map(|body| {
        let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
        LimitedBody::new(body, limit, too_large.clone()).boxed_unsync()
    });
    let (request, recording) = match &shared.recorder {
        Some(recorder) => {
            let (request, recording) = recorder.tap(request);
            (request, Some(recording))
        }
        None => (request, None),
    };
    let result = match shared.handler.handle(ticket.clone(), request).await {
        // A body that fails before its first byte fails the request, while
        // its head can still say so.
        Ok(response) => read_ahead(&method, checked(&method, response, ticket.clone()))
            .await
            .map_err(wasmtime::Error::new),
        Err(error) => Err(error),
    };
    // Written before the response goes out: a client that has its answer
    // finds its request in the file.
    drop(recording);
    let (mut response, outcome) = match result {
        // Whatever the guest made of the failed read, the cause was the
        // client's body.
        _ if too_large.load(Ordering::Relaxed) => {
            log_request!(
                debug,
                ticket,
                "{method} {path} -> 413: the request body is over the limit"
            );
            (Failure::TooLarge.response(config), Outcome::TooLarge)
        }
        Ok(response) => {
            log_request!(
                debug,
                ticket,
                "{method} {path} -> {}",
                response.status().as_u16()
            );
            (response, Outcome::Ok)
        }
        Err(error) => {
            let mut failure = Failure::classify(&error, &ticket);
            // A trap also shows as a body cut short (wasmtime reports the
            // missing bytes of a declared length as it drops the store).
            if matches!(failure, Failure::NoResponse | Failure::WrongLength)
                && let Some(instance) = ticket.instance()
                && instance.failed_within(INSTANCE_END_WAIT).await
            {
                failure = Failure::Trapped;
            }
            let message = failure.message(config);
            let status = failure.status().as_u16();
            match failure {
                // The error only says how the worker noticed ("guest timed
                // out", "worker trapped or panicked"); the message says it
                // all.
                Failure::TimedOut => {
                    log_request!(warn, ticket, "{method} {path} -> {status} {message}")
                }
                // Expected under load and counted in the metrics.
                Failure::InstancesExhausted => {
                    log_request!(debug, ticket, "{method} {path} -> {status} {message}")
                }
                _ => log_request!(
                    warn,
                    ticket,
                    "{method} {path} -> {status} {message}: {}",
                    crate::component::one_line(&error)
                ),
            }
            (failure.response(config), failure.outcome())
        }
    };
    if config.debug_headers
        && let (Some(instance), Some(nth)) = (ticket.instance(), ticket.nth_on_instance())
    {
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static(INSTANCE_HEADER),
            HeaderValue::from(instance.id()),
        );
        headers.insert(
            HeaderName::from_static(INSTANCE_REQUEST_HEADER),
            HeaderValue::from(nth),
        );
    }
    in_flight.answer(outcome);
    response.map(|body| ServedBody {
        body,
        _permit: permit,
        in_flight,
    })
}

/// Waits up to `wait` for one of the concurrent request slots.
async fn take_slot(slots: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    // The semaphore is never closed, so only the timeout fails this.
    tokio::time::timeout(wait, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Answers a request the guest never saw.
fn refuse(
    failure: Failure,
    config: &EffectiveConfig,
    mut in_flight: InFlight,
    method: &hyper::Method,
    path: &str,
) -> Response<ServedBody> {
    log_request!(
        debug,
        in_flight.ticket(),
        "{method} {path} -> {} {}",
        failure.status().as_u16(),
        failure.message(config)
    );
    in_flight.answer(failure.outcome());
    failure.response(config).map(|body| ServedBody {
        body,
        _permit: None,
        in_flight,
    })
}

fn plain_text(status: StatusCode, message: String) -> Response<WasiBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(message + "\n"))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response body holding a concurrency permit, and keeping its request
/// counted as in flight, until it is dropped.
struct ServedBody {
    body: WasiBody,
    _permit: Option<OwnedSemaphorePermit>,
    in_flight: InFlight,
}

impl ServedBody {
    /// The body failed after the head went out: hyper closes the connection
    /// without ending the body, and the request counts as failed, not `ok`.
    fn cut_off(&mut self, error: &wasmtime_wasi_http::Error) {
        let ticket = self.in_flight.ticket();
        let (failure, cause) = match ticket.instance() {
            Some(instance) if instance.timed_out() => {
                (Failure::TimedOut, "the request timed out".to_owned())
            }
            Some(instance) if instance.failed() => {
                (Failure::Trapped, "the component trapped".to_owned())
            }
            _ => match error {
                wasmtime_wasi_http::Error::HttpResponseBodySize(_) => (
                    Failure::WrongLength,
                    format!("the body did not match its content-length ({error})"),
                ),
                _ => (Failure::NoResponse, error.to_string()),
            },
        };
        log_request!(
            warn,
            ticket,
            "response cut off after its head went out: {cause}; closing the connection mid-body"
        );
        self.in_flight.cut_off(failure.outcome());
    }
}

impl Body for ServedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Err(error)) = &frame {
            self.cut_off(error);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
