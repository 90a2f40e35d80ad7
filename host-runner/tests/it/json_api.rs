//! The `json-api-p3` sample over HTTP/1.1: what `reprise::Json`,
//! `IntoResponse` and the SDK's errors give an API, as a client sees it.
//! Status, headers and bodies are asserted exactly where a client would
//! rely on them.

use crate::common::{RunningServer, guest_wasm};

fn post(server: &RunningServer, path: &str, body: &[u8]) -> crate::common::HttpResponse {
    server
        .connect()
        .request("POST", path, &[("content-type", "application/json")], body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

#[test]
fn created_items_answer_201_with_their_location_and_can_be_fetched_there() {
    // The items live in the instance: one thread and one connection keep
    // these requests on the instance that stored them.
    let server = RunningServer::start(&guest_wasm("json_api_p3"), &["--threads=1"]);
    let mut connection = server.connect();
    let json = [("content-type", "application/json")];

    let body = br#"{"name":"pen","colour":"blue"}"#;
    let created = connection
        .request("POST", "/items", &json, body)
        .expect("POST");
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("location"), Some("/items/1"));
    assert_eq!(created.header("content-type"), Some("application/json"));
    let item: serde_json::Value = serde_json::from_slice(&created.body).expect("JSON");
    assert_eq!(
        item,
        serde_json::json!({"id": 1, "name": "pen", "colour": "blue"})
    );

    let fetched = connection.get("/items/1").expect("GET");
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.header("content-type"), Some("application/json"));
    assert_eq!(fetched.body, created.body);

    let second = connection.request("POST", "/items", &json, br#"{"name":"ink"}"#);
    assert_eq!(second.expect("POST").header("location"), Some("/items/2"));
}

#[test]
fn bad_json_is_a_400_that_says_where_as_json() {
    let server = RunningServer::start(&guest_wasm("json_api_p3"), &[]);

    let broken = post(&server, "/items", b"{\"name\": }");
    assert_eq!(broken.status, 400);
    assert_eq!(broken.header("content-type"), Some("application/json"));
    assert_eq!(
        broken.text(),
        "{\"error\":\"invalid JSON: expected value at line 1 column 10\"}\n"
    );

    let nameless = post(&server, "/items", br#"{"title":"pen"}"#);
    assert_eq!(nameless.status, 400);
    assert!(
        nameless.text().contains("missing field `name`"),
        "{}",
        nameless.text()
    );
}

/// `Json::read`'s limit: 1 MiB.
const LIMIT: usize = 1024 * 1024;

#[test]
fn a_body_over_the_limit_is_a_413_whether_announced_or_streamed() {
    let server = RunningServer::start(&guest_wasm("json_api_p3"), &[]);
    let name = "x".repeat(LIMIT);
    let huge = format!(r#"{{"name":"{name}"}}"#);

    // Announced in content-length: refused before the upload is read, so
    // the client gets its answer having sent only the start of it.
    let mut connection = server.connect();
    let head = format!(
        "POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    );
    connection.send_raw(head.as_bytes()).expect("send the head");
    connection
        .send_raw(&huge.as_bytes()[..100])
        .expect("send the start of the body");
    let announced = connection.read_next_response().expect("a response");
    assert_eq!(announced.status, 413, "{}", announced.text());
    assert_eq!(
        announced.text(),
        format!("{{\"error\":\"the body is larger than its limit of {LIMIT} bytes\"}}\n")
    );

    // Chunked, so only counting the bytes read can catch it: the last
    // chunk crosses the limit.
    let mut connection = server.connect();
    let mut request =
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in huge.as_bytes().chunks(64 * 1024) {
        request.extend(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend(piece);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    connection
        .send_raw(&request)
        .expect("send a chunked upload");
    let streamed = connection.read_next_response().expect("a response");
    assert_eq!(streamed.status, 413, "{}", streamed.text());
}

#[test]
fn unknown_items_and_paths_are_404_and_wrong_methods_405_with_allow() {
    let server = RunningServer::start(&guest_wasm("json_api_p3"), &[]);

    assert_eq!(server.get("/items/404").status, 404);
    assert_eq!(server.get("/items/not-a-number").status, 404);
    assert_eq!(server.get("/elsewhere").status, 404);

    let list = server.get("/items");
    assert_eq!((list.status, list.header("allow")), (405, Some("POST")));
    let delete = server
        .connect()
        .request("DELETE", "/items/1", &[], b"")
        .expect("DELETE /items/1");
    assert_eq!((delete.status, delete.header("allow")), (405, Some("GET")));
}
