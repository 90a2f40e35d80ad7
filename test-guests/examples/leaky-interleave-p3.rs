//! Anti-pattern: request state in a `thread_local!` across an `.await`. A
//! request stores its path, awaits, and reads the path back. Alone, or one
//! after another, every request reads its own; when two requests interleave
//! on one instance, the later one overwrites the value during the await. Only
//! concurrent reuse shows it.

use reprise::{Handler, IntoResponse, Request};
use std::cell::RefCell;
use std::time::Duration;

thread_local! {
    /// Meant as "the current request's path": there is no such thing once
    /// requests interleave.
    static CURRENT_PATH: RefCell<String> = const { RefCell::new(String::new()) };
}

#[derive(Default)]
struct Echo;

impl Handler for Echo {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        CURRENT_PATH.set(request.uri().to_string());
        // Stands for a database or upstream call.
        reprise::sleep(Duration::from_millis(5)).await;
        format!(
            "you asked for {}\n",
            CURRENT_PATH.with_borrow(String::clone)
        )
    }
}

reprise::export_p3!(Echo);
