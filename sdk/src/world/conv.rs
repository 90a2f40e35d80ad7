//! HTTP ⇄ WASI, the half both worlds share: from `http` types to the plain
//! lists both worlds' bindings take and give (`(String, Vec<u8>)` fields,
//! `u16` statuses), and back.
//!
//! The two worlds generate distinct but identically shaped enums (`Method`,
//! `ErrorCode`). Their conversions are plain functions in `p2/conv.rs` and
//! `p3/conv.rs`, so a call site finds them; the longer tables those
//! functions share are written once here, as the expression macros
//! [`method_from_wasi!`], [`method_to_wasi!`] and [`client_error!`].

use crate::client::{self, ErrorKind};
use std::cell::Cell;
use std::time::Duration;

/// The request's id as the client or a proxy sent it (`x-request-id`, if it
/// is visible ASCII), read from the host's fields: a scan of a few names is
/// cheaper than a `HeaderMap` lookup once they are converted.
pub(super) fn request_id(fields: &[(String, Vec<u8>)]) -> Option<&str> {
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
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A request the host handed over that `http` cannot represent.
pub(super) enum InvalidRequest {
    Method,
    Uri,
    Header,
}

/// A field name or value that `http` cannot represent.
struct InvalidField;

/// Appends the host's fields to `map`, in order; each caller says what an
/// invalid one means for it.
fn append_fields(
    map: &mut http::HeaderMap,
    fields: Vec<(String, Vec<u8>)>,
) -> Result<(), InvalidField> {
    // Not one of `http`'s standard names, so made from the host's string it
    // would be copied into an allocation of its own; yet hosts and proxies
    // add it to nearly every request (reprise reads it, see `request_id`).
    static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
    map.reserve(fields.len());
    for (name, value) in fields {
        let name = if name == X_REQUEST_ID.as_str() {
            X_REQUEST_ID.clone()
        } else {
            http::HeaderName::try_from(name).map_err(|_| InvalidField)?
        };
        let value = http::HeaderValue::try_from(value).map_err(|_| InvalidField)?;
        map.append(name, value);
    }
    Ok(())
}

/// Assembles an `http` request from the parts both worlds expose.
pub(super) fn build_request(
    method: http::Method,
    scheme: Option<&str>,
    authority: Option<String>,
    path_with_query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: crate::Body,
) -> Result<crate::Request, InvalidRequest> {
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri(scheme, authority, path_with_query).ok_or(InvalidRequest::Uri)?;
    append_fields(request.headers_mut(), headers).map_err(|_| InvalidRequest::Header)?;
    Ok(request)
}

/// The request's URI from the host's parts: the path alone, or (with an
/// authority) an absolute URI. Assembled from `Parts` rather than with a
/// `Builder`, whose steps each re-wrap the parts so far; the host's `String`s
/// become the URI's storage as they are, uncopied.
fn uri(
    scheme: Option<&str>,
    authority: Option<String>,
    path_with_query: Option<String>,
) -> Option<http::Uri> {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(match path_with_query {
        Some(path) => http::uri::PathAndQuery::try_from(path).ok()?,
        None => http::uri::PathAndQuery::from_static("/"),
    });
    if let Some(authority) = authority.filter(|a| !a.is_empty()) {
        parts.scheme = Some(match scheme {
            None | Some("http") => http::uri::Scheme::HTTP,
            Some("https") => http::uri::Scheme::HTTPS,
            Some(other) => other.parse().ok()?,
        });
        parts.authority = Some(http::uri::Authority::try_from(authority).ok()?);
    }
    http::Uri::from_parts(parts).ok()
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
pub(super) fn fields(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    wasi_fields(headers).collect()
}

fn wasi_fields(headers: &http::HeaderMap) -> impl Iterator<Item = (String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| !CONNECTION_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
}

/// Calls `f` with a response's or an outgoing request's headers as WASI
/// fields, with a `content-length` added when the body's exact size is
/// known (a whole body, or a stream such as an axum response that knows its
/// size), so the host need not fall back to chunking.
///
/// The list, and the added `content-length` field, are kept from call to
/// call on the instance's one thread: a response with no headers of its
/// own then allocates nothing here.
pub(super) fn with_response_fields<R>(
    headers: &http::HeaderMap,
    body: &crate::Body,
    f: impl FnOnce(&[(String, Vec<u8>)]) -> R,
) -> R {
    thread_local! {
        static LIST: Cell<Vec<(String, Vec<u8>)>> = const { Cell::new(Vec::new()) };
        static LENGTH: Cell<Option<(String, Vec<u8>)>> = const { Cell::new(None) };
    }
    let length = http_body::Body::size_hint(body)
        .exact()
        .filter(|_| headers.is_empty() || !headers.contains_key(http::header::CONTENT_LENGTH));
    let mut list = LIST.take();
    list.extend(wasi_fields(headers));
    if let Some(length) = length {
        let (name, mut value) = LENGTH
            .take()
            .unwrap_or_else(|| ("content-length".into(), Vec::new()));
        value.clear();
        decimal(length, &mut value);
        list.push((name, value));
    }
    let result = f(&list);
    if length.is_some() {
        LENGTH.set(list.pop());
    }
    list.clear();
    LIST.set(list);
    result
}

/// Appends `n` in decimal ASCII to `out`, without the formatting machinery
/// (and the allocation) of `to_string`.
fn decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0; 20]; // u64::MAX has 20
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// The `http` response for an outgoing call's answer.
pub(super) fn build_response(
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
    append_fields(response.headers_mut(), headers).map_err(|_| invalid())?;
    Ok(response)
}

/// The parts of an outgoing request's URI that WASI sets one by one.
pub(super) struct Target {
    pub(super) scheme: http::uri::Scheme,
    pub(super) authority: String,
    pub(super) path_with_query: String,
}

impl Target {
    pub(super) fn of(uri: &http::Uri) -> Target {
        Target {
            scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority: uri.authority().map_or_else(String::new, |a| a.to_string()),
            path_with_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        }
    }
}

pub(super) fn invalid_request(what: &str, target: &Target) -> client::Error {
    let message = format!(
        "cannot send to {}: the host rejected its {what}",
        target.authority
    );
    client::Error::new(ErrorKind::InvalidRequest, message)
}

/// The size a request announced in its `content-length`, as a body's hint.
pub(super) fn announced_size(headers: &[(String, Vec<u8>)]) -> http_body::SizeHint {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse().ok())
        .map_or_else(http_body::SizeHint::new, http_body::SizeHint::with_exact)
}

