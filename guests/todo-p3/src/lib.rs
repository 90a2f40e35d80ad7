//! A JSON API with persistence, as one async function: todos live in the
//! host's key-value store (`host-runner serve -Skeyvalue`), so they outlive
//! every instance.
//!
//! - `POST /todos` with `{"title": "…"}`: `201` and the todo with its `id`;
//! - `GET /todos/N`: the todo, or `404`; `DELETE /todos/N`: `204`.
//!
//! There is no error code here: every SDK error is a response. Bad JSON is
//! a `400` naming the line and column, another content type a `415`, a
//! store that is down or full a `503`, each as `{"error": "…"}`.

use reprise::http::{Method, StatusCode};
use reprise::kv::Store;
use reprise::{IntoResponse, Json, Request, Response};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct Todo {
    #[serde(default)]
    id: u64,
    title: String,
    #[serde(default)]
    done: bool,
}

reprise::export_p3!(handler = todos);

async fn todos(request: Request) -> Result<Response, reprise::Error> {
    let store = Store::open()?;
    let id = request
        .uri()
        .path()
        .strip_prefix("/todos/")
        .map(str::parse::<u64>);
    let key = |id| format!("todo:{id}");
    Ok(match (request.method().clone(), id) {
        (Method::POST, None) if request.uri().path() == "/todos" => {
            let Json(mut todo) = Json::<Todo>::read(request).await?;
            todo.id = store.increment("todos:next-id", 1)?;
            store.set_json(&key(todo.id), &todo)?;
            (StatusCode::CREATED, Json(todo)).into_response()
        }
        (Method::GET, Some(Ok(id))) => match store.get_json::<Todo>(&key(id))? {
            Some(todo) => Json(todo).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        (Method::DELETE, Some(Ok(id))) => {
            store.delete(&key(id))?;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    })
}
