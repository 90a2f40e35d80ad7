//! A small JSON API: `POST /items` stores a JSON object that has a `name`
//! and answers `201 Created` with its `Location`; `GET /items/{id}` returns
//! it. Bad JSON is a `400` saying where, a wrong method a `405`.
//!
//! The items live in the instance, to keep the sample whole: each instance
//! has its own and they go with it (try it with `--threads 1` and one
//! connection); a real app keeps them in a store outside the component.

use reprise::http::header::{ALLOW, LOCATION};
use reprise::http::{HeaderMap, HeaderName, Method, StatusCode};
use reprise::{BodyError, Handler, IntoResponse, Json, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// An item: any JSON object with a `name` string, plus the `id` it got.
#[derive(Clone, Deserialize, Serialize)]
struct Item {
    #[serde(default)]
    id: u64,
    name: String,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

#[derive(Default)]
struct Api {
    /// Instance state; never borrowed across an `.await`.
    items: RefCell<BTreeMap<u64, Item>>,
}

impl Handler for Api {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        match (method, path.as_str()) {
            (Method::POST, "/items") => self.create(request).await.into_response(),
            (_, "/items") => not_allowed("POST"),
            (method, path) => match path.strip_prefix("/items/") {
                Some(id) if method == Method::GET => self.get(id),
                Some(_) => not_allowed("GET"),
                None => StatusCode::NOT_FOUND.into_response(),
            },
        }
    }
}

impl Api {
    /// Bad JSON, or JSON that is not an item, answers `400` through `?`.
    async fn create(&self, request: Request) -> Result<impl IntoResponse, BodyError> {
        let Json(mut item) = Json::<Item>::read(request).await?;
        let mut items = self.items.borrow_mut();
        item.id = items.last_key_value().map_or(1, |(id, _)| id + 1);
        items.insert(item.id, item.clone());
        let location = header(LOCATION, format!("/items/{}", item.id));
        Ok((StatusCode::CREATED, location, Json(item)))
    }

    fn get(&self, id: &str) -> Response {
        match id.parse().map(|id| self.items.borrow().get(&id).cloned()) {
            Ok(Some(item)) => Json(item).into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

fn not_allowed(allow: &str) -> Response {
    let allow = header(ALLOW, allow.into());
    (StatusCode::METHOD_NOT_ALLOWED, allow, "").into_response()
}

fn header(name: HeaderName, value: String) -> HeaderMap {
    HeaderMap::from_iter([(name, value.try_into().expect("a path or a method"))])
}

reprise::export_p3!(Api);
