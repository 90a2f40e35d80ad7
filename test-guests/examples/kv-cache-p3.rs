//! Anti-pattern: kv data copied into the instance "to save a host call".
//! `PUT /items/KEY` writes the body to the key-value store; `GET /items/KEY`
//! answers from the instance's own copy once it has read the key, so a
//! write made since (by this instance or any other) is never seen: the
//! instance serves stale answers. Each request alone on a fresh instance is
//! answered correctly. Serve with `-Skeyvalue`.

use std::cell::RefCell;
use std::collections::HashMap;

use reprise::http::{Method, StatusCode};
use reprise::kv::Store;
use reprise::{Handler, IntoResponse, Request, Response};

#[derive(Default)]
struct Items {
    /// The instance's copy of what it read from the store, never refreshed.
    cache: RefCell<HashMap<String, String>>,
}

impl Handler for Items {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        self.items(request).await
    }
}

impl Items {
    async fn items(&self, request: Request) -> Result<(StatusCode, String), Response> {
        let store = Store::open().map_err(unavailable)?;
        let Some(key) = request
            .uri()
            .path()
            .strip_prefix("/items/")
            .map(str::to_owned)
        else {
            return Ok((StatusCode::NOT_FOUND, "no such route\n".to_owned()));
        };
        match request.method().clone() {
            Method::PUT => {
                let text = request
                    .into_body()
                    .text()
                    .await
                    .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response())?;
                store.set(&key, text).map_err(unavailable)?;
                Ok((StatusCode::NO_CONTENT, String::new()))
            }
            Method::GET => {
                if let Some(text) = self.cache.borrow().get(&key) {
                    return Ok((StatusCode::OK, text.clone()));
                }
                match store.get_string(&key).map_err(unavailable)? {
                    Some(text) => {
                        self.cache.borrow_mut().insert(key, text.clone());
                        Ok((StatusCode::OK, text))
                    }
                    None => Ok((StatusCode::NOT_FOUND, "no such item\n".to_owned())),
                }
            }
            _ => Ok((StatusCode::METHOD_NOT_ALLOWED, String::new())),
        }
    }
}

fn unavailable(error: reprise::kv::Error) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response()
}

reprise::export_p3!(Items);
