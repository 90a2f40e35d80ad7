//! `GET /?from=http://127.0.0.1:PORT/PATH&transmit=WHEN&wait_ms=N` makes one
//! outgoing `GET` with raw `wasip3` bindings (no reprise), reads the whole
//! response body, and answers `200` with one line:
//! `read N of M bytes, body ended: ok|ERROR CODE, transmit=WHEN`, where M is
//! the announced `content-length` (`-` without one). A failed call answers
//! `502 error CODE`.
//!
//! It isolates the order of operations a guest chooses, to reproduce the
//! bodies `wasmtime serve` 49 cuts short (`scripts/repro-w49.py`,
//! docs/src/running-elsewhere.md): `transmit` is when the guest lets go of
//! the future `Request::new` returns (it reports the request's
//! transmission), `drop` before sending, `after` once the response head has
//! arrived (before the body is read: what the SDK's client did), `hold`
//! (the default) after the body is read; `wait_ms` sleeps between the head
//! and the body, so the backend has sent and closed everything first.
//! The body is read in full up to 4 MiB; a fixture, not an app.

use wasip3::clocks::monotonic_clock;
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

const MAX_BODY: usize = 4 << 20;

struct RawFetch;

impl wasip3::exports::http::handler::Guest for RawFetch {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let query = request.get_path_with_query().unwrap_or_default();
        let from = param(&query, "from").unwrap_or_default();
        let transmit = param(&query, "transmit").unwrap_or("hold");
        let wait_ms = param(&query, "wait_ms").and_then(|ms| ms.parse().ok());
        let (status, line) = match (split_url(from), transmit) {
            (Some(url), "drop" | "after" | "hold") => fetch(url, transmit, wait_ms).await,
            _ => (
                400,
                "usage: ?from=http://HOST:PORT/PATH&transmit=drop|after|hold&wait_ms=N".into(),
            ),
        };
        Ok(text_response(status, line))
    }
}

/// One outgoing GET, its body read to the end: the status and line to answer.
async fn fetch(
    (authority, path): (&str, &str),
    transmit: &str,
    wait_ms: Option<u64>,
) -> (u16, String) {
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    drop(trailers_writer);
    let (outgoing, transmitted) = Request::new(Fields::new(), None, trailers, None);
    let _ = outgoing.set_method(&Method::Get);
    let _ = outgoing.set_scheme(Some(&Scheme::Http));
    let _ = outgoing.set_authority(Some(authority));
    let _ = outgoing.set_path_with_query(Some(path));
    let mut transmitted = Some(transmitted);
    if transmit == "drop" {
        transmitted = None;
    }
    let response = match client::send(outgoing).await {
        Ok(response) => response,
        Err(code) => return (502, format!("error {code:?}")),
    };
    if transmit == "after" {
        transmitted = None;
    }
    let announced = response
        .get_headers()
        .get("content-length")
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_else(|| "-".into());
    if let Some(ms) = wait_ms {
        monotonic_clock::wait_for(ms * 1_000_000).await;
    }
    let (done_writer, done) = wit_future::new(|| Ok(()));
    let (mut contents, body_end) = Response::consume_body(response, done);
    let mut read = 0;
    while read < MAX_BODY {
        let (result, bytes) = contents.read(Vec::with_capacity(64 << 10)).await;
        read += bytes.len();
        if !matches!(result, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(contents);
    let ended = match body_end.await {
        Ok(_) => "ok".to_owned(),
        Err(code) => format!("{code:?}"),
    };
    drop((done_writer, transmitted));
    let line =
        format!("read {read} of {announced} bytes, body ended: {ended}, transmit={transmit}");
    (200, line)
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    let (_, params) = query.split_once('?')?;
    params
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// `http://AUTHORITY/PATH` as (authority, path); nothing else is accepted.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    Some((authority, if path.is_empty() { "/" } else { path }))
}

fn text_response(status: u16, line: String) -> Response {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .unwrap_or_else(|_| Fields::new());
    let (mut body, contents) = wit_stream::new();
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    drop(trailers_writer);
    let (response, _transmitted) = Response::new(headers, Some(contents), trailers);
    let _ = response.set_status_code(status);
    wasip3::spawn_local(async move {
        body.write_all(format!("{line}\n").into_bytes()).await;
    });
    response
}

wasip3::http::service::export!(RawFetch);
