//! A guest's response body held to what its head promised: it may not end
//! short of its `content-length`, and it may not end because its instance
//! died.
//!
//! Both kinds of end look clean from the outside: `wasmtime-wasi-http`
//! closes a guest body the same way whether the guest finished it or its
//! store was dropped (a trap, a timeout), and it does not always manage to
//! report a body shorter than declared. Passed on as a clean end, hyper
//! writes a chunked terminator after a truncated body, or frames the next
//! response on a keep-alive connection as the rest of this one: a client
//! (or a pooling proxy) then takes a broken response for a complete one.
//! [`checked`] turns such an end into an error instead: before the head
//! is sent the server answers 500 or 504 in its place; after, hyper closes
//! the connection without a terminator, which every client reads as a
//! failure.
//!
//! This module decides nothing about statuses or metrics (the server module
//! does) and does not read ahead (the read-ahead module does).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::CONTENT_LENGTH;
use hyper::{Method, Response, StatusCode};
use wasmtime_wasi_http::WasiBody;

use super::failure::Failure;
use crate::instance::request::RequestTicket;
use crate::watched::{Watch, Watched};

/// Whether a response with `status`, to a `method` request, carries a body
/// on the wire. hyper sends none with the others and never reads theirs: a
/// `content-length` there describes the resource, not this body.
pub(crate) fn has_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

/// `response` (to a `method` request served for `ticket`) with its body
/// checked as it is read; see the module documentation.
pub(crate) fn checked(
    method: &Method,
    response: Response<WasiBody>,
    ticket: Arc<RequestTicket>,
) -> Response<WasiBody> {
    if !has_body(method, response.status()) {
        return response;
    }
    // A `content-length` hyper cannot parse is refused by hyper itself.
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    response.map(|inner| {
        let watch = Checked {
            ticket,
            declared,
            sent: 0,
        };
        Watched::new(inner, watch).boxed_unsync()
    })
}

/// Holds a guest body to its `content-length` and its instance's life.
struct Checked {
    ticket: Arc<RequestTicket>,
    /// The body's `content-length`, if its head declares one.
    declared: Option<u64>,
    /// Data bytes passed on so far.
    sent: u64,
}

impl Checked {
    /// Why the body, having ended now, is not complete.
    fn incomplete(&self) -> Option<wasmtime_wasi_http::Error> {
        // The instance's end explains a short body better than its length,
        // so it is checked first. It may also have died just after the
        // guest finished the body, before its end was read here: that body
        // is failed too, a cost paid only when a trap or a timeout follows a
        // response that closely (the next request on a serial instance
        // trapping, say): `wasmtime-wasi-http` ends both bodies alike. The
        // other way round, a truncated body taken for a whole one, is what
        // this module exists to prevent.
        if let Some(failure) = Failure::of_instance(&self.ticket) {
            return Some(match failure {
                Failure::Timeout => wasmtime_wasi_http::Error::HttpResponseTimeout,
                _ => wasmtime_wasi_http::Error::HttpResponseIncomplete,
            });
        }
        self.declared
            .is_some_and(|declared| declared != self.sent)
            .then_some(wasmtime_wasi_http::Error::HttpResponseBodySize(Some(
                self.sent,
            )))
    }
}

impl Watch for Checked {
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), wasmtime_wasi_http::Error> {
        let bytes = frame.data_ref().map_or(0, Bytes::len);
        self.sent = self.sent.saturating_add(bytes as u64);
        Ok(())
    }

    fn end(&mut self) -> Result<(), wasmtime_wasi_http::Error> {
        self.incomplete().map_or(Ok(()), Err)
    }

    /// An end that is not complete is reported as an error, so hyper must
    /// poll for it rather than take the end on trust.
    fn end_is_clean(&self) -> bool {
        self.incomplete().is_none()
    }
}
