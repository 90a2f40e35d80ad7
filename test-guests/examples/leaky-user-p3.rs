//! Anti-pattern: a per-request value cached in a static. The first request
//! that names a user (`?user=NAME`) is remembered, and every later request on
//! the instance is served as that user, whatever it asks. Each request alone
//! on a fresh instance is answered correctly.

use reprise::{Handler, IntoResponse, Request, query_param};
use std::cell::RefCell;

thread_local! {
    /// Meant as "this request's user", filled in once "to save work".
    static USER: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Greeter;

impl Handler for Greeter {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let user = USER.with_borrow_mut(|cached| {
            if cached.is_none() {
                *cached = query_param(&request, "user").map(|user| user.into_owned());
            }
            cached.clone()
        });
        format!("hello {}\n", user.as_deref().unwrap_or("anonymous"))
    }
}

reprise::export_p3!(Greeter);