/// Trailers the host handed over, as a `HeaderMap`; a field `http` cannot
/// represent fails the body rather than vanishing.
pub(super) fn trailer_map(
    fields: Vec<(String, Vec<u8>)>,
) -> Result<http::HeaderMap, crate::BodyError> {
    let mut map = http::HeaderMap::new();
    append_fields(&mut map, fields)
        .map_err(|_| crate::BodyError::new("the request's trailers are invalid"))?;
    Ok(map)
}

/// `$method` (a world's `Method`) as `http` has it: the body of each world's
/// `conv::method`.
macro_rules! method_from_wasi {
    ($Method:ident, $method:expr) => {
        Ok(match $method {
            $Method::Get => http::Method::GET,
            $Method::Head => http::Method::HEAD,
            $Method::Post => http::Method::POST,
            $Method::Put => http::Method::PUT,
            $Method::Delete => http::Method::DELETE,
            $Method::Connect => http::Method::CONNECT,
            $Method::Options => http::Method::OPTIONS,
            $Method::Trace => http::Method::TRACE,
            $Method::Patch => http::Method::PATCH,
            $Method::Other(other) => http::Method::from_bytes(other.as_bytes())
                .map_err(|_| $crate::world::conv::InvalidRequest::Method)?,
        })
    };
}
pub(super) use method_from_wasi;

/// `$method` (an `http::Method`) as a world's `Method`: the body of each
/// world's `conv::wasi_method`.
macro_rules! method_to_wasi {
    ($Method:ident, $method:expr) => {
        match *$method {
            http::Method::GET => $Method::Get,
            http::Method::HEAD => $Method::Head,
            http::Method::POST => $Method::Post,
            http::Method::PUT => $Method::Put,
            http::Method::DELETE => $Method::Delete,
            http::Method::CONNECT => $Method::Connect,
            http::Method::OPTIONS => $Method::Options,
            http::Method::TRACE => $Method::Trace,
            http::Method::PATCH => $Method::Patch,
            ref other => $Method::Other(other.as_str().to_owned()),
        }
    };
}
pub(super) use method_to_wasi;

