//! Shared support for host-runner's integration tests: find the built binary
//! and guests, run `host-runner serve` as a real process, talk HTTP/1.1 to
//! it with a small keep-alive client, scrape its `/metrics`, check how it
//! refuses what it cannot serve, and (`backend`) stand up a real backend
//! for guests that call other services.
//!
//! Every wait here is bounded, so a broken server fails a test instead of
//! hanging it. This module holds no assertions about behaviour; those belong
//! in the tests.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod backend;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print its `Serving HTTP on` line (a cold
/// release build compiles the component first).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default read timeout of [`HttpConnection`]: long enough for slow CI,
/// short enough that a hung server fails the test.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The `host-runner` binary cargo built for these tests.
pub fn host_runner_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_host-runner"))
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("host-runner lives inside the workspace")
            .join("target"),
    }
}

/// The built sample guest `name` (e.g. `hello_p3`); panics with what to do
/// when it has not been built.
pub fn guest_wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest `{name}` is not built ({} is missing); run `just build` first",
        path.display()
    );
    path
}

/// Writes `bytes` to a file named `name` in the tests' scratch directory and
/// returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch");
    std::fs::create_dir_all(&dir).expect("cannot create the scratch directory");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("cannot write a scratch file");
    path
}

/// Output of a `host-runner` run that was expected to end on its own.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `host-runner <args>` to completion (killed after `timeout`), with
/// `RUST_BACKTRACE` unset so that output is what a user sees by default.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> Finished {
    let mut child = Command::new(host_runner_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start host-runner");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_timeout(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("host-runner {args:?} did not exit within {timeout:?}")
    });
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The common shape of every refusal to serve: exit code 1, exactly one line
/// on stderr that starts with `error:`, names the file and contains
/// `wanted`; nothing that looks like a crash, nothing served.
pub fn assert_refused(outcome: &Finished, path: &Path, wanted: &str) {
    assert_eq!(
        outcome.status.code(),
        Some(1),
        "expected exit code 1, got {:?}; stderr:\n{}",
        outcome.status,
        outcome.stderr
    );
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{}",
        outcome.stderr
    );
    let line = lines[0];
    assert!(line.starts_with("error: "), "unexpected line: {line}");
    assert!(
        line.contains(&path.display().to_string()),
        "the error does not name the file: {line}"
    );
    assert!(line.contains(wanted), "expected {wanted:?} in: {line}");
    assert_no_crash(outcome);
    assert!(
        !outcome.stderr.contains("Serving HTTP"),
        "it started serving: {line}"
    );
    assert!(
        outcome.stdout.is_empty(),
        "unexpected stdout: {}",
        outcome.stdout
    );
}

/// Nothing in the output looks like a panic or a backtrace.
pub fn assert_no_crash(outcome: &Finished) {
    let everything = format!("{}{}", outcome.stdout, outcome.stderr).to_lowercase();
    for sign in ["panicked", "backtrace", "caused by"] {
        assert!(
            !everything.contains(sign),
            "output contains {sign:?}:\n{}",
            outcome.stderr
        );
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

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
pub struct RunningServer {
    child: Child,
    logs: Arc<LogLines>,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    /// Where it listens for shutdown, when started with `--shutdown-addr`.
    pub shutdown_addr: Option<SocketAddr>,
    /// Where it serves `/metrics`, when started with `--metrics-addr`.
    pub metrics_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// Starts `host-runner serve --addr 127.0.0.1:0 <args> <wasm>` and waits
    /// for its `Serving HTTP on` line.
    pub fn start(wasm: &Path, args: &[&str]) -> Self {
        Self::start_with_env(wasm, args, &[])
    }

    /// [`RunningServer::start`] with extra environment variables (e.g.
    /// `RUST_LOG`).
    pub fn start_with_env(wasm: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(host_runner_bin());
        command
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
            base_url: format!("http://{addr}"),
            shutdown_addr,
            metrics_addr,
        }
    }

    /// Scrapes `/metrics` (the server must run with
    /// `--metrics-addr=127.0.0.1:0`).
    pub fn metrics(&self) -> Metrics {
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
    pub fn wait_for_metrics(
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
    pub fn logs(&self) -> Vec<String> {
        self.logs.snapshot()
    }

    /// Waits up to `timeout` for a printed line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.logs.wait_for(timeout, |line| line.contains(needle))
    }

    /// A new keep-alive connection to the server.
    pub fn connect(&self) -> HttpConnection {
        HttpConnection::open(self.addr).expect("cannot connect to host-runner")
    }

    /// `GET path` on a fresh connection.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.connect()
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// The server's process id, e.g. to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits up to `timeout` for the server to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_with_timeout(&mut self.child, timeout)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape of `/metrics` in Prometheus text format.
#[derive(Clone, Debug)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of one series, named exactly as exposed, labels included
    /// (`reprise_requests_total{outcome="ok"}`); panics if it is missing.
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.0))
    }

    /// [`Metrics::value`] of a counter or gauge, as a whole number.
    pub fn count(&self, series: &str) -> u64 {
        self.value(series) as u64
    }
}

