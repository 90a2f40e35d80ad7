//! The WASIp3 world: `wasi:http/handler@0.3.0` on wit-bindgen's async runtime.
//!
//! Each request is a component-model task; requests on one instance
//! interleave at every `.await`, which is why the scope travels with futures.
//! The response goes back as soon as the handler returns it, and its body is
//! written by a task that stays in the request's scope. Outgoing calls go
//! through `wasi:http/client@0.3.0`; dropping one cancels its subtask, and
//! the host closes the connection.

mod body;
mod client;
mod conv;
mod entry;

pub use entry::handle;

use crate::runtime::{LocalFuture, Runtime};
use std::time::Duration;

/// The p3 runtime: wit-bindgen's executor, clock and client.
struct P3;

impl Runtime for P3 {
    fn sleep(&self, duration: Duration) -> LocalFuture {
        Box::pin(wasip3::clocks::monotonic_clock::wait_for(
            super::conv::nanos(duration),
        ))
    }

    fn spawn(&self, task: LocalFuture) {
        wasip3::spawn_local(task);
    }

    fn send(
        &self,
        request: crate::Request,
    ) -> LocalFuture<Result<crate::Response, crate::client::Error>> {
        Box::pin(client::send(request))
    }

    fn policy_backpressure(&self, raise: bool) {
        crate::hold::adjust(raise);
    }
}
