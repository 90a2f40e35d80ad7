//! Echoes what the host hands a WASIp2 component, for the tests of
//! host-runner's `wasmtime serve` flags:
//!
//! - `GET /env/NAME`: the environment variable (`--env`);
//! - `GET /header/NAME`: the request header's values, one per line
//!   (`--header`);
//! - `GET /config/NAME`: the configuration variable (`-Sconfig-var`,
//!   through `reprise::config`);
//! - `GET /kv/KEY`, `PUT /kv/KEY` with the value as the body: the host's
//!   key-value store (`-Skeyvalue`, through `reprise::kv`).
//!
//! A missing value is `404`; a host error `500` with the error's text.

use reprise::http::{Method, StatusCode};
use reprise::{Handler, IntoResponse, Request};

#[derive(Default)]
struct HostInputs;

type Answer = (StatusCode, String);

fn found(value: Option<String>) -> Answer {
    match value {
        Some(value) => (StatusCode::OK, value),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

fn failed(error: impl std::fmt::Display) -> Answer {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

impl Handler for HostInputs {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let path = request.uri().path().to_owned();
        if let Some(name) = path.strip_prefix("/env/") {
            return found(std::env::var(name).ok());
        }
        if let Some(name) = path.strip_prefix("/header/") {
            let values: Vec<String> = request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            return found((!values.is_empty()).then(|| values.join("\n")));
        }
        if let Some(name) = path.strip_prefix("/config/") {
            return reprise::config::get(name).map_or_else(failed, found);
        }
        let Some(key) = path.strip_prefix("/kv/") else {
            return (StatusCode::NOT_FOUND, String::new());
        };
        let store = match reprise::kv::Store::open() {
            Ok(store) => store,
            Err(error) => return failed(error),
        };
        if *request.method() == Method::PUT {
            let key = key.to_owned();
            return match request.into_body().bytes().await {
                Ok(value) => match store.set(&key, value) {
                    Ok(()) => (StatusCode::NO_CONTENT, String::new()),
                    Err(error) => failed(error),
                },
                Err(error) => failed(error),
            };
        }
        store.get_string(key).map_or_else(failed, found)
    }
}

reprise::export_p2!(HostInputs);
