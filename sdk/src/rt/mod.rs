//! The boundary with the host: one half per world, and what both share.
//!
//! `p3` runs handlers on wit-bindgen's component-model async runtime; `p2`
//! runs them on a small executor of its own over `wasi:io` pollables. World-
//! neutral code (sleep, spawn) reaches whichever half exported the handler
//! through the [`Runtime`] the export installed. Only the half an export
//! macro names is linked, so a component imports one world's interfaces.

use crate::client::{self, ErrorKind};
use std::cell::Cell;
use std::pin::Pin;
use std::time::Duration;

#[cfg(feature = "p2")]
pub mod p2;
#[cfg(feature = "p3")]
pub mod p3;

pub(crate) type LocalFuture<T = ()> = Pin<Box<dyn Future<Output = T>>>;

/// What world-neutral code needs from the world that runs it.
trait Runtime {
    fn sleep(&self, duration: Duration) -> LocalFuture;
    fn spawn(&self, task: LocalFuture);
    /// Sends an outgoing request through the world's HTTP client.
    fn send(&self, request: crate::Request) -> LocalFuture<Result<crate::Response, client::Error>>;
    /// Raises or lowers backpressure on behalf of the reuse policy.
    fn policy_backpressure(&self, raise: bool);
}

thread_local! {
    static RUNTIME: Cell<Option<&'static dyn Runtime>> = const { Cell::new(None) };
}

/// Installs the world's runtime; the instance's first request does it, once.
fn install(runtime: &'static dyn Runtime) {
    RUNTIME.set(Some(runtime));
}

fn runtime() -> &'static dyn Runtime {
    RUNTIME.get().expect(
        "reprise: no runtime; sleep and spawn work inside a handler exported with \
         reprise::export_p2! or reprise::export_p3!",
    )
}

/// A runtime for the SDK's native unit tests, where neither world exists:
/// it records the backpressure the reuse policy asks for, and nothing else.
#[cfg(test)]
pub(crate) mod native {
    use super::{LocalFuture, Runtime};
    use std::cell::Cell;
    use std::time::Duration;

    struct Recorder;

    thread_local! {
        static BACKPRESSURE: Cell<i32> = const { Cell::new(0) };
    }

    impl Runtime for Recorder {
        fn sleep(&self, _: Duration) -> LocalFuture {
            panic!("native unit tests have no clock to sleep on")
        }
        fn spawn(&self, _: LocalFuture) {
            panic!("native unit tests have no executor to spawn on")
        }
        fn send(
            &self,
            _: crate::Request,
        ) -> LocalFuture<Result<crate::Response, crate::client::Error>> {
            panic!("native unit tests have no HTTP client")
        }
        fn policy_backpressure(&self, raise: bool) {
            BACKPRESSURE.set(BACKPRESSURE.get() + if raise { 1 } else { -1 });
        }
    }

    /// Installs the recorder for this test's thread.
    pub(crate) fn install() {
        super::install(&Recorder);
    }

    /// Backpressure the policy holds on the instance now: raises minus lowers.
    pub(crate) fn backpressure() -> i32 {
        BACKPRESSURE.get()
    }
}

/// Waits for `duration` without blocking other requests on this instance.
///
/// On WASIp3 other requests run meanwhile; on WASIp2 (one request per call)
/// the request's own spawned tasks do. `Duration::MAX` waits forever. The
/// future is `Send`, so it can be awaited inside an axum handler.
///
/// ```no_run
/// # async fn handler() {
/// reprise::sleep(std::time::Duration::from_millis(40)).await;
/// # }
/// ```
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    // The timer is made at the first poll, like an `async fn`'s body runs.
    let timer: LocalFuture = Box::pin(async move { runtime().sleep(duration).await });
    crate::local::Local::new(timer)
}

pub(crate) fn spawn(task: LocalFuture) {
    runtime().spawn(task)
}

pub(crate) fn send(request: crate::Request) -> LocalFuture<Result<crate::Response, client::Error>> {
    runtime().send(request)
}

pub(crate) fn policy_backpressure(raise: bool) {
    runtime().policy_backpressure(raise)
}

