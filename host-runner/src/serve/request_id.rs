//! Each request's id: the client's `x-request-id` when it is usable,
//! otherwise a fresh one ([`RequestIds`]), written back to the request so
//! the guest sees the same id as the logs.
//!
//! This module does not log and does not label guest output (the instance's
//! ticket carries the id there).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// The header carrying a request's id, read from the client (or a proxy in
/// front) and set for the guest, whose SDK reads it too.
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id kept; longer (or non-printable) ones are
/// replaced, so a client cannot flood every log line.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Gives each request an id: the client's `x-request-id` when it is usable,
/// otherwise a fresh one that reveals nothing (not how many requests the
/// process served, not which instance serves it): a counter hashed with a
/// key drawn at random per process.
pub(super) struct RequestIds {
    /// std's hasher keys are seeded randomly per process: enough to hide
    /// the counter from a client, without a dependency.
    key: RandomState,
    next: AtomicU64,
}

impl RequestIds {
    pub(super) fn new() -> Self {
        Self {
            key: RandomState::new(),
            next: AtomicU64::new(1),
        }
    }

    /// The request's id, written back to `headers` when it was generated or
    /// replaced, so the guest sees the same id as the logs.
    pub(super) fn assign(&self, headers: &mut HeaderMap) -> Arc<str> {
        if let Some(id) = headers
            .get(&REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
        {
            return id.into();
        }
        let hex = hex16(self.key.hash_one(self.next.fetch_add(1, Ordering::Relaxed)));
        // Hex digits always make a valid header value.
        if let Ok(value) = HeaderValue::from_bytes(&hex) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        std::str::from_utf8(&hex).unwrap_or_default().into()
    }
}

/// `n` as 16 lowercase hex digits, as `{:016x}` writes it, without the
/// formatting machinery and its `String` (this runs on every request).
fn hex16(n: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[(n >> (60 - 4 * i)) as usize & 0xf];
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_written_as_format_would_write_them() {
        for n in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(hex16(n), format!("{n:016x}").as_bytes());
        }
    }

    #[test]
    fn a_usable_client_id_is_kept_and_a_missing_one_is_generated_and_set() {
        let ids = RequestIds::new();
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(&*ids.assign(&mut headers), "abc-123");

        let mut headers = HeaderMap::new();
        let first = ids.assign(&mut headers);
        assert_eq!(first.len(), 16);
        assert_eq!(headers[&REQUEST_ID_HEADER], &*first);
        assert_ne!(ids.assign(&mut HeaderMap::new()), first);

        let mut headers = HeaderMap::new();
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_str(&long).expect("ascii"),
        );
        let replaced = ids.assign(&mut headers);
        assert_ne!(&*replaced, long);
        assert_eq!(headers[&REQUEST_ID_HEADER], &*replaced);
    }
}
