//! Anti-pattern: assuming one request per instance. The handler stores the
//! request's host in a `OnceLock` as if it were setting up a new process, and
//! unwraps the result: the second request on an instance panics, which traps
//! the instance (and any request in flight beside it).

use reprise::{Handler, IntoResponse, Request};
use std::sync::OnceLock;

static ORIGIN: OnceLock<String> = OnceLock::new();

#[derive(Default)]
struct OncePerProcess;

impl Handler for OncePerProcess {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let host = request
            .headers()
            .get("host")
            .and_then(|host| host.to_str().ok())
            .unwrap_or("unknown");
        ORIGIN
            .set(host.to_owned())
            .expect("the origin is set once per process");
        format!("serving {host}\n")
    }
}

reprise::export_p3!(OncePerProcess);
