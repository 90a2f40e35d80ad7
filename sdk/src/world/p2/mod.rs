//! The WASIp2 world: `wasi:http/incoming-handler@0.2` driven by a small
//! executor of reprise's own.
//!
//! A p2 export is a synchronous call, one request at a time. reprise runs the
//! same async handler inside it on a single-threaded executor that sleeps in
//! `wasi:io/poll.poll` until a pollable (a timer, a stream) is ready. The call
//! returns once the handler, the body and every task the request spawned are
//! done, so post-response work still finishes inside the request. Outgoing
//! calls go through `wasi:http/outgoing-handler`; dropping one drops its
//! `future-incoming-response`, and the host closes the connection.

mod body;
mod client;
mod conv;
mod entry;
mod executor;

pub use entry::handle;

use crate::runtime::{LocalFuture, Runtime};
use std::time::Duration;

/// The p2 runtime. `RETIRES` says whether the exported policy can retire an
/// instance (never, request or memory limits).
///
/// A p2 call is never concurrent, so retiring is the only policy work that
/// needs backpressure. Without it, `policy_backpressure` is a no-op and the
/// component holds no `backpressure.inc`/`.dec` built-ins, which keeps it
/// loadable on hosts without component-model async support (unless the app
/// itself calls [`retire`](crate::instance::retire) or [`hold`](crate::instance::hold)).
struct P2<const RETIRES: bool>;

impl<const RETIRES: bool> Runtime for P2<RETIRES> {
    fn sleep(&self, duration: Duration) -> LocalFuture {
        let timer =
            wasip2::clocks::monotonic_clock::subscribe_duration(super::conv::nanos(duration));
        Box::pin(executor::ready(timer))
    }

    fn spawn(&self, task: LocalFuture) {
        executor::spawn(task);
    }

    fn send(
        &self,
        request: crate::Request,
    ) -> LocalFuture<Result<crate::Response, crate::client::Error>> {
        Box::pin(client::send(request))
    }

    fn policy_backpressure(&self, raise: bool) {
        if RETIRES {
            crate::hold::adjust(raise);
        }
    }
}