/// What a failed outgoing call to `$target` reports to the app, from a
/// world's `ErrorCode`: the body of each world's `conv::client_error`.
macro_rules! client_error {
    ($ErrorCode:ident, $code:expr, $target:expr) => {{
        use $crate::client::{Error, ErrorKind as Kind};
        let code = $code;
        let (kind, what) = match code {
            $ErrorCode::ConnectionRefused => (Kind::Refused, "connection refused".into()),
            $ErrorCode::DnsTimeout => (Kind::Dns, "DNS lookup timed out".into()),
            $ErrorCode::DnsError(e) => (
                Kind::Dns,
                format!(
                    "DNS lookup failed ({})",
                    e.rcode.as_deref().unwrap_or("no answer")
                ),
            ),
            $ErrorCode::DestinationNotFound => (Kind::Dns, "no such host".into()),
            $ErrorCode::DestinationIpProhibited | $ErrorCode::HttpRequestDenied => (
                Kind::Denied,
                "the host does not allow this destination".into(),
            ),
            $ErrorCode::ConnectionTimeout => (Kind::Timeout, "timed out connecting".into()),
            $ErrorCode::ConnectionReadTimeout | $ErrorCode::HttpResponseTimeout => {
                (Kind::Timeout, "timed out waiting for the response".into())
            }
            $ErrorCode::ConnectionWriteTimeout => {
                (Kind::Timeout, "timed out sending the request".into())
            }
            $ErrorCode::TlsProtocolError
            | $ErrorCode::TlsCertificateError
            | $ErrorCode::TlsAlertReceived(_) => (Kind::Tls, format!("TLS failed ({code:?})")),
            $ErrorCode::DestinationUnavailable
            | $ErrorCode::DestinationIpUnroutable
            | $ErrorCode::ConnectionTerminated
            | $ErrorCode::ConnectionLimitReached
            | $ErrorCode::HttpResponseIncomplete
            | $ErrorCode::HttpProtocolError => {
                (Kind::Connection, format!("connection failed ({code:?})"))
            }
            $ErrorCode::HttpRequestMethodInvalid
            | $ErrorCode::HttpRequestUriInvalid
            | $ErrorCode::HttpRequestUriTooLong
            | $ErrorCode::HttpRequestHeaderSectionSize(_)
            | $ErrorCode::HttpRequestHeaderSize(_) => {
                (Kind::InvalidRequest, format!("request rejected ({code:?})"))
            }
            $ErrorCode::HttpRequestBodySize(_) | $ErrorCode::HttpRequestLengthRequired => {
                (Kind::Body, format!("request body rejected ({code:?})"))
            }
            $ErrorCode::InternalError(Some(message)) => (Kind::Other, message),
            code => (Kind::Other, format!("{code:?}")),
        };
        Error::new(kind, format!("call to {} failed: {what}", $target))
    }};
}
pub(super) use client_error;

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
        let names = |body: &crate::Body| {
            with_response_fields(&headers, body, |fields| {
                fields
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value)))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            names(&crate::Body::from("hello")),
            ["x-kept: yes", "content-length: 5"]
        );
        // The kept list and field carry nothing over to the next call.
        assert_eq!(
            names(&crate::Body::from("hi")),
            ["x-kept: yes", "content-length: 2"]
        );
        assert_eq!(names(&crate::Body::channel().1), ["x-kept: yes"]);
    }

    #[test]
    fn a_request_keeps_its_headers_in_order_whatever_their_case() {
        let fields = [("x-request-id", "a"), ("host", "h"), ("X-Request-Id", "b")]
            .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()));
        let request = build_request(
            http::Method::GET,
            None,
            None,
            None,
            fields.to_vec(),
            crate::Body::empty(),
        );
        let Ok(request) = request else {
            panic!("valid fields")
        };
        let ids: Vec<_> = request.headers().get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(request.headers()["host"], "h");
    }

    #[test]
    fn a_content_length_is_the_decimal_size() {
        for n in [0, 7, 10, 4096, u64::MAX] {
            let mut out = b"x".to_vec();
            decimal(n, &mut out);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn a_request_uri_is_its_path_or_with_an_authority_an_absolute_uri() {
        let uri = |scheme, authority: Option<&str>, path: Option<&str>| {
            uri(scheme, authority.map(Into::into), path.map(Into::into)).map(|uri| uri.to_string())
        };
        assert_eq!(uri(None, None, None).as_deref(), Some("/"));
        assert_eq!(uri(None, Some(""), Some("/a?b")).as_deref(), Some("/a?b"));
        assert_eq!(
            uri(None, Some("h:1"), Some("/a")).as_deref(),
            Some("http://h:1/a")
        );
        assert_eq!(
            uri(Some("https"), Some("h"), None).as_deref(),
            Some("https://h/")
        );
        assert_eq!(
            uri(Some("ws"), Some("h"), Some("/")).as_deref(),
            Some("ws://h/")
        );
        assert_eq!(uri(None, Some("bad host"), None), None);
        assert_eq!(uri(None, None, Some("/a b")), None);
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

    #[test]
    fn a_field_http_cannot_hold_fails_the_request_the_response_and_the_trailers() {
        let bad = || {
            vec![
                ("x-ok".to_owned(), b"1".to_vec()),
                ("bad name".to_owned(), b"2".to_vec()),
            ]
        };
        let request = build_request(
            http::Method::GET,
            None,
            None,
            None,
            bad(),
            crate::Body::empty(),
        );
        assert!(matches!(request, Err(InvalidRequest::Header)));
        let response =
            build_response(200, bad(), crate::Body::empty(), "127.0.0.1:8081").unwrap_err();
        assert_eq!(response.kind(), ErrorKind::Connection);
        assert!(trailer_map(bad()).is_err());
        let good = vec![
            ("x-a".to_owned(), b"1".to_vec()),
            ("x-a".to_owned(), b"2".to_vec()),
        ];
        assert_eq!(trailer_map(good).unwrap().get_all("x-a").iter().count(), 2);
    }
}
