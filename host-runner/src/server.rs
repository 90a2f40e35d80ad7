//! The HTTP/1.1 front end: accepts connections with hyper, passes each
//! request to the `ProxyHandler`, and turns failures into short plain-text
//! responses (504 timed out, 500 trapped or no response, 503 no instance).
//!
//! Clients only ever see a one-line reason; the detailed error (guest
//! backtrace included) goes to stderr. This module does not create instances
//! or decide reuse (worker module) and does not catch signals (shutdown
//! module).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{
    ExpirationError, InstantiationError, ProxyHandler, TrapOrPanicError,
};

use crate::component::LoadedComponent;
use crate::config::{EffectiveConfig, HumanDuration, ServeOptions};
use crate::engine::EpochTicker;
use crate::shutdown::Shutdown;
use crate::worker::{Instances, RequestTicket};

/// Response header naming the instance that served the request
/// (`--debug-headers`).
pub const INSTANCE_HEADER: &str = "x-reprise-instance";
/// Response header giving the request's position on its instance, from 1
/// (`--debug-headers`).
pub const INSTANCE_REQUEST_HEADER: &str = "x-reprise-instance-request";

/// Pending connections the kernel may queue while the server is busy.
const LISTEN_BACKLOG: u32 = 1024;

/// A bound, not yet running, HTTP server for one component.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// What every request task needs.
struct Shared {
    handler: ProxyHandler<Instances>,
    config: Arc<EffectiveConfig>,
    request_slots: Option<Arc<Semaphore>>,
}

impl Server {
    /// Settles the configuration for `component` and binds `options.addr`.
    ///
    /// Binding happens here, not in [`Server::run`], so that the caller can
    /// report the real address (port 0) before serving.
    pub async fn bind(component: LoadedComponent, options: &ServeOptions) -> anyhow::Result<Self> {
        let config = Arc::new(EffectiveConfig::resolve(options, component.world()));
        anyhow::ensure!(
            config.request_timeout.is_none() || component.interruptible(),
            "a request timeout needs a component loaded as interruptible"
        );
        let listener = listen(options.addr).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; pick another address with --addr (port 0 picks a free one)",
                options.addr
            )
        })?;
        let local_addr = listener.local_addr()?;
        let request_slots = config
            .max_concurrent_requests
            .map(|n| Arc::new(Semaphore::new(n)));
        let handler = ProxyHandler::new(Instances::new(component, config.clone()));
        Ok(Self {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                handler,
                config,
                request_slots,
            }),
        })
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
    /// requested again), and returns.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Server {
            listener,
            shared,
            local_addr: _,
        } = self;
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
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Typically out of file descriptors: back off
                        // instead of spinning, and keep serving the
                        // connections already open.
                        eprintln!("host-runner: cannot accept a connection: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.requested() => break,
            };
            // Small response chunks (streamed bodies) must not wait for
            // Nagle's algorithm.
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let connection = http1::Builder::new().keep_alive(true).serve_connection(
                TokioIo::new(stream),
                service_fn(move |request| serve_request(shared.clone(), request)),
            );
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // Connection-level errors (client went away mid-request,
                // malformed HTTP) concern one client only and were already
                // answered by hyper where possible.
                let _ = connection.await;
                drop(slot);
            });
        }

        // Closing the listener makes new connection attempts fail at once
        // rather than hang in the backlog.
        drop(listener);
        let in_flight = graceful.count();
        if in_flight > 0 {
            eprintln!(
                "host-runner: shutting down; waiting for {in_flight} open connection(s) to finish (signal again to stop now)"
            );
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = shutdown.forced() => {
                eprintln!("host-runner: stopping without waiting for in-flight requests");
            }
        }
        shared.handler.state().close();
        Ok(())
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Lets a restarted server rebind while old connections sit in
    // TIME_WAIT. (On Windows the same flag would let two servers share the
    // port, so it stays off there.)
    socket.set_reuseaddr(!cfg!(windows))?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Why a request got no response from the guest, as the client is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Trapped,
    NoInstance,
    NoResponse,
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
        } else if error.is::<InstantiationError<Arc<RequestTicket>>>() {
            Failure::NoInstance
        } else if error.is::<TrapOrPanicError>() || error.is::<wasmtime::Trap>() {
            Failure::Trapped
        } else {
            Failure::NoResponse
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Failure::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            Failure::Trapped | Failure::NoResponse => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::NoInstance => StatusCode::SERVICE_UNAVAILABLE,
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
            (Failure::NoResponse, _) => "the component failed to produce a response".to_owned(),
        }
    }
}

async fn serve_request(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ServedBody>, Infallible> {
    // The permit travels with the response body: a request counts until its
    // body is fully sent, not just until its headers are.
    let permit = match &shared.request_slots {
        Some(slots) => slots.clone().acquire_owned().await.ok(),
        None => None,
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request = request.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
    let ticket = Arc::new(RequestTicket::default());

    let mut response = match shared.handler.handle(ticket.clone(), request).await {
        Ok(response) => response,
        Err(error) => {
            let failure = Failure::classify(&error, &ticket);
            let on_instance = ticket
                .instance()
                .map(|i| format!(" on instance {}", i.id()))
                .unwrap_or_default();
            let message = failure.message(&shared.config);
            // For a timeout the error only says how the worker noticed
            // ("guest timed out", "worker trapped or panicked"); the message
            // already says everything.
            let detail = match failure {
                Failure::TimedOut => String::new(),
                _ => format!(": {error:#}"),
            };
            eprintln!(
                "host-runner: {method} {path}{on_instance} -> {} {message}{detail}",
                failure.status().as_u16()
            );
            plain_text(failure.status(), message)
        }
    };
    if shared.config.debug_headers
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
    Ok(response.map(|body| ServedBody {
        body,
        _permit: permit,
    }))
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

/// A response body holding a concurrency permit until it is dropped.
struct ServedBody {
    body: WasiBody,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Body for ServedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
