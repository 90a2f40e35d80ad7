//! Anti-pattern: request coalescing through instance globals, with a bug
//! only concurrency reaches. The first request "fetches" while the flag
//! `FETCHING` is up; a request arriving meanwhile waits for the fetched value
//! instead of fetching again, but the fetcher never publishes it, so the
//! waiter never finishes. One request at a time, every request fetches and
//! answers.

use reprise::{Handler, IntoResponse, Request};
use std::cell::{Cell, RefCell};
use std::time::Duration;

thread_local! {
    static FETCHING: Cell<bool> = const { Cell::new(false) };
    /// Meant to hold the fetched value for the waiters; never filled in.
    static SHARED: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Coalescing;

impl Handler for Coalescing {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        if FETCHING.get() {
            loop {
                if let Some(value) = SHARED.with_borrow(Clone::clone) {
                    return value;
                }
                reprise::sleep(Duration::from_millis(1)).await;
            }
        }
        FETCHING.set(true);
        // Stands for the upstream call being coalesced.
        reprise::sleep(Duration::from_millis(5)).await;
        FETCHING.set(false);
        "fetched\n".to_owned()
    }
}

reprise::export_p3!(Coalescing);
