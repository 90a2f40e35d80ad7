//! The one handler abstraction both worlds export.
//!
//! A [`Handler`] is instance state: the export macros build it once per
//! component instance, at the first request, and every later request on that
//! instance borrows the same value. This module does not deal with either
//! world's bindings; the world layer (`world/`) converts at the boundary.

use crate::Body;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::borrow::Cow;

/// An incoming request, with a body that streams from the client.
pub type Request = http::Request<Body>;

/// An outgoing response.
pub type Response = http::Response<Body>;

/// Handles the requests that reach one component instance.
///
/// The value is created with [`Default`] at the instance's first request and
/// lives as long as the instance. `default()` runs inside that first call but
/// outside any request scope, so it counts against the first request's time
/// and a panic in it traps the instance. The value is never dropped: the
/// instance itself is torn down by the host, so do not rely on `Drop` to
/// flush anything. Under reuse many requests borrow it, on
/// WASIp3 several at once, so `&self` is all a request gets: state that
/// requests share must sit behind a `Cell`, `RefCell` or similar, where a
/// reader sees it is shared (a [`Mutex`](crate::Mutex) if a request keeps it
/// across an `.await`). Per-request state belongs in
/// [`request_local!`](crate::request_local) values or local variables.
///
/// ```
/// use std::cell::Cell;
/// use reprise::{Handler, IntoResponse, Request};
///
/// #[derive(Default)]
/// struct Counter {
///     /// Shared by every request this instance serves.
///     served: Cell<u64>,
/// }
///
/// impl Handler for Counter {
///     async fn handle(&self, _request: Request) -> impl IntoResponse {
///         self.served.set(self.served.get() + 1);
///         format!("instance has served {}", self.served.get())
///     }
/// }
/// ```
pub trait Handler: Default + 'static {
    /// Answers one request.
    ///
    /// Implement it as `async fn handle(&self, request: Request) -> impl
    /// IntoResponse`; the body may return any [`IntoResponse`] type.
    ///
    /// The request's scope is open while this future runs: request-local
    /// values, [`RequestContext::current`](crate::RequestContext::current) and
    /// [`spawn`](crate::spawn) all refer to this request.
    fn handle(&self, request: Request) -> impl Future<Output = impl IntoResponse>;

    /// How long `request` may take, from its arrival; `None` (the default)
    /// sets no limit. Called once per request, before
    /// [`handle`](Handler::handle), so the limit may depend on the route.
    ///
    /// Past the deadline reprise drops the handler's future and the tasks
    /// the request spawned, which cancels their outgoing calls, and answers
    /// `504` with a one-line body that starts with `deadline` (if the
    /// response has already started, its body ends with an error instead,
    /// so the client sees it cut off). The instance stays healthy and the
    /// requests beside it are untouched. Code that never awaits cannot be
    /// stopped this way; the host's request timeout is the backstop.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use reprise::{Handler, IntoResponse, Request};
    /// # #[derive(Default)] struct App;
    /// impl Handler for App {
    ///     fn deadline(&self, _request: &Request) -> Option<Duration> {
    ///         Some(Duration::from_secs(2))
    ///     }
    ///     # async fn handle(&self, _: Request) -> impl IntoResponse { "" }
    /// }
    /// ```
    fn deadline(&self, _request: &Request) -> Option<std::time::Duration> {
        None
    }
}

/// What an export serves: a [`Handler`], or (feature `tower`) a tower
/// service. Not public API; the export macros name it.
#[doc(hidden)]
pub trait Serve: 'static {
    fn serve(&'static self, request: Request) -> impl Future<Output = Response>;

    /// See [`Handler::deadline`].
    fn deadline(&self, _request: &Request) -> Option<std::time::Duration> {
        None
    }
}

impl<H: Handler> Serve for H {
    async fn serve(&'static self, request: Request) -> Response {
        self.handle(request).await.into_response()
    }

    fn deadline(&self, request: &Request) -> Option<std::time::Duration> {
        Handler::deadline(self, request)
    }
}

/// An async function as the instance's handler: what
/// `export_p3!(async fn …)` and `handler = function` export. Not public API.
#[doc(hidden)]
pub struct FnHandler<F>(pub F);

impl<F, Fut> Serve for FnHandler<F>
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future,
    Fut::Output: IntoResponse,
{
    async fn serve(&'static self, request: Request) -> Response {
        (self.0)(request).await.into_response()
    }
}

/// The value of query parameter `name` in the request's URI, percent-decoded
/// (and `+` read as a space, as browsers send forms), if present. Borrowed
/// when there was nothing to decode.
///
/// ```
/// let request = reprise::http::Request::get("/search?q=caf%C3%A9+au+lait&n=2")
///     .body(Default::default())
///     .unwrap();
/// assert_eq!(reprise::query_param(&request, "q").as_deref(), Some("café au lait"));
/// assert_eq!(reprise::query_param(&request, "n").as_deref(), Some("2"));
/// assert_eq!(reprise::query_param(&request, "page"), None);
/// ```
pub fn query_param<'a>(request: &'a Request, name: &str) -> Option<Cow<'a, str>> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| (key == name).then_some(value))
}

/// Anything a handler may return.
///
/// Strings, bytes and bodies become `200 OK`; a [`StatusCode`] an empty
/// response with that status; `(StatusCode, T)` and `(StatusCode, HeaderMap,
/// T)` set the status (and add the headers) on `T`'s response; a `Result`
/// answers with whichever side it holds, so `?` works with error types that
/// implement this trait, as every error reprise returns does
/// ([`BodyError`](crate::BodyError), [`client::Error`](crate::client::Error), …). Any `http::Response` whose
/// body is an [`http_body::Body`] (an axum response, say) streams as it is.
///
/// ```
/// use reprise::{IntoResponse, http::StatusCode};
///
/// fn not_found() -> impl IntoResponse {
///     (StatusCode::NOT_FOUND, "no such page\n")
/// }
/// assert_eq!(not_found().into_response().status(), 404);
/// ```
pub trait IntoResponse {
    /// Converts `self` into a response.
    fn into_response(self) -> Response;
}

/// The error type of bodies a response may carry.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> IntoResponse for http::Response<B>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn into_response(self) -> Response {
        self.map(Body::new)
    }
}

impl IntoResponse for Body {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::new(self.into())
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::new(self.into())
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        Response::new(self.into())
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::new(self.into())
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        Response::new(self.into())
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        (self, Body::empty()).into_response()
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        *response.status_mut() = self.0;
        response
    }
}

/// ```
/// use reprise::IntoResponse;
/// use reprise::http::{HeaderMap, StatusCode, header::LOCATION};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(LOCATION, "/items/1".parse().unwrap());
/// let response = (StatusCode::CREATED, headers, "made\n").into_response();
/// assert_eq!(response.headers()[LOCATION], "/items/1");
/// ```
impl<T: IntoResponse> IntoResponse for (StatusCode, HeaderMap, T) {
    fn into_response(self) -> Response {
        let (status, headers, inner) = self;
        let mut response = (status, inner).into_response();
        // `extend` replaces a header `T` set with the one given here, and
        // keeps every value of a repeated name.
        response.headers_mut().extend(headers);
        response
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}
