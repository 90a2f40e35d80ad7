//! `GET /?from=http://127.0.0.1:PORT/PATH` calls that URL with reprise's
//! client, reads the whole answer with `bytes_limited`, and answers `200
//! read N bytes`; a failed call or a body that broke off answers with the
//! error's own response (`502` and its message). What an app that buffers
//! another service's answer sees, for the tests of truncated upstreams.

use reprise::{Handler, IntoResponse, Request, client, query_param};

#[derive(Default)]
struct ReadUpstream;

impl Handler for ReadUpstream {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let from = query_param(&request, "from")
            .unwrap_or_default()
            .into_owned();
        let call = reprise::http::Request::get(from).body(reprise::Body::empty());
        let Ok(call) = call else {
            return (reprise::http::StatusCode::BAD_REQUEST, "bad ?from=\n").into_response();
        };
        let response = match client::send(call).await {
            Ok(response) => response,
            Err(error) => return error.into_response(),
        };
        match response.into_body().bytes_limited(1 << 20).await {
            Ok(bytes) => format!("read {} bytes\n", bytes.len()).into_response(),
            Err(error) => error.into_response(),
        }
    }
}

reprise::export_p3!(ReadUpstream);
