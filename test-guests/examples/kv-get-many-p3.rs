//! A guest that asks the host's key-value store to copy one value many
//! times in one call, for the test that the host bounds what a call copies
//! (tests/it/kv_limits.rs):
//!
//! - `PUT /fill?key=K&size=N`: sets `K` to `N` bytes made here (no request
//!   body, so no body-size limit is in the way);
//! - `GET /many?key=K&n=N`: `get-many` with `K` asked for `N` times; `200`
//!   with the bytes received, or the store's `503` with its one line.

use reprise::kv::{self, Store};
use reprise::{Handler, IntoResponse, Request, query_param};

#[derive(Default)]
struct GetMany;

fn number(request: &Request, name: &str) -> usize {
    query_param(request, name)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Handler for GetMany {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let store = Store::open()?;
        let key = query_param(&request, "key")
            .unwrap_or_default()
            .into_owned();
        let n = number(&request, "n");
        Ok::<_, kv::Error>(match request.uri().path() {
            "/fill" => {
                store.set(&key, vec![b'x'; number(&request, "size")])?;
                "filled\n".to_owned()
            }
            _ => {
                let values = store.get_many(&vec![key.as_str(); n])?;
                let bytes: usize = values.iter().flatten().map(Vec::len).sum();
                format!("{bytes} bytes\n")
            }
        })
    }
}

reprise::export_p3!(GetMany);
