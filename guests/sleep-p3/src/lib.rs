//! Sleeps `?ms=N` milliseconds, or forever without it, then answers. The
//! sleep is async: other requests on the instance run meanwhile.

use reprise::{Handler, IntoResponse, Request};
use std::time::Duration;

#[derive(Default)]
struct Sleep;

impl Handler for Sleep {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let ms = query_ms(&request);
        reprise::sleep(ms.map_or(Duration::MAX, Duration::from_millis)).await;
        format!("slept {} ms\n", ms.unwrap_or(u64::MAX))
    }
}

/// The `ms` query parameter, if it is a number.
fn query_ms(request: &Request) -> Option<u64> {
    let query = request.uri().query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms=")?.parse().ok())
}

reprise::export_p3!(Sleep);
