//! Calling other services from a guest: the `proxy-p3` and `proxy-p2`
//! samples served by host-runner in front of a real backend on 127.0.0.1,
//! spoken to over HTTP. What a call forwards and streams, what a deadline
//! does (the guest answers 504 itself and its instance lives on), and that a
//! call ends with its request.

use crate::common::backend::{Backend, pattern, refusing_url};
use crate::common::{CUT_OFF, RunningServer, guest_wasm};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

pub(crate) const PROXIES: [&str; 2] = ["proxy_p3", "proxy_p2"];

/// How long a test waits for the backend to see a call abandoned.
const ABANDON_WAIT: Duration = Duration::from_secs(10);

/// Serves `guest` in front of `backend` with a `timeout_ms` deadline, one
/// thread, debug headers, and p2 instances reused too.
pub(crate) fn serve_proxy(guest: &str, backend: &str, timeout_ms: u64) -> RunningServer {
    let backend = format!("BACKEND={backend}");
    let timeout = format!("TIMEOUT_MS={timeout_ms}");
    let args = [
        "--env",
        &backend,
        "--env",
        &timeout,
        "--threads=1",
        "--debug-headers",
        "--max-instance-reuse-count=100",
    ];
    RunningServer::start(&guest_wasm(guest), &args)
}

#[test]
fn proxy_forwards_method_path_query_headers_and_a_multi_megabyte_upload() {
    let backend = Backend::start();
    let upload = pattern(4 << 20);
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 20_000);
        let response = server
            .connect()
            .request("PUT", "/echo?a=1&b=two", &[("x-test", "kept")], &upload)
            .unwrap_or_else(|e| panic!("{guest}: PUT /echo failed: {e}"));
        assert_eq!(response.status, 200, "{guest}: {}", response.text());
        assert_eq!(response.header("x-method"), Some("PUT"), "{guest}");
        assert_eq!(
            response.header("x-path"),
            Some("/echo?a=1&b=two"),
            "{guest}"
        );
        assert_eq!(response.header("x-test"), Some("kept"), "{guest}");
        assert!(
            response.body == upload,
            "{guest}: the echoed upload differs"
        );
    }
}

#[test]
fn proxy_streams_a_multi_megabyte_backend_response_back_whole() {
    let backend = Backend::start();
    let size = 8 << 20;
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 20_000);
        let response = server.get(&format!("/stream?bytes={size}"));
        assert_eq!(response.status, 200, "{guest}: {}", response.text());
        assert_eq!(response.body.len(), size, "{guest}");
        assert!(response.body == pattern(size), "{guest}: the body differs");
    }
}

#[test]
fn missed_deadline_gets_504_from_the_guest_cancels_the_call_and_the_instance_serves_on() {
    let backend = Backend::start();
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 300);
        let mut connection = server.connect();
        let late = connection.get("/slow?ms=20000").expect("GET /slow");
        assert_eq!(late.status, 504, "{guest}: {}", late.text());
        assert!(
            late.text().starts_with("deadline"),
            "{guest}: {}",
            late.text()
        );
        assert!(
            backend.saw_abandoned("/slow", ABANDON_WAIT),
            "{guest}: the backend call outlived the deadline"
        );
        let next = connection.get("/echo").expect("GET /echo after the 504");
        assert_eq!(next.status, 200, "{guest}: {}", next.text());
        assert_eq!(next.instance(), late.instance(), "{guest}: a new instance");
        assert_eq!(
            next.instance_request(),
            late.instance_request().map(|n| n + 1),
            "{guest}"
        );
    }
}

#[test]
fn refused_backend_gets_502_naming_the_cause() {
    let refusing = refusing_url();
    for guest in PROXIES {
        let server = serve_proxy(guest, &refusing, 20_000);
        let response = server.get("/");
        assert_eq!(response.status, 502, "{guest}: {}", response.text());
        let text = response.text();
        assert_eq!(text.lines().count(), 1, "{guest}: {text}");
        assert!(text.contains("connection refused"), "{guest}: {text}");
        assert!(
            text.contains(refusing.trim_start_matches("http://")),
            "{guest}: {text}"
        );
    }
}

#[test]
fn fast_requests_beside_slow_ones_timing_out_on_the_same_p3_instance_all_succeed() {
    let backend = Backend::start();
    let server = serve_proxy("proxy_p3", &backend.url, 1_500);
    server.get("/echo?warm-up");
    // Staggered, so that each request arrives while the ones before it wait
    // on the backend: an instance whose requests all wait takes more (one
    // busy running guest code would not, and a new instance would start).
    let server = &server;
    let staggered = |path: &'static str| {
        thread::sleep(Duration::from_millis(30));
        move || server.get(path)
    };
    let (slow, fast) = thread::scope(|scope| {
        let slow: Vec<_> = (0..4)
            .map(|_| scope.spawn(staggered("/slow?ms=20000")))
            .collect();
        let fast: Vec<_> = (0..8)
            .map(|_| scope.spawn(staggered("/slow?ms=200")))
            .collect();
        let join =
            |handles: Vec<thread::ScopedJoinHandle<'_, _>>| -> Vec<crate::common::HttpResponse> {
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            };
        (join(slow), join(fast))
    });
    for response in &slow {
        assert_eq!(response.status, 504, "a slow request: {}", response.text());
    }
    for response in &fast {
        assert_eq!(response.status, 200, "a fast request: {}", response.text());
        assert!(
            slow.iter().any(|s| s.instance() == response.instance()),
            "a fast request ran on instance {:?}, where no slow one did: {:?}",
            response.instance(),
            slow.iter().map(|r| r.instance()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn client_disconnect_cancels_the_outgoing_call() {
    let backend = Backend::start();
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 20_000);
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(crate::common::READ_TIMEOUT))
            .unwrap();
        stream
            .write_all(b"GET /hold HTTP/1.1\r\nHost: proxy\r\n\r\n")
            .unwrap();
        // Read until the body streams, then hang up in the middle of it.
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while !line.contains("partial") {
            line.clear();
            let read = reader.read_line(&mut line).unwrap();
            assert!(read > 0, "{guest}: the server closed the connection first");
        }
        drop(reader);
        assert!(
            backend.saw_abandoned("/hold", ABANDON_WAIT),
            "{guest}: the backend call went on after the client left"
        );
    }
}

#[test]
fn deadline_after_the_response_started_cuts_its_body_off() {
    let backend = Backend::start();
    for guest in PROXIES {
        let server = serve_proxy(guest, &backend.url, 500);
        let error = match server.connect().get("/hold") {
            Ok(whole) => panic!(
                "{guest}: a body held past the deadline arrived whole ({} bytes)",
                whole.body.len()
            ),
            Err(error) => error,
        };
        assert!(error.to_string().contains(CUT_OFF), "{guest}: {error}");
        assert!(
            backend.saw_abandoned("/hold", ABANDON_WAIT),
            "{guest}: the backend call outlived the deadline"
        );
    }
}

#[test]
fn proxy_without_a_backend_url_gets_502_saying_how_to_set_it() {
    for guest in PROXIES {
        let server = RunningServer::start(&guest_wasm(guest), &[]);
        let response = server.get("/");
        assert_eq!(response.status, 502, "{guest}: {}", response.text());
        assert!(
            response.text().contains("--env BACKEND=http://"),
            "{guest}: {}",
            response.text()
        );
    }
}
