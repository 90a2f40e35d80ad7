//! Reuse, but one request at a time. `ReusePolicy::serial()` keeps a second
//! request off this instance while one is in flight, whatever concurrency
//! the host would allow: handy for code that is not safe to interleave.

use reprise::{Handler, IntoResponse, Request, ReusePolicy};
use std::time::Duration;

#[derive(Default)]
struct Serial;

impl Handler for Serial {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let ms = reprise::query_param(&request, "ms").and_then(|ms| ms.parse().ok());
        reprise::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
        // `most_in_flight` stays 1 on every instance.
        format!("{}\n", reprise::instance_stats())
    }
}

reprise::export_p3!(Serial, policy = ReusePolicy::serial());
