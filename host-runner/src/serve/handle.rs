//! One request, from hyper to the `ProxyHandler` and back: the
//! authority from `Host`, the `--header` replacements, the request id, the body-size limit, a slot
//! among `--max-concurrent-requests` (waiting at most
//! `--request-queue-timeout`), the debug headers, and a response for every
//! failure (408 for a body that stopped arriving). The response body keeps its request counted as in flight until
//! it is sent, and a body that fails after its head went out is counted as
//! cut off.
//!
//! This module does not accept connections (`serve/mod.rs` does) and does
//! not decide which status a failure gets (`serve/failure.rs` does).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use hyper::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::WasiBody;

use super::failure::Failure;
use super::in_flight::InFlight;
use super::read_ahead::read_ahead;
use super::request_body::request_body;
use super::response::checked;
use super::{INSTANCE_HEADER, INSTANCE_REQUEST_HEADER, Shared};
use crate::instance::config::EffectiveConfig;
use crate::instance::request::RequestTicket;
use crate::metrics::Outcome;
use crate::watched::{Watch, Watched};

/// How long a request that got no response waits to learn whether its
/// instance trapped; only a guest that returns without responding, on an
/// instance that lives on, waits this long.
const INSTANCE_END_WAIT: Duration = Duration::from_millis(250);

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
pub(super) async fn serve_request(
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
    // Before wasmtime drops `Connection`, so the fields it names go too.
    crate::hop_by_hop::remove(request.headers_mut());
    authority_from_host(&mut request);
    config.request_headers.apply(request.headers_mut());
    let id = shared.request_ids.assign(request.headers_mut());
    let ticket = Arc::new(RequestTicket::new(id));
    // Counted from here until the response body is sent, or until the
    // client goes away and hyper drops this future.
    let mut in_flight = InFlight::start(shared.metrics.clone(), shared.thread, ticket.clone());
    let method = request.method().clone();
    // For the log lines: a handle on the request's own bytes, not a copy.
    let path_and_query = request.uri().path_and_query().cloned();
    let path = path_and_query.as_ref().map_or("/", |p| p.path());

    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > config.max_request_body_size) {
        return refuse(Failure::TooLarge, config, in_flight, &method, path);
    }
    // The permit travels with the response body: a request counts until its
    // body is fully sent, not just until its headers are.
    let permit = match &shared.request_slots {
        Some(slots) => match take_slot(slots, config.request_queue_timeout).await {
            Some(permit) => Some(permit),
            None => return refuse(Failure::Overloaded, config, in_flight, &method, path),
        },
        None => None,
    };

    let (request, body_handle) = {
        let (parts, body) = request.into_parts();
        let (body, handle) = request_body(
            body,
            config.max_request_body_size,
            config.request_body_idle_timeout,
        );
        (Request::from_parts(parts, body), handle)
    };
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
        _ if body_handle.stalled() => {
            log_request!(
                debug,
                ticket,
                "{method} {path} -> 408: the request body stopped arriving"
            );
            (Failure::BodyIdle.response(config), Outcome::BodyIdle)
        }
        _ if body_handle.too_large() => {
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
                failure = Failure::Trap;
            }
            let message = failure.message(config);
            let status = failure.status().as_u16();
            match failure {
                // The error only says how the worker noticed ("guest timed
                // out", "worker trapped or panicked"); the message says it
                // all.
                Failure::Timeout => {
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
                    crate::errors::one_line(&error)
                ),
            }
            // The guest's store holds the body until its instance goes
            // (a timeout later for a timed-out request): let go now, so
            // that hyper stops waiting for a body nobody will read and
            // closes a connection whose client is still sending one.
            body_handle.let_go();
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
    response.map(|body| served(body, permit, in_flight))
}

/// Gives an origin-form request (`GET /path`, what HTTP/1.1 clients send)
/// the authority its `Host` header names. wasmtime hands a p2 guest the
/// `Host` header as the authority but a p3 guest only the URI's, so without
/// this a p3 guest saw none. A `Host` that is not a valid authority is left
/// as it is.
fn authority_from_host(request: &mut Request<Incoming>) {
    if request.uri().authority().is_some() {
        return;
    }
    let Some(authority) = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|host| hyper::http::uri::Authority::try_from(host.as_bytes()).ok())
    else {
        return;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(hyper::http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(hyper::http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = hyper::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
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
    failure
        .response(config)
        .map(|body| served(body, None, in_flight))
}

/// A response body holding a concurrency permit, and keeping its request
/// counted as in flight, until it is dropped.
pub(super) type ServedBody = Watched<WasiBody, Served>;

fn served(body: WasiBody, permit: Option<OwnedSemaphorePermit>, in_flight: InFlight) -> ServedBody {
    Watched::new(
        body,
        Served {
            _permit: permit,
            in_flight,
        },
    )
}

/// What a response body holds while it is sent.
pub(super) struct Served {
    _permit: Option<OwnedSemaphorePermit>,
    in_flight: InFlight,
}

impl Watch for Served {
    /// The body failed after the head went out: hyper closes the connection
    /// without ending the body, and the request counts as failed, not `ok`.
    fn error(&mut self, error: &wasmtime_wasi_http::Error) {
        let ticket = self.in_flight.ticket();
        let failure = Failure::of_instance(ticket).unwrap_or(match error {
            wasmtime_wasi_http::Error::HttpResponseBodySize(_) => Failure::WrongLength,
            _ => Failure::NoResponse,
        });
        let cause = match failure {
            Failure::Timeout => "the request timed out".to_owned(),
            Failure::Trap => "the component trapped".to_owned(),
            Failure::WrongLength => format!("the body did not match its content-length ({error})"),
            _ => error.to_string(),
        };
        log_request!(
            warn,
            ticket,
            "response cut off after its head went out: {cause}; closing the connection mid-body"
        );
        self.in_flight.cut_off(failure.outcome());
    }
}