/// The request's id as the client or a proxy sent it (`x-request-id`, if it
/// is visible ASCII), read from the host's fields: a scan of a few names is
/// cheaper than a `HeaderMap` lookup once they are converted.
fn request_id(fields: &[(String, Vec<u8>)]) -> Option<&str> {
    let (_, value) = fields
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-request-id"))?;
    let visible = |byte: &u8| *byte == b'\t' || (b' '..=b'~').contains(byte);
    std::str::from_utf8(value)
        .ok()
        .filter(|text| text.as_bytes().iter().all(visible))
}

/// Nanoseconds for a WASI clock, saturating rather than wrapping: a sleep of
/// `Duration::MAX` means "forever", not "a few seconds".
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A request the host handed over that `http` cannot represent.
enum InvalidRequest {
    Method,
    Uri,
    Header,
}

/// Assembles an `http` request from the parts both worlds expose.
fn build_request(
    method: http::Method,
    scheme: Option<&str>,
    authority: Option<String>,
    path_with_query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: crate::Body,
) -> Result<crate::Request, InvalidRequest> {
    // The host's `String` becomes the URI's storage as it is, uncopied.
    let mut uri = match path_with_query {
        Some(path) => http::Uri::builder().path_and_query(path),
        None => http::Uri::builder().path_and_query("/"),
    };
    if let Some(authority) = authority.filter(|a| !a.is_empty()) {
        uri = uri.scheme(scheme.unwrap_or("http")).authority(authority);
    }
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri.build().map_err(|_| InvalidRequest::Uri)?;
    let map = request.headers_mut();
    map.reserve(headers.len());
    for (name, value) in headers {
        let name = http::HeaderName::try_from(name).map_err(|_| InvalidRequest::Header)?;
        let value = http::HeaderValue::try_from(value).map_err(|_| InvalidRequest::Header)?;
        map.append(name, value);
    }
    Ok(request)
}

/// Headers that describe one connection rather than the message, plus
/// `host`: the host sets them for the connection it uses, and refuses them
/// from a guest. Leaving them out is what lets a proxy copy headers across.
const CONNECTION_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Headers (or trailers) as WASI fields, without connection headers.
fn fields(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| !CONNECTION_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// A response's or an outgoing request's headers as WASI fields, with a
/// `content-length` added when the body's exact size is known (a whole body, or a stream such as an axum
/// response that knows its size), so the host need not fall back to chunking.
fn response_fields(headers: &http::HeaderMap, body: &crate::Body) -> Vec<(String, Vec<u8>)> {
    let mut fields = fields(headers);
    if let Some(length) = http_body::Body::size_hint(body).exact()
        && !headers.contains_key(http::header::CONTENT_LENGTH)
    {
        fields.push(("content-length".into(), length.to_string().into_bytes()));
    }
    fields
}

/// The `http` response for an outgoing call's answer.
fn build_response(
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: crate::Body,
    target: &str,
) -> Result<crate::Response, client::Error> {
    let invalid = || {
        let message = format!("{target} answered with a status or header that is not valid HTTP");
        client::Error::new(ErrorKind::Connection, message)
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).map_err(|_| invalid())?;
    let map = response.headers_mut();
    map.reserve(headers.len());
    for (name, value) in headers {
        let name = http::HeaderName::try_from(name).map_err(|_| invalid())?;
        let value = http::HeaderValue::try_from(value).map_err(|_| invalid())?;
        map.append(name, value);
    }
    Ok(response)
}

/// The parts of an outgoing request's URI that WASI sets one by one.
struct Target {
    scheme: http::uri::Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn of(uri: &http::Uri) -> Target {
        Target {
            scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority: uri.authority().map_or_else(String::new, |a| a.to_string()),
            path_with_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        }
    }
}

fn invalid_request(what: &str, target: &Target) -> client::Error {
    let message = format!(
        "cannot send to {}: the host rejected its {what}",
        target.authority
    );
    client::Error::new(ErrorKind::InvalidRequest, message)
}

/// The size a request announced in its `content-length`, as a body's hint.
fn announced_size(headers: &[(String, Vec<u8>)]) -> http_body::SizeHint {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse().ok())
        .map_or_else(http_body::SizeHint::new, http_body::SizeHint::with_exact)
}

