//! Holding backpressure through a slow step. While the guard lives, the host
//! starts no new request on this instance and sends them to another one;
//! dropping the guard opens the instance again.

use reprise::{Handler, IntoResponse, Request, instance};
use std::time::Duration;

#[derive(Default)]
struct Quiet;

impl Handler for Quiet {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let hold_ms = reprise::query_param(&request, "hold_ms").and_then(|ms| ms.parse().ok());
        match hold_ms {
            Some(ms) => {
                let _quiet = instance::hold();
                // Stand-in for work that must not share the instance, such as
                // rebuilding a cache that other requests read.
                reprise::sleep(Duration::from_millis(ms)).await;
                format!("held the instance for {ms} ms\n")
            }
            None => "Hello, WASI!\n".to_owned(),
        }
    }
}

reprise::export_p3!(Quiet);
