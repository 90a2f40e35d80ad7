//! The failure taxonomy: why a request got no response from its guest,
//! and for each cause the status, the one line the client sees and the
//! outcome the metrics count. 504 timed out; 500 trapped, no response or a
//! body that did not match its `content-length`; 503 (with `Retry-After`)
//! when every request slot or instance is taken or the instances together
//! hold `--max-total-memory`; 503 when instantiation fails; 413 for a body over `--max-request-body-size`; 408 for a body
//! that stopped arriving (`--request-body-idle-timeout`).
//!
//! Clients only ever see a one-line reason; the detailed error (guest
//! backtrace included) is logged by the request handler. This module does
//! not log and does not decide when a request has failed.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};

use crate::host::TotalMemoryFull;
use crate::instance::InstanceLimitError;
use crate::instance::config::EffectiveConfig;
use crate::instance::request::RequestTicket;
use crate::metrics::Outcome;
use crate::units::{HumanDuration, HumanSize};

/// What a client told to retry waits, in seconds (`Retry-After`): long
/// enough for a request slot or an instance to free up, short enough not to
/// matter to a user.
const RETRY_AFTER_SECONDS: u32 = 1;

/// Why a request got no response from the guest, as the client is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    Timeout,
    Trap,
    NoInstance,
    InstancesExhausted,
    /// A new instance's memory does not fit in `--max-total-memory`.
    TotalMemoryFull,
    NoResponse,
    /// The body ended short of (or ran past) its `content-length`.
    WrongLength,
    Overloaded,
    TooLarge,
    /// The request body stopped arriving (`--request-body-idle-timeout`).
    BodyIdle,
}

impl Failure {
    pub(super) fn classify(error: &wasmtime::Error, ticket: &RequestTicket) -> Self {
        // An instance expired from outside its event loop (busy loop,
        // blocking call) is dropped mid-request; its requests then report
        // whatever dropping them produces ("worker trapped or panicked" for
        // p3, "guest never invoked `response-outparam::set`" for p2). They
        // did not fail: they ran out of time.
        if error.is::<ExpirationError>() {
            Failure::Timeout
        } else if let Some(failure) = Failure::of_instance(ticket) {
            failure
        } else if let Some(failed) = error.downcast_ref::<InstantiationError<Arc<RequestTicket>>>()
        {
            // Out of instances (ours or the pool's) is transient; a failing
            // instantiation is not.
            if failed.error.is::<InstanceLimitError>()
                || failed.error.is::<wasmtime::PoolConcurrencyLimitError>()
            {
                Failure::InstancesExhausted
            } else if failed.error.is::<TotalMemoryFull>() {
                Failure::TotalMemoryFull
            } else {
                Failure::NoInstance
            }
        } else if error.is::<TrapOrPanicError>() || error.is::<wasmtime::Trap>() {
            Failure::Trap
        } else if let Some(wasmtime_wasi_http::Error::HttpResponseBodySize(_)) =
            error.downcast_ref()
        {
            Failure::WrongLength
        } else {
            Failure::NoResponse
        }
    }

    /// How the instance serving `ticket`'s request failed it, if it did:
    /// it ran past the request timeout, or it was dropped after a failure
    /// (a trap). The one reading of an instance's state as a failure; a
    /// timeout is checked first, since a timed-out instance is dropped in
    /// error too.
    pub(super) fn of_instance(ticket: &RequestTicket) -> Option<Self> {
        let instance = ticket.instance()?;
        if instance.timed_out() {
            Some(Failure::Timeout)
        } else if instance.failed() {
            Some(Failure::Trap)
        } else {
            None
        }
    }

    pub(super) fn status(self) -> StatusCode {
        match self {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Trap | Failure::NoResponse | Failure::WrongLength => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Failure::NoInstance
            | Failure::InstancesExhausted
            | Failure::TotalMemoryFull
            | Failure::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::BodyIdle => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub(super) fn outcome(self) -> Outcome {
        match self {
            Failure::Timeout => Outcome::Timeout,
            Failure::Trap => Outcome::Trap,
            Failure::NoInstance | Failure::InstancesExhausted | Failure::TotalMemoryFull => {
                Outcome::Instantiation
            }
            Failure::NoResponse | Failure::WrongLength => Outcome::Error,
            Failure::Overloaded => Outcome::Overload,
            Failure::TooLarge => Outcome::TooLarge,
            Failure::BodyIdle => Outcome::BodyIdle,
        }
    }

    /// The one line the client sees: the cause, never guest internals.
    pub(super) fn message(self, config: &EffectiveConfig) -> String {
        match (self, config.request_timeout) {
            (Failure::Timeout, Some(limit)) => {
                format!("request timed out after {}", HumanDuration(limit))
            }
            (Failure::Timeout, None) => "request timed out".to_owned(),
            (Failure::Trap, _) => "the component trapped while handling the request".to_owned(),
            (Failure::NoInstance, _) => {
                "no component instance available: instantiation failed".to_owned()
            }
            (Failure::InstancesExhausted, _) => {
                "no component instance available: all instances are busy; retry later".to_owned()
            }
            (Failure::TotalMemoryFull, _) => format!(
                "no component instance available: the instances together hold \
                 --max-total-memory {}; retry later",
                HumanSize(config.max_total_memory.unwrap_or_default())
            ),
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
            (Failure::BodyIdle, _) => format!(
                "request body stalled: nothing arrived for {}",
                HumanDuration(config.request_body_idle_timeout.unwrap_or_default())
            ),
        }
    }

    /// The plain-text response for this failure.
    pub(super) fn response(self, config: &EffectiveConfig) -> Response<WasiBody> {
        let mut response = plain_text(self.status(), self.message(config));
        let headers = response.headers_mut();
        match self {
            Failure::Overloaded | Failure::InstancesExhausted | Failure::TotalMemoryFull => {
                headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            // The rest of the body may still be on its way; the connection
            // cannot carry another request after it.
            Failure::TooLarge | Failure::BodyIdle => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
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