/// Trailers the host handed over, as a `HeaderMap`; a field `http` cannot
/// represent fails the body rather than vanishing.
fn trailer_map(fields: Vec<(String, Vec<u8>)>) -> Result<http::HeaderMap, crate::BodyError> {
    let mut map = http::HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        let name = http::HeaderName::try_from(name);
        let value = http::HeaderValue::try_from(value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(crate::BodyError::new("the request's trailers are invalid"));
        };
        map.append(name, value);
    }
    Ok(map)
}

/// Conversions for one world's generated `Method`, `Scheme`, `ErrorCode`,
/// `RequestOptions` and outgoing request type: the two worlds generate
/// distinct but identically shaped types, so one definition serves both.
macro_rules! world_conversions {
    ($($types:ident)::+, $outgoing:ident) => {
        use $($types)::+::{ErrorCode, Method, RequestOptions, Scheme};

        /// Sets where an outgoing request goes and how.
        fn address(
            request: &$($types)::+::$outgoing,
            method: &http::Method,
            target: &super::Target,
        ) -> Result<(), $crate::client::Error> {
            let rejected = |what| move |()| super::invalid_request(what, target);
            request.set_method(&wasi_method(method)).map_err(rejected("method"))?;
            request
                .set_scheme(Some(&wasi_scheme(&target.scheme)))
                .map_err(rejected("scheme"))?;
            request
                .set_authority(Some(&target.authority))
                .map_err(rejected("authority"))?;
            request
                .set_path_with_query(Some(&target.path_with_query))
                .map_err(rejected("path"))
        }

        /// The request's [`Timeouts`]($crate::client::Timeouts) as WASI options.
        fn options(parts: &http::request::Parts) -> Option<RequestOptions> {
            let timeouts = parts.extensions.get::<$crate::client::Timeouts>()?;
            let options = RequestOptions::new();
            // A limit the host does not support is ignored, as documented.
            let _ = options.set_connect_timeout(timeouts.connect.map(super::nanos));
            let _ = options.set_first_byte_timeout(timeouts.first_byte.map(super::nanos));
            let _ = options.set_between_bytes_timeout(timeouts.between_bytes.map(super::nanos));
            Some(options)
        }

        fn method(method: Method) -> Result<http::Method, super::InvalidRequest> {
            Ok(match method {
                Method::Get => http::Method::GET,
                Method::Head => http::Method::HEAD,
                Method::Post => http::Method::POST,
                Method::Put => http::Method::PUT,
                Method::Delete => http::Method::DELETE,
                Method::Connect => http::Method::CONNECT,
                Method::Options => http::Method::OPTIONS,
                Method::Trace => http::Method::TRACE,
                Method::Patch => http::Method::PATCH,
                Method::Other(other) => http::Method::from_bytes(other.as_bytes())
                    .map_err(|_| super::InvalidRequest::Method)?,
            })
        }

        fn scheme(scheme: &Scheme) -> &str {
            match scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
                Scheme::Other(other) => other,
            }
        }

        fn error_code(invalid: super::InvalidRequest) -> ErrorCode {
            match invalid {
                super::InvalidRequest::Method => ErrorCode::HttpRequestMethodInvalid,
                super::InvalidRequest::Uri => ErrorCode::HttpRequestUriInvalid,
                super::InvalidRequest::Header => ErrorCode::HttpProtocolError,
            }
        }

        fn internal_error(message: impl ToString) -> ErrorCode {
            ErrorCode::InternalError(Some(message.to_string()))
        }

        fn wasi_method(method: &http::Method) -> Method {
            match *method {
                http::Method::GET => Method::Get,
                http::Method::HEAD => Method::Head,
                http::Method::POST => Method::Post,
                http::Method::PUT => Method::Put,
                http::Method::DELETE => Method::Delete,
                http::Method::CONNECT => Method::Connect,
                http::Method::OPTIONS => Method::Options,
                http::Method::TRACE => Method::Trace,
                http::Method::PATCH => Method::Patch,
                ref other => Method::Other(other.as_str().to_owned()),
            }
        }

        fn wasi_scheme(scheme: &http::uri::Scheme) -> Scheme {
            if *scheme == http::uri::Scheme::HTTP {
                Scheme::Http
            } else if *scheme == http::uri::Scheme::HTTPS {
                Scheme::Https
            } else {
                Scheme::Other(scheme.as_str().to_owned())
            }
        }

        /// What a failed outgoing call to `target` reports to the app.
        fn client_error(code: ErrorCode, target: &str) -> $crate::client::Error {
            use $crate::client::{Error, ErrorKind as Kind};
            let (kind, what) = match code {
                ErrorCode::ConnectionRefused => (Kind::Refused, "connection refused".into()),
                ErrorCode::DnsTimeout => (Kind::Dns, "DNS lookup timed out".into()),
                ErrorCode::DnsError(e) => (
                    Kind::Dns,
                    format!("DNS lookup failed ({})", e.rcode.as_deref().unwrap_or("no answer")),
                ),
                ErrorCode::DestinationNotFound => (Kind::Dns, "no such host".into()),
                ErrorCode::DestinationIpProhibited | ErrorCode::HttpRequestDenied => {
                    (Kind::Denied, "the host does not allow this destination".into())
                }
                ErrorCode::ConnectionTimeout => (Kind::Timeout, "timed out connecting".into()),
                ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
                    (Kind::Timeout, "timed out waiting for the response".into())
                }
                ErrorCode::ConnectionWriteTimeout => {
                    (Kind::Timeout, "timed out sending the request".into())
                }
                ErrorCode::TlsProtocolError
                | ErrorCode::TlsCertificateError
                | ErrorCode::TlsAlertReceived(_) => (Kind::Tls, format!("TLS failed ({code:?})")),
                ErrorCode::DestinationUnavailable
                | ErrorCode::DestinationIpUnroutable
                | ErrorCode::ConnectionTerminated
                | ErrorCode::ConnectionLimitReached
                | ErrorCode::HttpResponseIncomplete
                | ErrorCode::HttpProtocolError => {
                    (Kind::Connection, format!("connection failed ({code:?})"))
                }
                ErrorCode::HttpRequestMethodInvalid
                | ErrorCode::HttpRequestUriInvalid
                | ErrorCode::HttpRequestUriTooLong
                | ErrorCode::HttpRequestHeaderSectionSize(_)
                | ErrorCode::HttpRequestHeaderSize(_) => {
                    (Kind::InvalidRequest, format!("request rejected ({code:?})"))
                }
                ErrorCode::HttpRequestBodySize(_) | ErrorCode::HttpRequestLengthRequired => {
                    (Kind::Body, format!("request body rejected ({code:?})"))
                }
                ErrorCode::InternalError(Some(message)) => (Kind::Other, message),
                code => (Kind::Other, format!("{code:?}")),
            };
            Error::new(kind, format!("call to {target} failed: {what}"))
        }
    };
}
use world_conversions;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_stay_behind_and_a_whole_body_gets_its_length() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("host", "127.0.0.1:8080"),
            ("x-kept", "yes"),
        ] {
            headers.insert(name, http::HeaderValue::from_static(value));
        }
        let names: Vec<_> = response_fields(&headers, &crate::Body::from("hello"))
            .into_iter()
            .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(&value)))
            .collect();
        assert_eq!(names, ["x-kept: yes", "content-length: 5"]);
    }

    #[test]
    fn a_request_id_is_the_first_x_request_id_that_is_visible_ascii() {
        let fields = |list: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
            list.iter()
                .map(|(name, value)| (name.to_string(), value.to_vec()))
                .collect()
        };
        let sent = fields(&[
            ("host", b"a"),
            ("X-Request-Id", b"abc 1"),
            ("x-request-id", b"2"),
        ]);
        assert_eq!(request_id(&sent), Some("abc 1"));
        assert_eq!(
            request_id(&fields(&[("x-request-id", b"caf\xc3\xa9")])),
            None
        );
        assert_eq!(request_id(&fields(&[("x-request-ids", b"1")])), None);
    }

    #[test]
    fn a_call_target_defaults_to_http_and_the_root_path() {
        let target = Target::of(&"http://127.0.0.1:8081".parse().unwrap());
        assert_eq!(target.scheme, http::uri::Scheme::HTTP);
        assert_eq!(target.authority, "127.0.0.1:8081");
        assert_eq!(target.path_with_query, "/");
    }
}
