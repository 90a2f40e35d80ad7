//! No request can take the store down: a `get-many` that asks for one large
//! value many times is refused before the host copies anything (the host
//! does not grow, a neighbour is answered), and a full store says so in one
//! line, through the guest, until a key is deleted.

use std::thread;
use std::time::{Duration, Instant};

use crate::common::{RunningServer, guest_wasm, memory_kib, reset_peak_memory};
use crate::kv_durable::{post_note, serve_notes, store_path};

const MIB: u64 = 1 << 20;

#[test]
fn get_many_of_one_large_value_is_refused_before_the_host_copies_it() {
    let server = RunningServer::start(
        &guest_wasm("kv_get_many_p3"),
        &["-Skeyvalue", "-Skeyvalue-in-memory"],
    );
    let fill = server
        .connect()
        .request("PUT", &format!("/fill?key=big&size={}", 32 * MIB), &[], b"")
        .expect("a response");
    assert_eq!(fill.status, 200, "{}", fill.text());
    let resident_before = memory_kib(server.pid(), "VmRSS");
    reset_peak_memory(server.pid());

    // 64 copies of 32 MiB: 2 GiB the host once copied, times four at once.
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let mut connection = server.connect();
            thread::spawn(move || connection.get("/many?key=big&n=64").expect("an answer"))
        })
        .collect();
    let started = Instant::now();
    let neighbour = server.get("/many?key=missing&n=3");
    // A liveness bound, not a speed claim.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the neighbour waited"
    );
    assert_eq!(
        (neighbour.status, neighbour.text().as_str()),
        (200, "0 bytes\n")
    );
    for attacker in attackers {
        let refused = attacker.join().expect("an attacker panicked");
        let text = refused.text();
        assert_eq!(refused.status, 503, "{text}");
        assert!(text.contains("read fewer or smaller values"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
    let peak = memory_kib(server.pid(), "VmHWM");
    assert!(
        peak < resident_before + 64 * 1024,
        "host-runner grew from {resident_before} KiB to a peak of {peak} KiB under the attack"
    );
    // What fits in the instance's memory is still served.
    let three = server.get("/many?key=big&n=3");
    assert_eq!(three.text(), format!("{} bytes\n", 3 * 32 * MIB));
}

#[test]
fn a_full_store_says_so_until_a_note_is_deleted() {
    let path = store_path("kv-quota");
    let server = serve_notes(&path, &["-Skeyvalue-max-keys=3"]);
    fills_three_keys_then_says_full_until_a_delete(&server);
    assert_eq!(server.get("/notes").text(), "2: two\n4: three\n");
}

/// Through `kv-notes-p3` served with `-Skeyvalue-max-keys=3`: two notes
/// and the counter fill the store, the third note is refused in one line
/// naming the flag, and after a delete it is written (as note 4: the
/// refused one used number 3).
pub(crate) fn fills_three_keys_then_says_full_until_a_delete(server: &RunningServer) {
    assert_eq!(post_note(server, "one"), 1);
    assert_eq!(post_note(server, "two"), 2);
    let full = server
        .connect()
        .request("POST", "/notes", &[], b"three")
        .expect("a response");
    let text = full.text();
    assert_eq!(full.status, 503, "{text}");
    assert!(
        text.contains("store is full") && text.contains("-Skeyvalue-max-keys"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");

    let deleted = server.connect().request("DELETE", "/notes/1", &[], b"");
    assert_eq!(deleted.expect("a response").status, 204);
    assert_eq!(post_note(server, "three"), 4);
}

#[test]
fn a_store_full_of_bytes_refuses_a_large_note_and_keeps_the_rest() {
    let path = store_path("kv-quota-bytes");
    let server = serve_notes(&path, &["-Skeyvalue-max-bytes=1KiB"]);
    assert_eq!(post_note(&server, "small"), 1);
    let large = server
        .connect()
        .request("POST", "/notes", &[], &[b'x'; 2048])
        .expect("a response");
    assert_eq!(large.status, 503, "{}", large.text());
    assert!(large.text().contains("store is full"), "{}", large.text());
    assert_eq!(server.get("/notes/1").text(), "small");
}
