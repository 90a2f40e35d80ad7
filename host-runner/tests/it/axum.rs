//! axum on reprise, end to end over HTTP/1.1: the `axum-p3` sample answers
//! as an axum app does, bodies stream through in both directions, and inside
//! axum handlers (`axum-scope-p2`, `axum-scope-p3`) the request scope, reprise's
//! futures and its async lock behave as they do in a plain handler.

use crate::common::{HttpConnection, HttpResponse, RunningServer, guest_wasm};
use std::collections::HashMap;
use std::thread;

#[test]
fn axum_sample_routes_like_an_axum_app() {
    let server = RunningServer::start(&guest_wasm("axum_p3"), &[]);

    let hello = server.get("/");
    assert_eq!((hello.status, hello.text().as_str()), (200, "Hello, axum!"));

    let user = server.get("/users/ada");
    assert_eq!(user.status, 200);
    assert_eq!(user.header("content-type"), Some("application/json"));
    assert_eq!(user.text(), r#"{"id":"ada"}"#);

    let unknown = server.get("/no/such/page");
    assert_eq!(unknown.status, 404, "axum's fallback answers unknown paths");
    let wrong_method = server
        .connect()
        .request("DELETE", "/users/ada", &[], b"")
        .expect("DELETE /users/ada");
    assert_eq!(wrong_method.status, 405);
}

#[test]
fn axum_sample_echoes_a_large_upload_byte_for_byte() {
    let server = RunningServer::start(&guest_wasm("axum_p3"), &[]);
    let upload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let echo = server
        .connect()
        .request("POST", "/echo", &[], &upload)
        .expect("POST /echo");
    assert_eq!(echo.status, 200);
    assert!(echo.body == upload, "the echo differs from the upload");
}

/// Sends the first chunk of an upload, reads it back before sending the
/// rest: the echo streams, it does not wait for the whole request.
fn assert_echo_streams_while_the_upload_is_open(guest: &str) {
    let server = RunningServer::start(&guest_wasm(guest), &[]);
    let mut connection = server.connect();
    connection
        .send_raw(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nfirst\r\n",
        )
        .expect("send the head and first chunk");
    let head = connection.read_head().expect("the response head");
    assert_eq!(head.status, 200, "{guest}");
    let first = connection.read_chunk().expect("the first echoed chunk");
    assert_eq!(first.as_deref(), Some(&b"first"[..]), "{guest}");

    connection
        .send_raw(b"6\r\nsecond\r\n0\r\n\r\n")
        .expect("send the rest");
    let mut rest = Vec::new();
    while let Some(chunk) = connection.read_chunk().expect("the rest of the echo") {
        rest.extend(chunk);
    }
    assert_eq!(String::from_utf8_lossy(&rest), "second", "{guest}");
}

#[test]
fn axum_echo_streams_while_the_upload_is_still_open_on_p3() {
    assert_echo_streams_while_the_upload_is_open("axum_p3");
}

#[test]
fn axum_echo_streams_while_the_upload_is_still_open_on_p2() {
    assert_echo_streams_while_the_upload_is_open("axum_scope_p2");
}

/// The `key=value` field `name` of a response line.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no `{name}=` in {text:?}"))
}

fn most_in_flight(responses: &[HttpResponse]) -> u64 {
    let counts = responses
        .iter()
        .map(|r| field(&r.text(), "most_in_flight").parse::<u64>());
    counts.map(|n| n.expect("a number")).max().unwrap_or(0)
}

/// `clients` requests of `path_for(n)` at once, each with its own
/// `x-request-id`; every response is a 200. One request first, so that a
/// warm instance is there to take several of them at once.
fn at_once(
    server: &RunningServer,
    clients: usize,
    path_for: impl Fn(usize) -> String + Sync,
) -> Vec<HttpResponse> {
    assert_eq!(server.get("/scope").status, 200, "warming up");
    thread::scope(|scope| {
        let requests: Vec<_> = (0..clients)
            .map(|n| {
                let path = path_for(n);
                scope.spawn(move || {
                    let id = format!("id-{n}");
                    let response = server
                        .connect()
                        .request("GET", &path, &[("x-request-id", &id)], b"")
                        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
                    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
                    response
                })
            })
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// Many requests at once, each with its own tag and request id, each
/// sleeping inside its axum handler: every one sees only its own.
fn assert_axum_handlers_keep_their_request_scope(guest: &str) -> Vec<HttpResponse> {
    // One thread, so one pool of instances for the warm one to be found in.
    let server = RunningServer::start(&guest_wasm(guest), &["--threads=1"]);
    let responses = at_once(&server, 24, |n| format!("/scope?tag=t{n}&ms=30"));
    for (n, response) in responses.iter().enumerate() {
        let text = response.text();
        let expected = format!("tag=t{n} seen=t{n} id=id-{n} ");
        assert!(text.starts_with(&expected), "{guest}: {text:?}");
    }
    responses
}

#[test]
fn axum_handlers_keep_their_request_scope_while_requests_interleave_on_p3() {
    let responses = assert_axum_handlers_keep_their_request_scope("axum_scope_p3");
    assert!(
        most_in_flight(&responses) > 1,
        "requests must really have interleaved on one instance to prove isolation"
    );
}

#[test]
fn axum_handlers_keep_their_request_scope_on_p2() {
    assert_axum_handlers_keep_their_request_scope("axum_scope_p2");
}

#[test]
fn reprise_mutex_held_across_an_await_serializes_requests_instead_of_trapping() {
    let flags = ["--debug-headers", "--threads=1"];
    let server = RunningServer::start(&guest_wasm("axum_scope_p3"), &flags);
    let responses = at_once(&server, 24, |_| "/lock?ms=20".to_owned());
    let mut counts_by_instance: HashMap<u64, Vec<u64>> = HashMap::new();
    for response in &responses {
        let count = field(&response.text(), "count").parse().expect("a count");
        counts_by_instance
            .entry(response.instance().expect("--debug-headers"))
            .or_default()
            .push(count);
    }
    // Each instance counted its own requests once each: a lost update (two
    // requests reading the same count) would repeat a number, a trap would
    // have failed a request.
    for (instance, counts) in &counts_by_instance {
        let mut counts = counts.clone();
        counts.sort();
        let expected: Vec<u64> = (1..=counts.len() as u64).collect();
        assert_eq!(counts, expected, "instance {instance}");
    }
    assert!(
        most_in_flight(&responses) > 1,
        "requests must really have waited for the lock on one instance"
    );
}

#[test]
fn axum_response_bodies_of_known_size_carry_a_content_length() {
    let server = RunningServer::start(&guest_wasm("axum_p3"), &[]);
    let mut connection = HttpConnection::open(server.addr).expect("connect");
    let hello = connection.get("/").expect("GET /");
    assert_eq!(hello.header("content-length"), Some("12"));
    assert_eq!(hello.header("transfer-encoding"), None);
}
