//! Anti-pattern: a `RefCell` borrow of instance state held across an
//! `.await`. Alone, or one after another, every request finds the cell free;
//! when two requests interleave on one instance, the second `borrow_mut`
//! finds the first still holding it and panics, which traps the instance.
//! Only concurrent reuse shows it.

use reprise::{Handler, IntoResponse, Request};
use std::cell::RefCell;
use std::time::Duration;

#[derive(Default)]
struct Journal {
    /// Instance state, shared by every request on the instance.
    last_path: RefCell<String>,
}

impl Handler for Journal {
    // Clippy warns about exactly this; the component exists to show it.
    #[allow(clippy::await_holding_refcell_ref)]
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let mut last_path = self.last_path.borrow_mut();
        // Stands for a database or upstream call made while holding the
        // borrow.
        reprise::sleep(Duration::from_millis(5)).await;
        *last_path = request.uri().to_string();
        format!("noted {}\n", request.uri())
    }
}

reprise::export_p3!(Journal);
