//! An axum `Router` as a WASIp3 component: axum routes and extracts,
//! reprise serves it under its reuse policy. Request and response bodies
//! stream straight through, so `/echo` never holds a whole upload.

use axum::Json;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use serde_json::{Value, json};

fn app() -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { "Hello, axum!" }))
        .route("/echo", post(|body: Body| async { body }))
        .route("/users/{id}", get(user))
}

async fn user(Path(id): Path<String>) -> Json<Value> {
    Json(json!({ "id": id }))
}

reprise::export_p3!(service = app);
