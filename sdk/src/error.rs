//! The SDK's errors, and the one way they answer a client.
//!
//! Every error reprise returns is an [`IntoResponse`]: a handler returns
//! `Result<_, E>` (or uses `?`) and the client gets the error's status and
//! its one-line message. The message is plain text, or `{"error": "…"}` as
//! `application/json` when the request prefers JSON: its `Accept` header
//! ranks a JSON type first, or the handler read its body with
//! [`Json`](crate::Json). So a JSON API needs no error wrapper of its own.
//!
//! What this module does not do: log, retry, or hide the message. The
//! messages name what failed (a destination, a limit, a key) and are meant
//! for the client; nothing internal goes into them.

use crate::{Body, IntoResponse, Response};
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use std::cell::Cell;
use std::fmt;

crate::request_local! {
    /// Whether this request's errors answer in JSON.
    static PREFERS_JSON: Cell<bool> = Cell::new(false);
}

/// Notes that the current request's errors answer in JSON (the handler
/// read JSON from it). Outside a request it does nothing.
pub(crate) fn prefer_json() {
    PREFERS_JSON.try_with(|prefers| prefers.set(true));
}

/// Notes from `request`'s `Accept` header whether its errors answer in
/// JSON. Runs in the request's scope, before the handler.
pub(crate) fn negotiate(request: &crate::Request) {
    if accepts_json_first(request.headers()) {
        prefer_json();
    }
}

/// Whether `Accept` ranks a JSON type (`application/json`, `…+json`) above
/// every other type it names; ties go to the one listed first.
fn accepts_json_first(headers: &http::HeaderMap) -> bool {
    let mut best: Option<(f32, bool)> = None;
    let entries = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','));
    for entry in entries {
        let mut parts = entry.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|param| param.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let json = media == "application/json" || media.ends_with("+json");
        if q > 0.0 && best.is_none_or(|(top, _)| q > top) {
            best = Some((q, json));
        }
    }
    best.is_some_and(|(_, json)| json)
}

/// The answer for an error: `status` with `message` (one line), as JSON
/// when the current request prefers it, as text otherwise.
pub(crate) fn respond(status: StatusCode, message: &str) -> Response {
    let json = PREFERS_JSON.try_with(Cell::get).unwrap_or(false);
    let (body, content_type) = if json {
        (
            format!("{{\"error\":{}}}\n", json_string(message)),
            "application/json",
        )
    } else {
        (format!("{message}\n"), "text/plain; charset=utf-8")
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `text` as a JSON string literal (RFC 8259 §7), without needing serde.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why a body could not be read or written: the client went away, the
/// upload broke off or was too large, a producer called
/// [`BodyWriter::abort`](crate::BodyWriter::abort), or (with the `json`
/// feature) the body was not the JSON expected.
///
/// As a response it is its [`status`](BodyError::status) with its message,
/// so `?` on a request body answers the client sensibly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    message: String,
    status: StatusCode,
}

impl BodyError {
    /// A body error answered with `400 Bad Request`.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, message)
    }

    /// A body error answered with `status`: `413` past a limit, `415` for a
    /// type the reader does not take, `502` for another service's response
    /// that broke off.
    pub(crate) fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        BodyError {
            message: message.into(),
            status,
        }
    }

    /// The status that answers a request whose body failed this way: `413`
    /// for a body over its limit, `415` for a content type the reader does
    /// not take, `502` for another service's response that broke off, `400`
    /// otherwise.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BodyError {}

/// The error's status (`400`, `413`, `415` or `502`) with its message.
impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        respond(self.status, &self.message)
    }
}

/// A [`timeout`](crate::timeout) ran out: the future was dropped unfinished.
///
/// As a response it is `504 Gateway Timeout`: what timed out is almost
/// always a call to another service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(pub(crate) std::time::Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {} ms", self.0.as_millis())
    }
}

impl std::error::Error for Elapsed {}

