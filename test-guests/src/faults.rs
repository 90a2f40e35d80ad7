//! A handler that misbehaves when asked to, so that tests can watch the host
//! contain it. The `faults-*` components export it under different reuse
//! policies; this module exports nothing itself.
//! Each query parameter is one fault; several may be combined:
//!
//! - `trap=1`: panic, which traps the instance
//! - `busy_ms=N`: spin the CPU for N ms without yielding (`busy_ms=forever`)
//! - `sleep_ms=N`: an async sleep
//! - `deadline_ms=N`: a request deadline of N ms (reprise answers 504 past it)
//! - `leak_kib=N`: leak N KiB of linear memory
//! - `retire=1`: retire the instance
//! - `hold_ms=N`: hold backpressure for N ms
//! - `body_kib=N` (or `body_bytes=N`): stream an N KiB (N byte) body of
//!   `x`s, 16 KiB per chunk
//! - `length=N`: declare `content-length: N`, whatever the body is
//! - `trap_after_kib=N`: trap once N KiB of the body are written
//! - `stall_after_kib=N`: stop writing once N KiB of the body are written,
//!   and never end it
//! - `linger=1`: answer at once, and leave a task running forever
//! - `read_body=1`: read the whole request body and answer `read N bytes`
//!   (400 if the upload broke off)
//! - `trap_in_body=1`: respond with `content-length: 5`, then trap 20 ms
//!   later, before writing the body

use reprise::{Body, Handler, IntoResponse, Request, Response, instance, query_param};
use std::time::{Duration, Instant};

/// The misbehaving handler.
#[derive(Default)]
pub struct Faults;

fn number(request: &Request, name: &str) -> Option<u64> {
    query_param(request, name).and_then(|n| n.parse().ok())
}

impl Handler for Faults {
    fn deadline(&self, request: &Request) -> Option<Duration> {
        number(request, "deadline_ms").map(Duration::from_millis)
    }

    async fn handle(&self, request: Request) -> impl IntoResponse {
        if query_param(&request, "trap").as_deref() == Some("1") {
            panic!("trap requested");
        }
        if query_param(&request, "busy_ms").as_deref() == Some("forever") {
            #[allow(clippy::empty_loop)]
            loop {}
        }
        if let Some(ms) = number(&request, "busy_ms") {
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until {}
        }
        if let Some(ms) = number(&request, "sleep_ms") {
            reprise::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(kib) = number(&request, "leak_kib") {
            Vec::leak(vec![1u8; kib as usize * 1024]);
        }
        if query_param(&request, "retire").as_deref() == Some("1") {
            reprise::instance::retire();
        }
        if let Some(ms) = number(&request, "hold_ms") {
            let _quiet = instance::hold();
            reprise::sleep(Duration::from_millis(ms)).await;
        }
        if query_param(&request, "read_body").as_deref() == Some("1") {
            return match request.into_body().bytes().await {
                Ok(bytes) => Response::new(format!("read {} bytes\n", bytes.len()).into()),
                Err(error) => {
                    let mut response = Response::new(format!("{error}\n").into());
                    *response.status_mut() = reprise::http::StatusCode::BAD_REQUEST;
                    response
                }
            };
        }
        if query_param(&request, "trap_in_body").as_deref() == Some("1") {
            let (writer, body) = Body::channel();
            reprise::spawn(async move {
                let _open = writer;
                reprise::sleep(Duration::from_millis(20)).await;
                panic!("trap requested after the response");
            });
            let mut response = Response::new(body);
            let length = reprise::http::HeaderValue::from_static("5");
            let headers = response.headers_mut();
            headers.insert(reprise::http::header::CONTENT_LENGTH, length);
            return response;
        }
        if query_param(&request, "linger").as_deref() == Some("1") {
            reprise::spawn(sleep_forever());
        }
        let declared = number(&request, "length");
        let trap_after = number(&request, "trap_after_kib").map(|kib| kib * 1024);
        let stall_after = number(&request, "stall_after_kib").map(|kib| kib * 1024);
        let size =
            number(&request, "body_bytes").or(number(&request, "body_kib").map(|kib| kib * 1024));
        if size.is_none() && declared.is_none() && trap_after.is_none() && stall_after.is_none() {
            return Response::new(format!("ok {}\n", reprise::instance::stats()).into());
        }
        let size = size.unwrap_or(0);
        let (mut writer, body) = Body::channel();
        reprise::spawn(async move {
            let mut written = 0;
            loop {
                if trap_after.is_some_and(|limit| written >= limit) {
                    panic!("trap requested after {written} bytes of the body");
                }
                if stall_after.is_some_and(|limit| written >= limit) {
                    let _open = writer;
                    return sleep_forever().await;
                }
                if written >= size {
                    return;
                }
                let chunk = (size - written).min(16 * 1024);
                if writer.write(vec![b'x'; chunk as usize]).await.is_err() {
                    return;
                }
                written += chunk;
            }
        });
        let mut response = Response::new(body);
        if let Some(length) = declared {
            let headers = response.headers_mut();
            headers.insert(reprise::http::header::CONTENT_LENGTH, length.into());
        }
        response
    }
}

/// Work that never ends, without holding the CPU.
async fn sleep_forever() {
    loop {
        reprise::sleep(Duration::from_secs(3600)).await;
    }
}
