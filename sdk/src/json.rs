//! JSON in and out (feature `json`): [`Json<T>`] as a response, and as a
//! reader of request bodies that, like axum's `Json`, refuses other content
//! types (`415`), caps the size (`413`) and answers bad input with a `400`
//! that says where it went wrong. Reading JSON also makes the request's
//! errors answer in JSON (see [`BodyError`]).
//!
//! It does not negotiate or stream: a JSON value is read and written whole.

use crate::{Body, BodyError, IntoResponse, Request, Response};
use http::StatusCode;
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
///         // Bad JSON answers 400 with serde's line and column, too much 413,
///         // another content type 415: as `{"error": "…"}`.
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
    /// Fails with a [`BodyError`] that answers `415` unless `content-type`
    /// is `application/json` (or another `…+json` type), `413` past the
    /// limit, and `400` for anything that is not a `T` in JSON, naming the
    /// line and column. From here on the request's errors answer in JSON.
    pub async fn read(request: Request) -> Result<Self, BodyError> {
        Self::read_limited(request, Self::LIMIT).await
    }

    /// [`Json::read`] with a limit of `max` bytes instead: the one way to
    /// raise (or lower) it, named like [`Body::bytes_limited`].
    pub async fn read_limited(request: Request, max: usize) -> Result<Self, BodyError> {
        crate::error::prefer_json();
        if !is_json(request.headers()) {
            return Err(BodyError::with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with `content-type: application/json`",
            ));
        }
        let bytes = request.into_body().bytes_limited(max).await?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|error| BodyError::new(format!("invalid JSON: {error}")))
    }
}

/// Whether `content-type` names JSON: `application/json` or
/// `application/…+json`, with any parameters (`; charset=utf-8`).
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = media.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
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
            Err(error) => crate::error::respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot serialize the response as JSON: {error}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    fn request(content_type: Option<&'static str>, body: &'static str) -> Request {
        let mut request = Request::new(Body::from(body));
        if let Some(value) = content_type {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(value));
        }
        request
    }

    #[test]
    fn a_body_without_a_json_content_type_is_a_415() {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let error = block_on(Json::<u32>::read(request(content_type, "1"))).unwrap_err();
            assert_eq!(
                error.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
        }
        for content_type in [
            "application/json",
            "application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            let Json(n) = block_on(Json::<u32>::read(request(Some(content_type), "7"))).unwrap();
            assert_eq!(n, 7);
        }
    }

    #[test]
    fn bad_json_is_a_400_with_serdes_line_and_column_and_too_much_a_413() {
        let error = block_on(Json::<u32>::read(request(
            Some("application/json"),
            "\n  [1,",
        )))
        .unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("at line 2 column"), "{error}");
        let error = block_on(Json::<Vec<u32>>::read_limited(
            request(Some("application/json"), "[1,2,3]"),
            4,
        ))
        .unwrap_err();
        assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
