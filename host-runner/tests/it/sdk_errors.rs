//! The SDK's one error convention, as a client sees it: the `todo-p3`
//! sample (a JSON API over the host's key-value store, one async function,
//! no error code of its own) and the `proxy-p3` sample (a call to a backend
//! under a deadline). Every error is its status with one line, as
//! `{"error": "…"}` when the request prefers JSON, as text otherwise.

use crate::common::backend::Backend;
use crate::common::{HttpResponse, RunningServer, guest_wasm};

const JSON: (&str, &str) = ("content-type", "application/json");

fn serve_todos(store: &[&str]) -> RunningServer {
    RunningServer::start(&guest_wasm("todo_p3"), store)
}

fn post(server: &RunningServer, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    server
        .connect()
        .request("POST", "/todos", headers, body)
        .expect("POST /todos")
}

/// The status, content type and body, for one assertion per answer.
fn seen(response: &HttpResponse) -> (u16, Option<&str>, String) {
    (
        response.status,
        response.header("content-type"),
        response.text(),
    )
}

#[test]
fn a_json_api_written_without_error_code_answers_its_errors_as_json() {
    let server = serve_todos(&["-Skeyvalue", "-Skeyvalue-in-memory"]);

    let broken = post(&server, &[JSON], b"{\"title\": }");
    assert_eq!(
        seen(&broken),
        (
            400,
            Some("application/json"),
            "{\"error\":\"invalid JSON: expected value at line 1 column 11\"}\n".to_owned()
        )
    );

    // `curl -d` sends a form type: refused before the body is read.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong_type = post(&server, &form, br#"{"title":"pen"}"#);
    assert_eq!(
        seen(&wrong_type),
        (
            415,
            Some("application/json"),
            "{\"error\":\"expected a body with `content-type: application/json`\"}\n".to_owned()
        )
    );

    let created = post(&server, &[JSON], br#"{"title":"buy ink"}"#);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.text(), r#"{"id":1,"title":"buy ink","done":false}"#);
    let fetched = server.get("/todos/1");
    assert_eq!((fetched.status, fetched.text()), (200, created.text()));
    let deleted = server
        .connect()
        .request("DELETE", "/todos/1", &[], b"")
        .expect("DELETE");
    assert_eq!(deleted.status, 204);
    assert_eq!(server.get("/todos/1").status, 404);
}

#[test]
fn a_full_store_is_a_503_naming_the_store_and_the_limit() {
    // The id counter is the first key, the todo the second: one too many.
    let server = serve_todos(&[
        "-Skeyvalue",
        "-Skeyvalue-in-memory",
        "-Skeyvalue-max-keys=1",
    ]);
    let full = post(&server, &[JSON], br#"{"title":"one too many"}"#);
    let (status, content_type, text) = seen(&full);
    assert_eq!(
        (status, content_type),
        (503, Some("application/json")),
        "{text}"
    );
    assert!(
        text.starts_with("{\"error\":\"") && text.ends_with("\"}\n"),
        "{text}"
    );
    // Named once, whether the host's message names it or the SDK does.
    assert_eq!(text.matches("key-value store").count(), 1, "{text}");
    assert!(text.contains("-Skeyvalue-max-keys"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn a_backend_past_the_deadline_is_a_504_in_the_form_the_client_accepts() {
    let backend = Backend::start();
    let server = RunningServer::start(
        &guest_wasm("proxy_p3"),
        &[
            "--env",
            &format!("BACKEND={}", backend.url),
            "--env",
            "TIMEOUT_MS=300",
        ],
    );
    let deadline = "deadline of 300 ms passed before the response was ready";

    let as_json = server
        .connect()
        .request(
            "GET",
            "/slow?ms=5000",
            &[("accept", "application/json")],
            b"",
        )
        .expect("GET /slow as JSON");
    assert_eq!(
        seen(&as_json),
        (
            504,
            Some("application/json"),
            format!("{{\"error\":\"{deadline}\"}}\n")
        )
    );

    let as_text = server.get("/slow?ms=5000");
    assert_eq!(
        seen(&as_text),
        (
            504,
            Some("text/plain; charset=utf-8"),
            format!("{deadline}\n")
        )
    );
}

#[test]
fn a_backend_that_refuses_the_connection_is_a_502_naming_it() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let server = RunningServer::start(
        &guest_wasm("proxy_p3"),
        &["--env", &format!("BACKEND=http://127.0.0.1:{port}")],
    );
    let refused = server
        .connect()
        .request("GET", "/", &[("accept", "application/json")], b"")
        .expect("GET /");
    let (status, content_type, text) = seen(&refused);
    assert_eq!(
        (status, content_type),
        (502, Some("application/json")),
        "{text}"
    );
    assert!(
        text.starts_with("{\"error\":\"") && text.ends_with("\"}\n"),
        "{text}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}
