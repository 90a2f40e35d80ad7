//! The host's remaining hazards, each over real HTTP: instances spread
//! over serving threads, stalled request bodies, and limits that must hold
//! whatever a request does.

use crate::common::{RunningServer, guest_wasm};

#[test]
fn one_instance_on_two_threads_answers_every_sequential_request() {
    let server = RunningServer::start(
        &guest_wasm("hello_p3"),
        &["--max-instances=1", "--threads=2"],
    );
    // A fresh connection each time, so the kernel spreads them over both
    // threads; the one instance is idle between requests.
    let statuses: Vec<u16> = (0..40).map(|_| server.get("/").status).collect();
    assert!(
        statuses.iter().all(|status| *status == 200),
        "with the only instance idle, a request got {statuses:?}"
    );
}
