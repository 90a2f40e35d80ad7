//! A handler that must never be reused: `ReusePolicy::never()` gives every
//! request a fresh instance, on hosts that read the policy and on those that
//! only see the instance's backpressure.

use reprise::{Handler, IntoResponse, Request, ReusePolicy};

#[derive(Default)]
struct SingleUse;

impl Handler for SingleUse {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        // Always `requests=1`: no instance sees a second request.
        format!("{}\n", reprise::instance_stats())
    }
}

reprise::export_p2!(SingleUse, policy = ReusePolicy::never());
