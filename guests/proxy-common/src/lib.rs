//! A reverse proxy: every request goes on to the service at `BACKEND`
//! (`--env BACKEND=http://127.0.0.1:8081`) and its answer streams back.
//!
//! Method, path and query, headers and body go on as they came (reprise
//! leaves out the hop-by-hop headers, both ways); the backend's status,
//! headers and body stream back as they arrive. A request has `TIMEOUT_MS`
//! (default 5000) to finish: past it, reprise cancels the call and answers
//! `504`. A backend that cannot be reached gets `502` and the reason.

use reprise::http::{StatusCode, Uri};
use reprise::{Handler, IntoResponse, Request, client};
use std::time::Duration;

/// The proxy; its `Default` reads the environment once per instance.
pub struct Proxy {
    backend: String,
    timeout: Duration,
}

impl Default for Proxy {
    fn default() -> Self {
        let ms = std::env::var("TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.parse().ok());
        Proxy {
            backend: std::env::var("BACKEND").unwrap_or_default(),
            timeout: Duration::from_millis(ms.unwrap_or(5000)),
        }
    }
}

impl Handler for Proxy {
    fn deadline(&self, _request: &Request) -> Option<Duration> {
        Some(self.timeout)
    }

    async fn handle(&self, mut request: Request) -> impl IntoResponse {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("{}{path}", self.backend.trim_end_matches('/')).parse::<Uri>();
        let Some(uri) = uri.ok().filter(|uri| uri.authority().is_some()) else {
            let hint = "serve with --env BACKEND=http://127.0.0.1:PORT";
            let message = format!("BACKEND={:?} is not a URL; {hint}\n", self.backend);
            return (StatusCode::BAD_GATEWAY, message).into_response();
        };
        *request.uri_mut() = uri;
        // A failed call answers 502, or 504 for a timeout, naming the cause.
        client::send(request).await.into_response()
    }
}
