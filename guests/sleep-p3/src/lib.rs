//! Sleeps `?ms=N` milliseconds, or forever without it, then answers. The
//! sleep is async: other requests on the instance run meanwhile.

use reprise::{Handler, IntoResponse, Request};
use std::time::Duration;

#[derive(Default)]
struct Sleep;

impl Handler for Sleep {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let ms = reprise::query_param(&request, "ms").and_then(|ms| ms.parse().ok());
        reprise::sleep(ms.map_or(Duration::MAX, Duration::from_millis)).await;
        format!("slept {} ms\n", ms.unwrap_or(u64::MAX))
    }
}

reprise::export_p3!(Sleep);
