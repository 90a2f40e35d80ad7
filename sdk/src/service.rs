//! Any tower `Service` (an axum `Router` in particular) as the component's
//! handler (feature `tower`), exported with `export_p3!(service = make)` or
//! `export_p2!(service = make)`.
//!
//! The service is instance state like a [`Handler`](crate::Handler): `make`
//! runs at the instance's first request, and every request calls a clone of
//! it inside its own request scope, so [`RequestContext`](crate::RequestContext),
//! [`request_local!`](crate::request_local) and [`spawn`](crate::spawn) work in
//! axum handlers. Bodies stream both ways. This module adds no routing,
//! layers or extractors of its own: those are tower's and axum's.

use crate::handler::Serve;
use crate::{IntoResponse, Request, Response};
use bytes::Bytes;
use http::StatusCode;
use std::future::poll_fn;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tower service as the instance's handler. Built by the export macros.
#[doc(hidden)]
pub struct ServiceHandler<S>(S);

impl<S> ServiceHandler<S> {
    pub fn new(service: S) -> Self {
        ServiceHandler(service)
    }
}

impl<S, B> Serve for ServiceHandler<S>
where
    S: Service<Request, Response = http::Response<B>> + Clone + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    async fn serve(&'static self, request: Request) -> Response {
        // tower's contract: `call` takes `&mut self` after `poll_ready`, so
        // each request gets its own clone (for a `Router`, one `Arc`).
        let mut service = self.0.clone();
        let response = match poll_fn(|cx| service.poll_ready(cx)).await {
            Ok(()) => service.call(request).await,
            Err(error) => Err(error),
        };
        response
            .map(IntoResponse::into_response)
            .unwrap_or_else(|error| {
                // The client learns only that it failed; the reason goes to the
                // host's log, which is where an operator looks.
                eprintln!("reprise: the exported service failed: {}", error.into());
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            })
    }
}
