//! Outgoing HTTP: call another service from inside a handler, with the same
//! `http` types and [`Body`] as the handler itself, in both worlds.
//!
//! A call belongs to the request that makes it. It is a future like any
//! other: dropping it (the handler returned without it, a [`timeout`]
//! passed, the request's [deadline](crate::Handler::deadline) passed)
//! cancels it, and the host closes its connection. Nothing here pools
//! connections, follows redirects or retries; the host decides how requests
//! leave the instance, and which destinations it allows.
//!
//! [`timeout`]: crate::timeout

use crate::{Body, BodyError, IntoResponse, Request, Response};
use http::StatusCode;
use std::fmt;
use std::time::Duration;

/// Sends `request` and returns the response as soon as its head arrives;
/// the response body streams.
///
/// The URI must be absolute (`http://127.0.0.1:8081/path`). A streamed
/// request body (for example the incoming request's own body) is sent while
/// the response is awaited. Hop-by-hop headers (`connection`, `keep-alive`,
/// `transfer-encoding`, `upgrade`, `te`, `trailer`, `proxy-*`) and `host`
/// are left out: the host sets those for the connection it opens.
///
/// Per-call limits go in the request's extensions as [`Timeouts`].
///
/// ```no_run
/// # async fn handler() -> Result<String, reprise::client::Error> {
/// let request = reprise::http::Request::get("http://127.0.0.1:8081/users/7")
///     .body(reprise::Body::empty())
///     .unwrap();
/// let response = reprise::client::send(request).await?;
/// let user = response.into_body().text().await?;
/// # Ok(user) }
/// ```
///
/// # Panics
/// Outside a handler exported with reprise: there is no host to send with.
pub fn send(request: Request) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    // The call starts at the first poll, as an `async fn`'s body would; the
    // world's call future holds WASI resources, so it travels in a `Local`
    // to be `Send` (see `local.rs`), like `sleep`'s timer.
    let call: crate::runtime::LocalFuture<Result<Response, Error>> = Box::pin(async move {
        if request.uri().authority().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "cannot send to `{}`: the URI needs a scheme and an authority, e.g. http://127.0.0.1:8081/",
                    request.uri()
                ),
            ));
        }
        crate::runtime::send(request).await
    });
    crate::local::Local::new(call)
}

/// Limits for one call, set in the request's extensions; a limit the host
/// does not support is ignored.
///
/// ```
/// use std::time::Duration;
/// let mut request = reprise::http::Request::get("http://127.0.0.1:8081/")
///     .body(reprise::Body::empty())
///     .unwrap();
/// request.extensions_mut().insert(reprise::client::Timeouts {
///     connect: Some(Duration::from_millis(100)),
///     ..Default::default()
/// });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// For the connection to be established.
    pub connect: Option<Duration>,
    /// From sending the request to the first byte of the response.
    pub first_byte: Option<Duration>,
    /// Between two chunks of the response body.
    pub between_bytes: Option<Duration>,
}

/// Why a call failed: a [`kind`](Error::kind) to match on and a one-line
/// message that names the destination.
///
/// As a handler's answer it becomes `504` for a timeout and `502` for
/// anything else, with the message as the body, which is what a proxy
/// reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request cannot be sent as it is (no authority, a bad header).
    InvalidRequest,
    /// The host does not allow this destination.
    Denied,
    /// The host name did not resolve.
    Dns,
    /// Nothing accepted the connection.
    Refused,
    /// A [`Timeouts`] limit or the host's own passed.
    Timeout,
    /// TLS could not be established.
    Tls,
    /// The connection broke, or the other side did not speak valid HTTP.
    Connection,
    /// A body failed while it was sent or received.
    Body,
    /// Anything else the host reported.
    Other,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: String) -> Self {
        Error { kind, message }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<BodyError> for Error {
    fn from(error: BodyError) -> Self {
        Error::new(ErrorKind::Body, error.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        (status, Body::from(format!("{}\n", self.message))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_under_a_timeout_is_send_so_an_axum_handler_can_await_it() {
        fn assert_send<T: Send>(_: T) {}
        let request = http::Request::get("http://127.0.0.1:1/")
            .body(Body::empty())
            .unwrap();
        assert_send(crate::timeout(Duration::from_secs(1), send(request)));
    }

    #[test]
    fn a_relative_uri_is_refused_before_anything_is_sent() {
        let request = Request::new(Body::empty());
        let mut send = std::pin::pin!(send(request));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(Err(error)) = send.as_mut().poll(&mut cx) else {
            panic!("a relative URI was not refused at once");
        };
        assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        assert!(
            error
                .to_string()
                .contains("needs a scheme and an authority")
        );
    }

    #[test]
    fn errors_answer_504_for_timeouts_and_502_otherwise() {
        let timeout = Error::new(ErrorKind::Timeout, "timed out".into());
        let refused = Error::new(ErrorKind::Refused, "refused".into());
        assert_eq!(timeout.into_response().status(), 504);
        assert_eq!(refused.into_response().status(), 502);
    }
}
