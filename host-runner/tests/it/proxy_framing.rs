//! What crosses a proxy, byte for byte: the `proxy-p3` and `proxy-p2`
//! samples in front of a real backend on 127.0.0.1, spoken to with
//! hand-written requests whose raw answers the tests read. Hop-by-hop
//! header fields (RFC 9110 §7.6.1) stop at each hop, both ways; a backend
//! body cut short of its `content-length` reaches the client cut, or as an
//! error, never as a complete, shorter answer.

use crate::common::backend::Backend;
use crate::common::{RunningServer, guest_wasm, split_head};
use crate::outgoing::{PROXIES, serve_proxy};

/// Header names in `head`'s field lines (not its first line), lower-cased.
fn field_names(head: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_ascii_lowercase())
        .collect()
}

/// Sends `request` as it is and returns everything the server wrote until
/// it closed the connection (the request asks it to).
fn raw_exchange(server: &RunningServer, request: &str) -> Vec<u8> {
    let mut connection = server.connect();
    connection.send_raw(request.as_bytes()).expect("send");
    connection
        .wait_closed()
        .expect("the server closes the connection")
}

const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "te",
    "trailer",
    "proxy-connection",
    "upgrade",
    "transfer-encoding",
];

#[test]
fn fields_a_connection_header_names_reach_neither_the_backend_nor_the_client_through_either_proxy()
{
    let backend = Backend::start();
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 10_000);
        let raw = raw_exchange(
            &server,
            "GET /head HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close, X-Hop-Secret\r\n\
             X-Hop-Secret: client-secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
             Trailer: x-sum\r\nProxy-Connection: keep-alive\r\nX-End: kept\r\n\r\n",
        );
        let (head, body) = split_head(&raw);
        assert!(head.starts_with("HTTP/1.1 200"), "{guest}: {head}");
        // The body is the head the backend received.
        let received = String::from_utf8_lossy(body);
        let names = field_names(&received);
        assert!(names.contains(&"x-end".to_owned()), "{guest}: {received}");
        for gone in ["x-hop-secret", "connection"].iter().chain(&HOP_BY_HOP) {
            assert!(
                !names.contains(&gone.to_string()),
                "{guest}: the backend received `{gone}`:\n{received}"
            );
        }
        assert!(!received.contains("client-secret"), "{guest}: {received}");
        // And the backend's own: `connection: x-hop-back` names `x-hop-back`.
        let names = field_names(&head);
        assert!(names.contains(&"x-end".to_owned()), "{guest}: {head}");
        assert!(
            !names.contains(&"x-hop-back".to_owned()) && !names.contains(&"keep-alive".to_owned()),
            "{guest}: the client received the backend's hop-by-hop fields:\n{head}"
        );
        assert!(!head.contains("backend-secret"), "{guest}: {head}");
    }
}

/// What the client made of a response: its status, the length it
/// announced, and the bytes that followed the head before the close.
fn announced_and_received(raw: &[u8]) -> (String, Option<usize>, usize) {
    let (head, body) = split_head(raw);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    });
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, length, body.len())
}

#[test]
fn a_backend_body_cut_short_of_its_content_length_reaches_the_client_cut_through_either_proxy() {
    let backend = Backend::start();
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 10_000);
        for (announce, send) in [(57, 20), (200_000, 100_000), (57, 0)] {
            let raw = raw_exchange(
                &server,
                &format!(
                    "GET /short?announce={announce}&send={send} HTTP/1.1\r\n\
                     Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
                ),
            );
            let (status, length, received) = announced_and_received(&raw);
            // Either a failure status while the head could still say so, or
            // the head and fewer bytes than it announced, then the close:
            // never a whole answer.
            let cut = length.is_some_and(|length| received < length);
            let failed = status.contains(" 500 ") || status.contains(" 502 ");
            assert!(
                failed || (status.contains(" 200 ") && cut),
                "{guest}: {announce} announced, {send} sent: the client got {status:?}, \
                 content-length {length:?} and {received} bytes"
            );
        }
    }
}

#[test]
fn a_backend_body_cut_short_of_its_content_length_is_an_error_to_an_app_that_reads_it_whole() {
    let backend = Backend::start();
    let server = RunningServer::start(&guest_wasm("read_upstream_p3"), &["--threads=1"]);
    let whole = server.get(&format!(
        "/?from={}/short?announce=57%26send=57",
        backend.url
    ));
    assert_eq!(whole.text(), "read 57 bytes\n");
    for send in [0, 20] {
        let from = format!("{}/short?announce=57%26send={send}", backend.url);
        let response = server.get(&format!("/?from={from}"));
        assert_eq!(
            response.status,
            502,
            "{send} of 57 bytes: {}",
            response.text()
        );
        assert!(
            response.text().contains("57"),
            "{send} of 57 bytes: {}",
            response.text()
        );
    }
}
