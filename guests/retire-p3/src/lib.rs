//! Retiring an instance from inside a request. `?retire=1` calls
//! `reprise::instance::retire()`: requests in flight finish, no new one starts here,
//! and the host then drops the instance. `?ms=N` makes a request slow.

use reprise::{Handler, IntoResponse, Request};
use std::time::Duration;

#[derive(Default)]
struct Retire;

impl Handler for Retire {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let retire = reprise::query_param(&request, "retire").as_deref() == Some("1");
        if retire {
            reprise::instance::retire();
        }
        let ms = reprise::query_param(&request, "ms").and_then(|ms| ms.parse().ok());
        reprise::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
        if retire {
            "done; this instance takes no new requests\n"
        } else {
            "Hello, WASI!\n"
        }
    }
}

reprise::export_p3!(Retire);
