//! Hop-by-hop header fields (RFC 9110 §7.6.1): the fields that describe one
//! connection and must not be forwarded past it. The host removes them from
//! the request it hands a guest, from the guest's outgoing requests and
//! from the responses those get, so that a guest that copies headers across
//! (a proxy) forwards exactly the end-to-end ones.
//!
//! The fields a `Connection` header names are removed along with it. That
//! is the reason this runs before wasmtime sees the headers: wasmtime drops
//! `Connection` itself (a forbidden header), after which nobody could tell
//! which other fields it named.
//!
//! This module does not touch the headers a guest's response carries to the
//! client (wasmtime refuses the connection headers from a guest, and hyper
//! frames the response itself), nor `Host`: it is end to end.

use hyper::HeaderMap;
use hyper::header::{CONNECTION, HeaderName};

/// The hop-by-hop fields that are always removed, whether or not
/// `Connection` names them; `keep-alive` and `proxy-connection` are the
/// pre-standard ones that RFC 9110 §7.6.1 says to drop too.
const ALWAYS: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes from `headers` every field `Connection` names, then the fields
/// that are hop-by-hop by definition.
pub(crate) fn remove(headers: &mut HeaderMap) {
    // The common case (no connection headers at all) costs one lookup each.
    if !ALWAYS.iter().any(|name| headers.contains_key(*name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in ALWAYS {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        map.keys().map(HeaderName::as_str).collect()
    }

    #[test]
    fn fields_that_connection_names_go_with_it_and_end_to_end_fields_stay() {
        let mut headers = map(&[
            ("connection", "close, X-Hop-Secret"),
            ("connection", " x-other "),
            ("x-hop-secret", "1"),
            ("x-other", "2"),
            ("x-end", "3"),
            ("host", "example"),
        ]);
        remove(&mut headers);
        assert_eq!(names(&headers), ["x-end", "host"]);
    }

    #[test]
    fn every_hop_by_hop_field_goes_even_when_connection_is_absent() {
        let mut headers = map(&[
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-length", "5"),
        ]);
        remove(&mut headers);
        assert_eq!(names(&headers), ["content-length"]);
        assert!(ALWAYS.iter().all(|name| !headers.contains_key(*name)));
    }
}
