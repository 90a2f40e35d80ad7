//! The handler of `leaky-counter-p3` and `leaky-counter-p2`.

use reprise::{Handler, IntoResponse, Request};
use std::sync::atomic::{AtomicU64, Ordering};

/// Meant as "visits so far", but it lives as long as the instance.
static VISITORS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
pub struct Counter;

impl Handler for Counter {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        let visitor = VISITORS.fetch_add(1, Ordering::Relaxed) + 1;
        format!("you are visitor {visitor}\n")
    }
}
