//! A handler that must never be reused: `ReusePolicy::never()` gives every
//! request a fresh instance, on hosts that read the policy and on those that
//! only see the instance's backpressure.

use reprise::{Handler, IntoResponse, Request, ReusePolicy};

#[derive(Default)]
struct SingleUse;

impl Handler for SingleUse {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        // Whatever this handler leaves behind, no later request sees it.
        "Hello from an instance that serves no one else\n"
    }
}

reprise::export_p2!(SingleUse, policy = ReusePolicy::never());
