//! Where does data go that must outlive an instance? Into the host's
//! key-value store. These notes survive every instance the host retires,
//! and, with host-runner's default store (a file), host-runner itself:
//! serve with `host-runner serve -Skeyvalue`.
//!
//! - `POST /notes` with the note as the body: `201`, `note N`;
//! - `GET /notes/N`: the note, or `404`;
//! - `GET /notes`: the first page of notes, one `N: text` line each; when
//!   there are more, a `link: </notes?cursor=C>; rel="next"` header names
//!   the next page;
//! - `DELETE /notes/N`: `204`.
//!
//! A store that is missing, full or failing answers `503` with one line:
//! `reprise::kv::Error` is a response, so `?` is all the error handling.
//! The handler keeps no state of its own: an instance may be dropped after
//! any request, and a request may land on any instance.

use reprise::http::{HeaderMap, HeaderValue, Method, StatusCode, header::LINK};
use reprise::kv::{self, Store};
use reprise::{Handler, IntoResponse, Request, Response, query_param};

#[derive(Default)]
struct Notes;

/// The counter that numbers notes; incremented atomically, so two requests
/// on two instances never get the same number.
const NEXT_ID: &str = "notes:next-id";

/// Every note's key starts with this; the counter's does not.
const NOTE: &str = "note:";

fn note_key(id: u64) -> String {
    format!("{NOTE}{id}")
}

impl Handler for Notes {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        notes(request).await
    }
}

async fn notes(request: Request) -> Result<Response, kv::Error> {
    let store = Store::open()?;
    let path = request.uri().path().to_owned();
    let id = match path.strip_prefix("/notes/").map(str::parse::<u64>) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Ok(not_found()),
        None if path == "/notes" => None,
        None => return Ok(not_found()),
    };
    Ok(match (request.method().clone(), id) {
        (Method::POST, None) => {
            let text = match request.into_body().text().await {
                Ok(text) => text,
                Err(e) => return Ok(e.into_response()),
            };
            let id = store.increment(NEXT_ID, 1)?;
            store.set(&note_key(id), text)?;
            (StatusCode::CREATED, format!("note {id}\n")).into_response()
        }
        (Method::GET, None) => {
            let cursor = query_param(&request, "cursor").and_then(|c| c.parse().ok());
            let page = store.list(NOTE, cursor)?;
            let mut listing = String::new();
            for key in &page.keys {
                // A note deleted since the listing is skipped.
                if let Some(text) = store.get_string(key)? {
                    let id = key.strip_prefix(NOTE).unwrap_or(key);
                    listing.push_str(&format!("{id}: {text}\n"));
                }
            }
            let mut headers = HeaderMap::new();
            if let Some(next) = page.next {
                let link = format!("</notes?cursor={next}>; rel=\"next\"");
                headers.insert(LINK, HeaderValue::from_str(&link).expect("ASCII"));
            }
            (StatusCode::OK, headers, listing).into_response()
        }
        (Method::GET, Some(id)) => match store.get_string(&note_key(id))? {
            Some(text) => text.into_response(),
            None => not_found(),
        },
        (Method::DELETE, Some(id)) => {
            store.delete(&note_key(id))?;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => not_found(),
    })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such note\n").into_response()
}

reprise::export_p3!(Notes);
