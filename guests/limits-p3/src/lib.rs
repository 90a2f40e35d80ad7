//! Bounding what one instance may cost. After 5 requests, or once linear
//! memory passes 8 MiB, the instance retires and the host starts a fresh one.
//! `?leak_kib=N` leaks N KiB, as a buggy handler or a leaking GC would.

use reprise::{Handler, IntoResponse, Request, ReusePolicy};

const POLICY: ReusePolicy = ReusePolicy::concurrent()
    .max_requests(5)
    .max_memory(8 << 20);

#[derive(Default)]
struct Limits;

impl Handler for Limits {
    async fn handle(&self, request: Request) -> impl IntoResponse {
        let leak_kib: Option<usize> =
            reprise::query_param(&request, "leak_kib").and_then(|n| n.parse().ok());
        match leak_kib {
            Some(kib) => {
                Vec::leak(vec![1u8; kib * 1024]);
                format!("leaked {kib} KiB\n")
            }
            None => "Hello, WASI!\n".to_owned(),
        }
    }
}

reprise::export_p3!(Limits, policy = POLICY);
