//! Sleeps `?ms=N` milliseconds, or forever without it, then answers. The
//! sleep blocks the whole instance, as synchronous code does on WASIp2.

use reprise::{Handler, IntoResponse, Request};
use std::time::Duration;

#[derive(Default)]
struct Sleep;

impl Handler for Sleep {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let ms = reprise::query_param(&request, "ms").and_then(|ms| ms.parse().ok());
        match ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
        format!("slept {} ms\n", ms.unwrap_or(u64::MAX))
    }
}

reprise::export_p2!(Sleep);
