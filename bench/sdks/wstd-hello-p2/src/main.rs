//! `Hello, WASI!` with wstd's WASIp2 server, as its examples write one.

use wstd::http::body::Body;
use wstd::http::{Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::new("Hello, WASI!".to_owned().into()))
}
