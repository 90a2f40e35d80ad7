//! The boundary with the host: one half per world, and what both share.
//!
//! `p3` runs handlers on wit-bindgen's component-model async runtime; `p2`
//! runs them on a small executor of its own over `wasi:io` pollables. World-
//! neutral code (sleep, spawn) reaches whichever half exported the handler
//! through the [`Runtime`] the export installed. Only the half an export
//! macro names is linked, so a component imports one world's interfaces.

use std::cell::Cell;
use std::pin::Pin;
use std::time::Duration;

#[cfg(feature = "p2")]
pub mod p2;
#[cfg(feature = "p3")]
pub mod p3;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// What world-neutral code needs from the world that runs it.
trait Runtime {
    fn sleep(&self, duration: Duration) -> LocalFuture;
    fn spawn(&self, task: LocalFuture);
    /// Raises or lowers backpressure on behalf of the reuse policy.
    fn policy_backpressure(&self, raise: bool);
}

thread_local! {
    static RUNTIME: Cell<Option<&'static dyn Runtime>> = const { Cell::new(None) };
}

fn install(runtime: &'static dyn Runtime) {
    RUNTIME.set(Some(runtime));
}

fn runtime() -> &'static dyn Runtime {
    RUNTIME.get().expect(
        "reprise: no runtime; sleep and spawn work inside a handler exported with \
         reprise::export_p2! or reprise::export_p3!",
    )
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

pub(crate) fn policy_backpressure(raise: bool) {
    runtime().policy_backpressure(raise)
}

/// The request's id as the client or a proxy sent it.
fn request_id_header(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("x-request-id").and_then(|id| id.to_str().ok())
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
    let mut uri = http::Uri::builder().path_and_query(path_with_query.as_deref().unwrap_or("/"));
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

/// Headers (or trailers) as WASI fields.
fn fields(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// The response's headers as WASI fields, with a `content-length` added when
/// the body's exact size is known (a whole body, or a stream such as an axum
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

/// Conversions for one world's generated `Method`, `Scheme` and `ErrorCode`:
/// the two worlds generate distinct but identically shaped types, so one
/// definition serves both.
macro_rules! world_conversions {
    ($($types:ident)::+) => {
        use $($types)::+::{ErrorCode, Method, Scheme};

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
    };
}
use world_conversions;
