//! JSON in and out (feature `json`): [`Json<T>`] as a response, and as a
//! reader of request bodies that caps their size and answers bad input
//! with a `400` that says where it went wrong.
//!
//! It does not check `content-type` on requests (`curl -d` sends a form
//! type), negotiate, or stream: a JSON value is read and written whole.

use crate::{Body, BodyError, IntoResponse, Request, Response};
use http::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A JSON value: the response `Json(value)` is `value` serialized with
/// `content-type: application/json`, and [`Json::read`] reads one from a
/// request.
///
/// ```no_run
/// use reprise::{Handler, IntoResponse, Json, Request};
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Greeting {
///     name: String,
/// }
///
/// #[derive(Default)]
/// struct App;
///
/// impl Handler for App {
///     async fn handle(&self, request: Request) -> impl IntoResponse {
///         // Bad JSON answers 400 with serde's line and column; too much, 413.
///         let Json(greeting) = Json::<Greeting>::read(request).await?;
///         Ok::<_, reprise::BodyError>(Json(Greeting { name: format!("hello {}", greeting.name) }))
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> Json<T> {
    /// The most bytes [`Json::read`] accepts: 1 MiB.
    pub const LIMIT: usize = 1024 * 1024;

    /// Reads the request's body as JSON, up to [`Json::LIMIT`] bytes.
    ///
    /// Fails with a [`BodyError`] that answers `413` past the limit and `400`
    /// for anything that is not a `T` in JSON, naming the line and column.
    pub async fn read(request: Request) -> Result<Self, BodyError> {
        Self::read_limited(request, Self::LIMIT).await
    }

    /// [`Json::read`] with a limit of `max` bytes instead.
    pub async fn read_limited(request: Request, max: usize) -> Result<Self, BodyError> {
        let bytes = request.into_body().bytes_limited(max).await?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|error| BodyError::new(format!("invalid JSON: {error}")))
    }
}

/// `200 OK` with the value as JSON; a value that cannot be serialized (a map
/// with non-string keys, a failing `Serialize`) is a `500` naming why.
impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => {
                let mut response = Response::new(Body::from(bytes));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            Err(error) => (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot serialize the response as JSON: {error}\n"),
            )
                .into_response(),
        }
    }
}
