//! A `host-runner serve` process on 127.0.0.1: started and waited for,
//! its log lines collected as they come, its `/metrics` scraped, signalled,
//! killed on drop; and [`fan_out`], many clients at once against it. The
//! HTTP client itself is `http`'s.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{HttpConnection, HttpResponse};
use super::metrics::Metrics;
use super::process::{host_runner_bin, wait_with_timeout};

/// How long a server may take to print its `Serving HTTP on` line (a cold
/// release build compiles the component first).
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines printed by a running server (stdout and stderr, in arrival order),
/// with a condition variable so tests can wait for a line.
#[derive(Default)]
struct LogLines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl LogLines {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.push(line);
        self.grew.notify_all();
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first line matching `wanted`, waiting up to `timeout` for it.
    fn wait_for(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = lines.iter().find(|l| wanted(l)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A `host-runner serve` process listening on 127.0.0.1; killed on drop.
pub(crate) struct RunningServer {
    child: Child,
    logs: Arc<LogLines>,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// Where it listens for shutdown, when started with `--shutdown-addr`.
    pub shutdown_addr: Option<SocketAddr>,
    /// Where it serves `/metrics`, when started with `--metrics-addr`.
    pub metrics_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// Starts `host-runner serve --addr 127.0.0.1:0 <args> <wasm>` and waits
    /// for its `Serving HTTP on` line.
    pub(crate) fn start(wasm: &Path, args: &[&str]) -> Self {
        Self::start_with_env(wasm, args, &[])
    }

    /// [`RunningServer::start`] with extra environment variables (e.g.
    /// `RUST_LOG`).
    pub(crate) fn start_with_env(wasm: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(host_runner_bin());
        command
            // A directory of its own, as each app has: files a server keeps
            // at a default path (`-Skeyvalue`'s store) are not shared with
            // the servers other tests run at the same time.
            .current_dir(working_dir())
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .arg(wasm)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start host-runner");
        let logs = Arc::new(LogLines::default());
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    match line {
                        Ok(line) => logs.push(line),
                        Err(_) => break,
                    }
                }
            });
        }

        let serving = "Serving HTTP on http://";
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let ready = loop {
            // Short waits, so that a server that exits early is noticed at
            // once instead of after the whole startup timeout.
            let line = logs.wait_for(Duration::from_millis(100), |line| line.starts_with(serving));
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if line.is_some() || exited || Instant::now() >= deadline {
                break line;
            }
        };
        let line = match ready {
            Some(line) => line,
            None => {
                // Let the reader threads catch the last words.
                thread::sleep(Duration::from_millis(100));
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "host-runner did not start serving {} (exited, or still silent after {STARTUP_TIMEOUT:?}); output:\n{}",
                    wasm.display(),
                    logs.snapshot().join("\n")
                );
            }
        };
        let addr = parse_addr(&line, serving);
        // The metrics line follows the serving line; wait for it when asked
        // for.
        if args.iter().any(|arg| arg.starts_with("--metrics-addr")) {
            logs.wait_for(STARTUP_TIMEOUT, |line| {
                line.starts_with("Metrics on http://")
            });
        }
        let shutdown_addr = logs
            .snapshot()
            .iter()
            .find(|l| l.starts_with("Listening for shutdown on tcp://"))
            .map(|l| parse_addr(l, "Listening for shutdown on tcp://"));
        let metrics_addr = logs
            .snapshot()
            .iter()
            .find(|l| l.starts_with("Metrics on http://"))
            .map(|l| parse_addr(l.trim_end_matches("metrics"), "Metrics on http://"));
        Self {
            child,
            logs,
            addr,
            shutdown_addr,
            metrics_addr,
        }
    }

    /// Scrapes `/metrics` (the server must run with
    /// `--metrics-addr=127.0.0.1:0`).
    pub(crate) fn metrics(&self) -> Metrics {
        let addr = self
            .metrics_addr
            .expect("start the server with --metrics-addr=127.0.0.1:0");
        let response = HttpConnection::open(addr)
            .and_then(|mut connection| connection.get("/metrics"))
            .unwrap_or_else(|e| panic!("GET /metrics failed: {e}"));
        assert_eq!(response.status, 200, "GET /metrics: {}", response.text());
        Metrics(response.text())
    }

    /// Scrapes `/metrics` until `wanted` holds, for up to `timeout`; panics
    /// with the last scrape and `what` if it never does. Instances retire
    /// and requests finish asynchronously, so tests wait for counts rather
    /// than sleep.
    pub(crate) fn wait_for_metrics(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.metrics();
            if wanted(&metrics) {
                return metrics;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}; last scrape:\n{}",
                metrics.0
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server printed so far.
    pub(crate) fn logs(&self) -> Vec<String> {
        self.logs.snapshot()
    }

    /// Waits up to `timeout` for a printed line containing `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.logs.wait_for(timeout, |line| line.contains(needle))
    }

    /// A new keep-alive connection to the server.
    pub(crate) fn connect(&self) -> HttpConnection {
        HttpConnection::open(self.addr).expect("cannot connect to host-runner")
    }

    /// `GET path` on a fresh connection.
    pub(crate) fn get(&self, path: &str) -> HttpResponse {
        self.connect()
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// The server's process id, e.g. to send it signals.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system's `kill`.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits up to `timeout` for the server to exit on its own.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_with_timeout(&mut self.child, timeout)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty directory for one server to run in.
fn working_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("servers")
        .join(format!("{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a server's directory");
    dir
}

fn parse_addr(line: &str, prefix: &str) -> SocketAddr {
    line.trim_start_matches(prefix)
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("cannot read the address in {line:?}: {e}"))
}

/// Sends `GET path` `per_connection` times on each of `connections`
/// keep-alive connections, all connections at once, and returns every
/// response. A connection the server closed (after an error response) is
/// replaced, so each request still gets exactly one answer.
pub(crate) fn fan_out(
    server: &RunningServer,
    connections: usize,
    per_connection: usize,
    path: &str,
) -> Vec<HttpResponse> {
    thread::scope(|scope| {
        let clients: Vec<_> = (0..connections)
            .map(|_| {
                scope.spawn(|| {
                    let mut connection = server.connect();
                    (0..per_connection)
                        .map(|_| {
                            if connection.is_closed() {
                                connection = server.connect();
                            }
                            connection
                                .get(path)
                                .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|client| client.join().expect("client thread panicked"))
            .collect()
    })
}