/// `504 Gateway Timeout` with the error's one line.
impl IntoResponse for Elapsed {
    fn into_response(self) -> Response {
        respond(StatusCode::GATEWAY_TIMEOUT, &self.to_string())
    }
}

/// The host's key-value store ([`kv`](crate::kv)) or configuration
/// ([`config`](crate::config)) could not answer: it is missing, full,
/// denied or failing. `kv::Error` and `config::Error` are this type.
///
/// As a response it is `503 Service Unavailable` with its one line: a client
/// can only wait it out.
#[cfg(any(feature = "kv", feature = "config"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "kv", feature = "config"))))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    /// What failed: "key-value store" or "configuration".
    store: &'static str,
    message: String,
}

#[cfg(any(feature = "kv", feature = "config"))]
impl StoreError {
    pub(crate) fn new(store: &'static str, message: impl Into<String>) -> Self {
        StoreError {
            store,
            message: message.into(),
        }
    }
}

#[cfg(any(feature = "kv", feature = "config"))]
impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A host's message may name the store already; say it once.
        if self.message.contains(self.store) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.store, self.message)
        }
    }
}

#[cfg(any(feature = "kv", feature = "config"))]
impl std::error::Error for StoreError {}

/// `503 Service Unavailable` with the error's one line.
#[cfg(any(feature = "kv", feature = "config"))]
impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        respond(StatusCode::SERVICE_UNAVAILABLE, &self.to_string())
    }
}

/// Any error reprise returns, for a handler that meets several kinds: `?`
/// converts a [`BodyError`], an [`Elapsed`], a
/// [`client::Error`](crate::client::Error) or a `StoreError` into it, and
/// as a response it answers exactly as the original would (status, one
/// line, JSON when the request prefers it).
///
/// ```no_run
/// use reprise::{Request, client};
/// use std::time::Duration;
///
/// async fn forward(request: Request) -> Result<String, reprise::Error> {
///     let note = request.into_body().bytes_limited(1024).await?; // 400, 413
///     let call = client::send(reprise::http::Request::post("http://127.0.0.1:8081/")
///         .body(note.into())
///         .expect("a valid request"));
///     let answer = reprise::timeout(Duration::from_secs(1), call).await??; // 504, 502
///     Ok(answer.into_body().text().await?)
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        respond(self.status, &self.message)
    }
}

impl From<BodyError> for Error {
    fn from(error: BodyError) -> Self {
        Error {
            status: error.status,
            message: error.message,
        }
    }
}

impl From<Elapsed> for Error {
    fn from(error: Elapsed) -> Self {
        Error {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: error.to_string(),
        }
    }
}

impl From<crate::client::Error> for Error {
    fn from(error: crate::client::Error) -> Self {
        Error {
            status: error.status(),
            message: error.to_string(),
        }
    }
}

#[cfg(any(feature = "kv", feature = "config"))]
impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &'static str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_is_preferred_only_when_accept_ranks_it_first() {
        assert!(accepts_json_first(&accept("application/json")));
        assert!(accepts_json_first(&accept("application/problem+json, */*")));
        assert!(accepts_json_first(&accept(
            "text/plain;q=0.5, application/json"
        )));
        assert!(!accepts_json_first(&accept("*/*")));
        assert!(!accepts_json_first(&accept("text/html, application/json")));
        assert!(!accepts_json_first(&accept(
            "application/json;q=0, text/plain"
        )));
        assert!(!accepts_json_first(&http::HeaderMap::new()));
    }

    #[test]
    fn messages_are_escaped_as_json_strings() {
        assert_eq!(json_string("a \"b\"\\\n\u{1}é"), r#""a \"b\"\\\n\u0001é""#);
    }

    #[test]
    fn outside_a_request_errors_answer_text_with_their_status() {
        let response =
            BodyError::with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "no").into_response();
        assert_eq!(response.status(), 415);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let response = Elapsed(std::time::Duration::from_millis(200)).into_response();
        assert_eq!(response.status(), 504);
        assert_eq!(
            response.body().as_full().unwrap(),
            "timed out after 200 ms\n"
        );
    }
}
