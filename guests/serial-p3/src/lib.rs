//! Reuse, but one request at a time. `ReusePolicy::serial()` keeps a second
//! request off this instance while one is in flight, whatever concurrency
//! the host would allow: handy for code that is not safe to interleave, such
//! as this report written step by step into one scratch buffer that each
//! request reuses (the reason to keep the instance at all). `?ms=N` makes
//! the step between the two lines take N ms.

use reprise::{Handler, IntoResponse, Request, ReusePolicy};
use std::cell::RefCell;
use std::time::Duration;

#[derive(Default)]
struct Report {
    /// Instance state, reused by every request: two requests at once would
    /// write their lines into each other's report.
    scratch: RefCell<String>,
}

impl Handler for Report {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let ms = reprise::query_param(&request, "ms").and_then(|ms| ms.parse().ok());
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        {
            let mut scratch = self.scratch.borrow_mut();
            scratch.clear();
            scratch.push_str(&format!("report for {target}\n"));
        }
        reprise::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
        let mut scratch = self.scratch.borrow_mut();
        scratch.push_str("end of report\n");
        scratch.clone()
    }
}

reprise::export_p3!(Report, policy = ReusePolicy::serial());
