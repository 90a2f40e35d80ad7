//! `-Skeyvalue-redis` puts the store in a Redis server, so several
//! host-runner processes behind any load balancer share it: a note posted
//! to one is read, listed and numbered by the other. The test starts a real
//! `redis-server` on 127.0.0.1 (installed by `scripts/install-tools.sh`)
//! and skips, saying why, only where there is none.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{RunningServer, guest_wasm};
use crate::kv_durable::post_note;
use crate::kv_limits::fills_three_keys_then_says_full_until_a_delete;

/// A `redis-server` on a free loopback port, keeping nothing on disk,
/// killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// `None` (with the reason printed) where `redis-server` is missing.
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                eprintln!(
                    "skipped: cannot start redis-server ({e}); scripts/install-tools.sh installs it with apt-get"
                );
                return None;
            }
        };
        let redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start listening"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_host_runners_on_one_redis_see_each_others_notes() {
    let Some(redis) = Redis::start() else { return };
    let store = format!("-Skeyvalue-redis={}", redis.url());
    let serve = || RunningServer::start(&guest_wasm("kv_notes_p3"), &["-Skeyvalue", &store]);
    let (a, b) = (serve(), serve());
    assert_ne!(a.addr, b.addr);

    assert_eq!(post_note(&a, "written on a"), 1);
    assert_eq!(b.get("/notes/1").text(), "written on a");
    // One counter for both: b numbers its note after a's.
    assert_eq!(post_note(&b, "written on b"), 2);
    assert_eq!(a.get("/notes/2").text(), "written on b");
    let mut listed: Vec<String> = a.get("/notes").text().lines().map(str::to_owned).collect();
    listed.sort();
    assert_eq!(listed, ["1: written on a", "2: written on b"]);
    let deleted = b.connect().request("DELETE", "/notes/1", &[], b"");
    assert_eq!(deleted.expect("a response").status, 204);
    assert_eq!(a.get("/notes/1").status, 404);
}

#[test]
fn a_redis_store_past_its_key_quota_says_so_until_a_note_is_deleted() {
    let Some(redis) = Redis::start() else { return };
    let store = format!("-Skeyvalue-redis={}", redis.url());
    let server = RunningServer::start(
        &guest_wasm("kv_notes_p3"),
        &["-Skeyvalue", &store, "-Skeyvalue-max-keys=3"],
    );
    fills_three_keys_then_says_full_until_a_delete(&server);
    assert_eq!(server.get("/notes/2").text(), "two");
}

#[test]
fn a_redis_url_nobody_answers_is_refused_at_start_up_in_one_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let wasm = guest_wasm("kv_notes_p3");
    let store = format!("-Skeyvalue-redis=redis://:secret@127.0.0.1:{port}/0");
    let outcome = crate::common::run_to_exit(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "-Skeyvalue",
            &store,
            wasm.to_str().expect("UTF-8"),
        ],
        Duration::from_secs(60),
    );
    assert!(!outcome.status.success());
    let line = outcome.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(
        line.contains(&format!(
            "cannot reach the Redis server at 127.0.0.1:{port}"
        )),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("secret"),
        "the password was printed: {}",
        outcome.stderr
    );
}