fn parse_addr(line: &str, prefix: &str) -> SocketAddr {
    line.trim_start_matches(prefix)
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("cannot read the address in {line:?}: {e}"))
}

/// A response as the client received it.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `x-reprise-instance` (needs `--debug-headers`).
    pub fn instance(&self) -> Option<u64> {
        self.header("x-reprise-instance")?.parse().ok()
    }

    /// `x-reprise-instance-request` (needs `--debug-headers`).
    pub fn instance_request(&self) -> Option<u64> {
        self.header("x-reprise-instance-request")?.parse().ok()
    }
}

/// A minimal HTTP/1.1 client connection with keep-alive, for tests that need
/// to control which requests share a connection. Understands
/// `Content-Length`, chunked and read-to-close bodies.
pub struct HttpConnection {
    reader: BufReader<TcpStream>,
    host: String,
    /// The server announced `Connection: close` or closed the stream.
    closed: bool,
}

impl HttpConnection {
    pub fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            host: addr.to_string(),
            closed: false,
        })
    }

    /// Changes how long a read may block before the request fails.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }

    /// Whether the server ended the connection (no further requests).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn get(&mut self, path: &str) -> io::Result<HttpResponse> {
        self.request("GET", path, &[], &[])
    }

    /// Writes `bytes` as they are: a hand-made request, several pipelined
    /// ones, or half of one.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads the next response (to a request sent with
    /// [`HttpConnection::send_raw`]).
    pub fn read_next_response(&mut self) -> io::Result<HttpResponse> {
        self.read_response(false)
    }

    /// Waits for the server to close the connection, discarding anything it
    /// sends first; fails if the read timeout passes while it stays open.
    pub fn wait_closed(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => Ok(rest),
            // A reset is the server closing too, abruptly.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(rest),
            Err(e) => Err(e),
        }
    }

    /// Sends one request and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server closed this connection",
            ));
        }
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        self.read_response(method == "HEAD")
    }

    fn read_response(&mut self, head_only: bool) -> io::Result<HttpResponse> {
        let mut response = self.read_head()?;
        let status = response.status;
        if head_only || status < 200 || status == 204 || status == 304 {
            return Ok(response);
        }
        response.body = self
            .read_body(&response)
            .map_err(|error| cut_off(status, error))?;
        Ok(response)
    }

    /// Reads the next response's status line and headers only, leaving its
    /// body on the connection (read it with [`HttpConnection::read_chunk`]),
    /// for tests that watch a body arrive while the request is still open.
    pub fn read_head(&mut self) -> io::Result<HttpResponse> {
        let status_line = self.read_line()?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.closed = true;
        }
        Ok(response)
    }

    fn read_body(&mut self, response: &HttpResponse) -> io::Result<Vec<u8>> {
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return self.read_chunked();
        }
        let mut body = Vec::new();
        if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| invalid(format!("bad content-length {length:?}")))?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        } else {
            self.reader.read_to_end(&mut body)?;
            self.closed = true;
        }
        Ok(body)
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.read_chunk()? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Reads one chunk of a chunked body; `None` at its last (empty) chunk,
    /// after which the trailers have been read too.
    pub fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let size_line = self.read_line()?;
        let size = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line ending the message.
            while !self.read_line()?.is_empty() {}
            return Ok(None);
        }
        let mut chunk = vec![0; size];
        self.reader.read_exact(&mut chunk)?;
        if !self.read_line()?.is_empty() {
            return Err(invalid("chunk not followed by CRLF".into()));
        }
        Ok(Some(chunk))
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            self.closed = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// The error for a response whose head arrived but whose body did not: the
/// only way HTTP/1.1 can report a failure after the status went out.
fn cut_off(status: u16, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("{CUT_OFF} (status {status}): {error}"),
    )
}

/// Raw bytes of one response as they came off the connection: the head (as
/// text, up to and without the blank line) and whatever followed it.
pub fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete head in {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            )
        });
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        &raw[end + 4..],
    )
}

/// How [`HttpConnection`]'s errors start when the body was cut off.
pub const CUT_OFF: &str = "cut off after its head";

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Sends `GET path` `per_connection` times on each of `connections`
/// keep-alive connections, all connections at once, and returns every
/// response. A connection the server closed (after an error response) is
/// replaced, so each request still gets exactly one answer.
pub fn fan_out(
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

/// A small HTTP/1.1 backend on 127.0.0.1 that answers every request with
/// `200` and a fixed body, then closes the connection: the far end for
/// guests that call out. It counts the connections it accepted, so a test
/// can tell that a refused call never reached the network. It serves at
/// most [`Backend::MAX_CONNECTIONS`] and stops when dropped.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Backend {
    /// Connections served before the backend stops on its own.
    pub const MAX_CONNECTIONS: usize = 100;

    /// Starts a backend answering `body`.
    pub fn start(body: &'static str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a backend port");
        let addr = listener.local_addr().expect("a bound address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let (accepted, stop) = (accepted.clone(), stop.clone());
            move || {
                for stream in listener.incoming().take(Self::MAX_CONNECTIONS) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => break,
                        }
                    }
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        Self {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
