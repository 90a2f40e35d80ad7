//! Hop-by-hop header fields (RFC 9110 §7.6.1): the fields that describe one
//! connection and must not be forwarded past it. The host removes them from
//! the request it hands a guest, from the guest's outgoing requests and
//! from the responses those get, so that a guest that copies headers across
//! (a proxy) forwards exactly the end-to-end ones.
//!
//! Which fields those are is `reprise_policy::hop_by_hop`'s to say (the
//! SDK's client strips the same ones); this module removes them from
//! hyper's header maps. The fields a `Connection` header names go with it,
//! which is why this runs before wasmtime sees the headers: wasmtime drops
//! `Connection` itself (a forbidden header), after which nobody could tell
//! which other fields it named.
//!
//! This module does not touch the headers a guest's response carries to the
//! client (wasmtime refuses the connection headers from a guest, and hyper
//! frames the response itself), nor `Host`: it is end to end.

use hyper::HeaderMap;
use hyper::header::{CONNECTION, HeaderName};
use reprise_policy::hop_by_hop::{ALWAYS, fields};

/// Removes from `headers` every field `Connection` names, then the fields
/// that are hop-by-hop by definition ([`ALWAYS`]).
pub(crate) fn remove(headers: &mut HeaderMap) {
    // The common case (no connection headers at all) is one pass over the
    // few fields a request has: a lookup by `&str` per hop-by-hop name
    // would parse and hash each name again, on every request.
    if !headers.keys().any(|name| ALWAYS.contains(&name.as_str())) {
        return;
    }
    let connection = headers.get_all(CONNECTION).iter();
    let doomed: Vec<HeaderName> = fields(connection.filter_map(|value| value.to_str().ok()))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in doomed {
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
