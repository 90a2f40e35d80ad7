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

mod url;

pub use url::Url;

use crate::{Body, BodyError, IntoResponse, Request, Response};
use http::StatusCode;
use std::fmt;
use std::time::Duration;

/// Sends `request` and returns the response as soon as its head arrives;
/// the response body streams.
///
/// The URI must be absolute (`http://127.0.0.1:8081/path`). A streamed
/// request body (for example the incoming request's own body) is sent while
/// the response is awaited. Hop-by-hop headers (RFC 9110 §7.6.1: those
/// `connection` names, `connection`, `keep-alive`, `proxy-connection`,
/// `te`, `trailer`, `transfer-encoding`, `upgrade`) are left out of the
/// request and of the response, so a proxy may copy headers across as they
/// are; `host` is left out too: the host sets it for the connection it opens.
///
/// A response body that ends short of its `content-length` (or runs past
/// it) fails with a [`BodyError`] where it ends, whatever the host does:
/// it never reads as a complete, shorter body. Forwarded as a response, it
/// makes the host cut the response off too.
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
        let mut request = request;
        remove_hop_by_hop(request.headers_mut());
        let head_only = request.method() == http::Method::HEAD;
        let target = request.uri().authority().map(|a| a.to_string());
        let mut response = crate::runtime::send(request).await?;
        remove_hop_by_hop(response.headers_mut());
        if !head_only {
            check_length(&mut response, target.unwrap_or_default());
        }
        Ok(response)
    });
    crate::local::Local::new(call)
}

/// Removes the hop-by-hop fields ([`reprise_policy::hop_by_hop`]): those
/// `connection` names, then the ones that always are. Most hosts drop
/// `connection` before a guest sees it; where one does not, the fields it
/// names are still known here.
pub(crate) fn remove_hop_by_hop(headers: &mut http::HeaderMap) {
    let connection = headers.get_all(http::header::CONNECTION).iter();
    let doomed: Vec<http::HeaderName> =
        reprise_policy::hop_by_hop::fields(connection.filter_map(|value| value.to_str().ok()))
            .filter_map(|name| http::HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Makes `response`'s body fail, as another service's failure (`502`),
/// where it breaks off or stops matching its `content-length`. Statuses
/// that carry no body are left alone.
fn check_length(response: &mut Response, target: String) {
    let status = response.status();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return;
    }
    let expected = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    let body = std::mem::take(response.body_mut());
    *response.body_mut() = Body::new(Upstream {
        body,
        expected,
        seen: 0,
        failed: false,
        target,
    });
}

/// A response body from another service, held to its `content-length`.
struct Upstream {
    body: Body,
    expected: Option<u64>,
    seen: u64,
    failed: bool,
    target: String,
}

impl Upstream {
    fn fail(&mut self, what: &str) -> BodyError {
        self.failed = true;
        let expected = match self.expected {
            Some(expected) => format!(" of its content-length of {expected}"),
            None => String::new(),
        };
        BodyError::with_status(
            StatusCode::BAD_GATEWAY,
            format!(
                "the response from {} {what} {} bytes{expected}",
                self.target, self.seen
            ),
        )
    }
}

impl http_body::Body for Upstream {
    type Data = bytes::Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<crate::body::Next> {
        use std::task::Poll;
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        let short = |this: &Self| this.expected.is_some_and(|expected| this.seen < expected);
        let error = match &frame {
            Some(Ok(frame)) => {
                let read = frame.data_ref().map_or(0, |data| data.len() as u64);
                self.seen = self.seen.saturating_add(read);
                if self.expected.is_some_and(|expected| self.seen > expected) {
                    Some(self.fail("went past its end at"))
                } else if frame.is_trailers() && short(&self) {
                    Some(self.fail("ended after"))
                } else {
                    None
                }
            }
            Some(Err(error)) => {
                let what = format!("broke off ({error}) after");
                Some(self.fail(&what))
            }
            None if short(&self) => Some(self.fail("ended after")),
            None => None,
        };
        match error {
            Some(error) => Poll::Ready(Some(Err(error))),
            None => Poll::Ready(frame),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.body.is_end_stream() && self.expected.is_none_or(|e| e == self.seen))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.expected {
            Some(expected) => http_body::SizeHint::with_exact(expected.saturating_sub(self.seen)),
            None => self.body.size_hint(),
        }
    }
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
/// anything else, with the message as the body (as JSON when the request
/// prefers it), which is what a proxy reports.
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

    /// The status this error answers with: `504` for a timeout, `502`
    /// otherwise.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
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
        crate::error::respond(self.status(), &self.message)
    }
}

/// A [`timeout`](crate::timeout) around a call: a [`ErrorKind::Timeout`],
/// so `timeout(d, send(request)).await??` needs no conversion.
impl From<crate::Elapsed> for Error {
    fn from(error: crate::Elapsed) -> Self {
        Error::new(ErrorKind::Timeout, error.to_string())
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

    /// A response announcing `announced` bytes whose body streams `sent`.
    fn checked(announced: &str, sent: &'static str) -> Body {
        let mut response = http::Response::builder()
            .header("content-length", announced)
            .body(Body::from(sent))
            .unwrap();
        check_length(&mut response, "127.0.0.1:1".into());
        response.into_body()
    }

    fn read(body: Body) -> Result<bytes::Bytes, BodyError> {
        let mut read = std::pin::pin!(body.bytes_limited(1024));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match read.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => panic!("a ready body was pending"),
        }
    }

    #[test]
    fn a_response_body_short_of_its_content_length_is_an_error_never_fewer_bytes() {
        let error = read(checked("57", "only twenty bytes...")).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert!(
            error
                .to_string()
                .contains("ended after 20 bytes of its content-length of 57"),
            "{error}"
        );
        let error = read(checked("3", "four")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("went past its end at 4 bytes of its content-length of 3"),
            "{error}"
        );
        assert_eq!(read(checked("4", "four")).unwrap(), "four");
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("connection", "close, X-Hop-Secret"),
            ("x-hop-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("x-end", "kept"),
        ] {
            headers.append(name, http::HeaderValue::from_static(value));
        }
        remove_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["x-end"]);
    }

    #[test]
    fn errors_answer_504_for_timeouts_and_502_otherwise() {
        let timeout = Error::new(ErrorKind::Timeout, "timed out".into());
        let refused = Error::new(ErrorKind::Refused, "refused".into());
        assert_eq!(timeout.into_response().status(), 504);
        assert_eq!(refused.into_response().status(), 502);
    }
}
