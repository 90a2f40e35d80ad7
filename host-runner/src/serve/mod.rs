//! The HTTP/1.1 front end's lifecycle: binds, starts the serving threads,
//! runs their accept loops, and stops them on shutdown. Each request is
//! handed to `handle.rs`, whose failures `failure.rs` turns into short
//! plain-text responses. hyper itself answers malformed
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
//! This module does not handle requests (`handle.rs`), does not create
//! instances or decide reuse (`instance/`) and does not catch signals (the
//! shutdown module).

mod failure;
mod handle;
mod in_flight;
mod listeners;
mod read_ahead;
mod record;
mod request_body;
mod request_id;
mod response;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::handler::ProxyHandler;

use crate::component::LoadedComponent;
use crate::component::engine::EpochTicker;
use crate::exchange::Exchanges;
use crate::host::{HostServices, MemoryBudget};
use crate::instance::Instances;
use crate::instance::config::EffectiveConfig;
use crate::metrics::{self, Metrics};
use crate::options::ServeOptions;
use crate::pool::Pool;
use crate::shutdown::Shutdown;
use crate::units::HumanSize;
use handle::serve_request;
use listeners::{Listeners, ThreadListener};
use record::{Recorder, Redaction};
use request_id::RequestIds;

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

/// How long a forced shutdown waits for the serving threads to stop before
/// it leaves the stuck ones behind: enough for threads that are not stuck
/// to drop their instances.
const FORCED_STOP_WAIT: Duration = Duration::from_secs(1);

/// Longest a shutdown waits for `--record`'s last lines to be written: a
/// stalled sink must not hold the process.
const RECORD_FLUSH_WAIT: Duration = Duration::from_millis(500);

/// A bound, not yet running, HTTP server for one component.
pub struct Server {
    /// One listening socket per serving thread.
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
    /// Loads the component at `path` for `options` (so the two cannot
    /// disagree), settles the configuration (its reuse policy included) and
    /// binds `options.addr` and `options.metrics_addr`.
    ///
    /// Binding happens here, not in [`Server::run`], so that the caller can
    /// report the real addresses (port 0) before serving.
    pub async fn bind(path: &Path, options: &ServeOptions) -> anyhow::Result<Self> {
        options.conflicts().map_err(anyhow::Error::msg)?;
        let component = LoadedComponent::load_for(path, options)?;
        let config = Arc::new(EffectiveConfig::resolve_with_policy(
            options,
            component.world(),
            component.policy(),
        ));
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
        let metrics = Arc::new(Metrics::new(config.threads));
        let recorder = match &options.record {
            Some(path) => {
                let redaction = Redaction {
                    headers: (config
                        .request_headers
                        .0
                        .iter()
                        .map(|(name, _)| name.clone()))
                    .chain(options.record_redact.iter().cloned())
                    .collect(),
                    raw: options.record_raw,
                };
                let recorder = Recorder::open(path, redaction, metrics.clone())?;
                tracing::info!(
                    "recording the requests served in {} (replay them with host-runner check --requests {0})",
                    path.display()
                );
                Some(Arc::new(recorder))
            }
            None => None,
        };
        let pool = Pool::new(
            options.outbound_idle_timeout,
            metrics.outbound_connections_opened.clone(),
        );
        let memory_budget = MemoryBudget::new(
            config.max_total_memory,
            metrics.linear_memory.clone(),
            metrics.memory_growths_refused.clone(),
        );
        let services =
            HostServices::open(&config.wasi, config.max_memory_size, memory_budget, pool)?;
        if let Some(recorder) = &recorder {
            services.set_exchanges(Exchanges::Record(Arc::new(recorder.exchanges())));
        }
        let handler = ProxyHandler::new(Instances::new(
            component,
            config.clone(),
            metrics.clone(),
            services,
        ));
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

    /// The component served.
    pub fn component(&self) -> &LoadedComponent {
        self.shared.handler.state().component()
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
            AbortOnDrop(tokio::spawn(metrics::endpoint::serve(
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
        let recorder = shared.recorder.clone();
        let result = tokio::select! {
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
        };
        // The requests served last are written, unless the sink is stalled.
        if let Some(recorder) = recorder {
            recorder.flush(RECORD_FLUSH_WAIT);
        }
        result
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
        let stream = tokio::select! {
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
            // Copies a response's body into the buffer of its head and
            // sends both with one `write`, instead of queueing the body's
            // buffers for a `writev`: responses are mostly small, and the
            // queue cost more per request than the copy.
            .writev(false)
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
            drop((slot, open));
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
