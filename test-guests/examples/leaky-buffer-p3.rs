//! Anti-pattern: a buffer that grows with every request. Each request
//! appends a 64 KiB "audit record" to a static log that nothing ever trims.
//! Responses stay correct; only the instance's linear memory shows it.

use reprise::{Handler, IntoResponse, Request};
use std::cell::RefCell;

/// Bytes kept per request.
const RECORD_BYTES: usize = 64 * 1024;

thread_local! {
    static AUDIT_LOG: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Audited;

impl Handler for Audited {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let mut record = request.uri().to_string().into_bytes();
        record.resize(RECORD_BYTES, b' ');
        AUDIT_LOG.with_borrow_mut(|log| log.push(record));
        "ok\n"
    }
}

reprise::export_p3!(Audited);
