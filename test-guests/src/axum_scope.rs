//! An axum `Router` whose handlers use reprise across `.await`: request-local
//! values, `RequestContext`, `reprise::sleep` and a `reprise::Mutex` held
//! while sleeping. That this compiles is half the test (axum wants every
//! handler future `Send`); the end-to-end tests in host-runner check the
//! rest, in both worlds, through `axum-scope-p2` and `axum-scope-p3`.
//!
//! - `GET /scope?tag=T&ms=N`: stores `T` request-locally, sleeps `N` ms,
//!   answers `tag=T seen=<what the request-local holds now> id=<request id>
//!   most_in_flight=<on this instance so far>`.
//! - `GET /lock?ms=N`: holds the shared lock across an `N` ms sleep while
//!   it increments a counter, answers `count=<counter> most_in_flight=…`.
//! - `POST /echo`: streams the request body back.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use reprise::{Mutex, RequestContext, request_local};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

request_local! {
    static TAG: RefCell<String> = RefCell::new(String::new());
}

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default)]
    tag: String,
    #[serde(default)]
    ms: u64,
}

pub fn app() -> axum::Router {
    axum::Router::new()
        .route("/scope", get(scope))
        .route("/lock", get(lock))
        .route("/echo", post(|body: Body| async { body }))
        .with_state(Arc::new(Mutex::new(0u64)))
}

async fn scope(Query(params): Query<Params>) -> String {
    TAG.with(|tag| *tag.borrow_mut() = params.tag.clone());
    reprise::sleep(Duration::from_millis(params.ms)).await;
    let seen = TAG.with(|tag| tag.borrow().clone());
    let id = RequestContext::current().id().to_owned();
    format!(
        "tag={} seen={seen} id={id} {}\n",
        params.tag,
        most_in_flight()
    )
}

async fn lock(State(counter): State<Arc<Mutex<u64>>>, Query(params): Query<Params>) -> String {
    let mut count = counter.lock().await;
    let before = *count;
    reprise::sleep(Duration::from_millis(params.ms)).await;
    *count = before + 1;
    format!("count={} {}\n", *count, most_in_flight())
}

fn most_in_flight() -> String {
    format!(
        "most_in_flight={}",
        reprise::instance::stats().most_in_flight
    )
}
