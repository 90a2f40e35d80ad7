//! Where does data go that must outlive an instance? Into the host's
//! key-value store. These notes survive every instance the host retires;
//! serve with `host-runner serve -Skeyvalue`.
//!
//! - `POST /notes` with the note as the body: `201`, `note N`;
//! - `GET /notes/N`: the note, or `404`;
//! - `GET /notes`: every note, one `N: text` line each;
//! - `DELETE /notes/N`: `204`.
//!
//! The handler keeps no state of its own: an instance may be dropped after
//! any request, and a request may land on any instance.

use reprise::http::{Method, StatusCode};
use reprise::kv::Store;
use reprise::{Handler, IntoResponse, Request, Response};

#[derive(Default)]
struct Notes;

/// The counter that numbers notes; incremented atomically, so two requests
/// on two instances never get the same number.
const NEXT_ID: &str = "notes:next-id";

fn note_key(id: u64) -> String {
    format!("note:{id}")
}

impl Handler for Notes {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        notes(request).await
    }
}

async fn notes(request: Request) -> Result<(StatusCode, String), Response> {
    let store = Store::open().map_err(unavailable)?;
    let path = request.uri().path().to_owned();
    let id = path
        .strip_prefix("/notes/")
        .map(|id| id.parse::<u64>().map_err(|_| not_found()))
        .transpose()?;
    match (request.method().clone(), id) {
        (Method::POST, None) if path == "/notes" => {
            let text = request
                .into_body()
                .text()
                .await
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response())?;
            let id = store.increment(NEXT_ID, 1).map_err(unavailable)?;
            store.set(&note_key(id), text).map_err(unavailable)?;
            Ok((StatusCode::CREATED, format!("note {id}\n")))
        }
        (Method::GET, None) if path == "/notes" => {
            let mut listing = String::new();
            let keys = store.keys().map_err(unavailable)?;
            let mut ids: Vec<u64> = keys
                .iter()
                .filter_map(|key| key.strip_prefix("note:")?.parse().ok())
                .collect();
            ids.sort_unstable();
            for id in ids {
                if let Some(text) = store.get_string(&note_key(id)).map_err(unavailable)? {
                    listing.push_str(&format!("{id}: {text}\n"));
                }
            }
            Ok((StatusCode::OK, listing))
        }
        (Method::GET, Some(id)) => match store.get_string(&note_key(id)).map_err(unavailable)? {
            Some(text) => Ok((StatusCode::OK, text)),
            None => Err(not_found()),
        },
        (Method::DELETE, Some(id)) => {
            store.delete(&note_key(id)).map_err(unavailable)?;
            Ok((StatusCode::NO_CONTENT, String::new()))
        }
        _ => Err(not_found()),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such note\n").into_response()
}

/// The host has no store (served without `-Skeyvalue`? host-runner refuses
/// to start then) or it refused the operation (full).
fn unavailable(error: reprise::kv::Error) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response()
}

reprise::export_p3!(Notes);
